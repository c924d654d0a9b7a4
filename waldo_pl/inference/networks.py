"""What the search runs, in one place: the contract of a first stage (pages in, Waldo log-odds out) and of a second
stage (windows in, log-odds out), and a PyTorch network or classifier made into one. OpenVINO's networks
(openvino_backend.py) keep the same contract; device.py chooses between them. PyTorch is imported only where a
PyTorch network is run, so that a search on OpenVINO never loads it."""

from __future__ import annotations

import contextlib
import itertools

import numpy as np

from waldo_pl.data.spot_windows import WINDOW


class PageNetwork:
    """A first stage as the search runs it: (B, H, W, 3) uint8 pages, sides multiples of models.grid.MULTIPLE, in;
    (B, H, W) float32 Waldo log-odds out."""

    def __call__(self, pages: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class SpotNetwork:
    """A second stage as the search runs it: (B, 3, S, S) float32 windows in [0, 1] in, (B,) float32 Waldo log-odds
    out, S its `window`."""

    window: int = WINDOW

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        raise NotImplementedError


def device_of(net) -> torch.device:  # noqa: F821 (torch is imported where a PyTorch network runs)
    """Where a PyTorch network's weights are (the CPU for one without any)."""
    import torch

    return next(itertools.chain(net.parameters(), net.buffers()), torch.zeros(0)).device


def _autocast(device, bf16: bool):
    import torch

    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


class TorchPageNetwork(PageNetwork):
    """A PyTorch segmentation network (two logits a pixel, or the log-odds alone) as a PageNetwork, on its own
    device, in bf16 autocast when `bf16`."""

    def __init__(self, net, bf16: bool = False):
        self.net, self.bf16 = net, bf16
        self.device = device_of(net)

    def __call__(self, pages: np.ndarray) -> np.ndarray:
        import torch

        from waldo_pl.models.outputs import waldo_log_odds

        with torch.inference_mode(), _autocast(self.device, self.bf16):
            # (B, 3, H, W) float in [0, 1], channels-last: the layout the network runs fastest in
            x = torch.from_numpy(np.ascontiguousarray(pages)).to(self.device).permute(0, 3, 1, 2).float().div_(255)
            return waldo_log_odds(self.net(x.contiguous(memory_format=torch.channels_last))).cpu().numpy()


class TorchSpotNetwork(SpotNetwork):
    """A PyTorch second-stage classifier as a SpotNetwork, on its own device, in bf16 autocast when `bf16`."""

    def __init__(self, net, bf16: bool = False):
        self.net, self.bf16 = net, bf16
        self.device = device_of(net)
        self.window = window_of(net)

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode(), _autocast(self.device, self.bf16):
            return self.net(torch.from_numpy(windows).to(self.device)).float().cpu().numpy()


def window_of(net) -> int:
    """The side of the windows a PyTorch second stage sees (data.spot_windows.WINDOW for one that does not say)."""
    return int(getattr(net, "window", WINDOW))


def page_network(net, bf16: bool = False) -> PageNetwork:
    """`net` as a PageNetwork: itself, or a PyTorch network as it is (its own graph, bf16 autocast where asked)."""
    return net if isinstance(net, PageNetwork) else TorchPageNetwork(net, bf16)


def spot_network(net, bf16: bool = False) -> SpotNetwork:
    """`net` as a SpotNetwork: itself, or a PyTorch classifier (bf16 autocast where asked)."""
    return net if isinstance(net, SpotNetwork) else TorchSpotNetwork(net, bf16)


def fast_page_network(net, bf16: bool = False) -> PageNetwork:
    """A PyTorch first stage by its cheaper exact graph (models/fast_graph.py), as the search runs it in PyTorch; the
    graph shares `net`'s layers and freezes them, so give it a network that is not training."""
    from waldo_pl.models.fast_graph import fast_graph

    return TorchPageNetwork(fast_graph(net), bf16)
