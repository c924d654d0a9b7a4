import pytest
import torch
import torch.nn.functional as F

from waldo_pl.errors import UserError
from waldo_pl.models.module import WaldoSegmenter, balanced_class_weights
from waldo_pl.models.tutorial_net import TutorialNet


def test_tutorial_net_has_the_tutorials_size_and_shape():
    net = TutorialNet()
    assert sum(p.numel() for p in net.parameters()) == 1_395_650
    assert net(torch.rand(2, 3, 48, 80)).shape == (2, 2, 48, 80)
    with pytest.raises(ValueError, match="multiples of 16"):
        net(torch.rand(1, 3, 50, 64))


def test_the_cheaper_forward_trains_as_the_tutorials_order_of_layers():
    # forward (pool before LeakyReLU, transposed convs, head before the last upsample) against the layer-by-layer
    # graph: the same logits and the same gradients for every weight, from trained-looking (non-zero) biases
    torch.manual_seed(0)
    net = TutorialNet()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    x = torch.rand(2, 3, 48, 80)
    target = (torch.rand(2, 48, 80) > 0.8).long()
    outputs, grads = [], []
    for graph in (net.forward, net.layer_by_layer):
        net.zero_grad()
        logits = graph(x)
        F.cross_entropy(logits, target, weight=torch.tensor([1.0, 3.0])).backward()
        outputs.append(logits.detach())
        grads.append({name: p.grad.clone() for name, p in net.named_parameters()})
    assert (outputs[0] - outputs[1]).abs().max() < 1e-5 * outputs[1].abs().max()
    assert (outputs[1] - outputs[1].mean()).abs().max() > 1e-3  # not a flat map, which any graph would match
    for name, grad in grads[1].items():
        assert grad.abs().max() > 0, name
        assert (grads[0][name] - grad).abs().max() < 1e-4 * grad.abs().max(), name
    with pytest.raises(ValueError, match="multiples of 16"):
        net.layer_by_layer(torch.rand(1, 3, 50, 64))


def test_tutorial_net_sees_context_through_its_skips():
    # a change at one pixel reaches its neighbours but not the far corner of a large page
    net = TutorialNet().eval()
    x = torch.rand(1, 3, 128, 128)
    y = x.clone()
    y[..., 64, 64] = 1 - y[..., 64, 64]
    with torch.no_grad():
        diff = (net(x) - net(y)).abs().sum(1)[0]
    assert diff[60:68, 60:68].sum() > 0 and diff[:16, :16].sum() == 0


def test_balanced_weights_give_both_classes_the_same_total():
    w0, w1 = balanced_class_weights(0.05)
    assert w0 == 1.0 and w1 * 0.05 == pytest.approx(w0 * 0.95)
    with pytest.raises(UserError):
        balanced_class_weights(0.0)


def test_the_loss_weighs_waldo_pixels_by_the_configured_weights():
    logits = torch.randn(1, 2, 4, 4)
    target = torch.zeros(1, 4, 4, dtype=torch.long)
    target[0, 0, 0] = 1
    module = WaldoSegmenter(TutorialNet(), optimizer=torch.optim.Adam, class_weights=[1.0, 20.0])
    per_pixel = F.cross_entropy(logits, target, reduction="none")
    weights = torch.where(target == 1, 20.0, 1.0)
    assert module.loss(logits, target) == pytest.approx(float((per_pixel * weights).sum() / weights.sum()))


@pytest.mark.parametrize("weights", ["balanced", [1.0], [1.0, -2.0]])
def test_bad_class_weights_are_one_line_errors(weights):
    with pytest.raises(UserError, match="model.class_weights"):
        WaldoSegmenter(TutorialNet(), optimizer=torch.optim.Adam, class_weights=weights)


def test_waldo_pixels_per_crop_makes_a_small_waldo_count_as_much_as_a_big_one():
    # a batch of two crops, each missing its Waldo: a 2x2 one and a 6x6 one
    target = torch.zeros(2, 8, 8, dtype=torch.long)
    target[0, :2, :2] = 1
    target[1, :6, :6] = 1

    def pull_of_each_waldo(**settings):  # the gradient the loss puts on each crop's Waldo pixels
        logits = torch.zeros(2, 2, 8, 8)
        logits[:, 0] = 3.0  # confident background everywhere
        logits.requires_grad_(True)
        WaldoSegmenter(TutorialNet(), optimizer=torch.optim.Adam, class_weights=[1.0, 3.0], **settings).loss(
            logits, target
        ).backward()
        pull = (logits.grad.abs().sum(1) * (target == 1)).sum(dim=(1, 2))
        return float(pull[0] / pull[1])

    assert pull_of_each_waldo() == pytest.approx(4 / 36)
    assert pull_of_each_waldo(waldo_pixels_per_crop=10) == pytest.approx(1.0)
    with pytest.raises(UserError, match="model.waldo_pixels_per_crop"):
        WaldoSegmenter(TutorialNet(), optimizer=torch.optim.Adam, waldo_pixels_per_crop=0)


@pytest.mark.parametrize("weights", ["initial", "bundled"])
def test_the_fast_inference_graph_gives_the_networks_log_odds(weights):
    from waldo_pl.models.checkpoint import load_network
    from waldo_pl.models.fast_graph import fast_graph
    from waldo_pl.models.outputs import waldo_log_odds
    from waldo_pl.weights import bundled_model

    torch.manual_seed(0)
    net = TutorialNet().eval() if weights == "initial" else load_network(bundled_model())
    x = torch.rand(2, 3, 80, 144).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        plain, fast = waldo_log_odds(net.layer_by_layer(x)), waldo_log_odds(fast_graph(net)(x))
    assert fast.shape == plain.shape == (2, 80, 144)
    assert (fast - plain).abs().max() < 1e-4 * max(1.0, float(plain.abs().max()))
    assert (plain - plain.mean()).abs().max() > 1e-3  # not a flat map, which any graph would match
