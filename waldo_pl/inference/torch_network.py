"""PyTorch networks as the search runs them: NumPy pages in, NumPy log-odds out, on the network's device."""

from __future__ import annotations

import contextlib
import itertools

import numpy as np
import torch
from torch import nn

from waldo_pl.inference.heatmap import PageNetwork
from waldo_pl.models.fast_graph import fast_graph
from waldo_pl.models.outputs import waldo_log_odds


def device_of(net: nn.Module) -> torch.device:
    """Where a network's weights are (the CPU for one without any)."""
    return next(itertools.chain(net.parameters(), net.buffers()), torch.zeros(0)).device


def autocast(device: torch.device, bf16: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


class TorchNetwork(PageNetwork):
    """A segmentation network (two logits a pixel, or the log-odds alone) as a PageNetwork."""

    def __init__(self, net: nn.Module, bf16: bool = False):
        self.net, self.bf16 = net, bf16
        self.device = device_of(net)

    @torch.inference_mode()
    def __call__(self, pages: np.ndarray) -> np.ndarray:
        # (B, 3, H, W) float in [0, 1], channels-last: the layout the network runs fastest in
        x = torch.from_numpy(np.ascontiguousarray(pages)).to(self.device).permute(0, 3, 1, 2).float().div_(255)
        with autocast(self.device, self.bf16):
            return waldo_log_odds(self.net(x.contiguous(memory_format=torch.channels_last))).cpu().numpy()


def spot_logits(net: nn.Module, windows: np.ndarray, bf16: bool = False) -> np.ndarray:
    """A second-stage classifier's log-odds for (B, 3, S, S) float windows in [0, 1]."""
    device = device_of(net)
    with torch.inference_mode(), autocast(device, bf16):
        return net(torch.from_numpy(windows).to(device)).float().cpu().numpy()


class _LogOdds(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return waldo_log_odds(self.net(x))


def log_odds_graph(net: nn.Module) -> nn.Module:
    """A first stage as one graph from (B, 3, H, W) in [0, 1] to (B, H, W) Waldo log-odds: the tutorial's network by
    its cheaper exact graph (models/fast_graph.py), any other as it is."""
    return _LogOdds(fast_graph(net)).eval()
