"""What the networks' outputs mean: two logits a pixel, read as Waldo's log-odds, on pages whose sides
are multiples of 16 (four 2x poolings)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from waldo_pl.models.grid import MULTIPLE
from waldo_pl.odds import expit

__all__ = [
    "MULTIPLE",
    "page_logits",
    "pad_to_multiple",
    "probability",
    "two_class_logits",
    "waldo_log_odds",
    "waldo_probability",
]


def pad_to_multiple(image: torch.Tensor, multiple: int = MULTIPLE) -> torch.Tensor:
    """Pad (B, 3, H, W) on the right and bottom, repeating the edge, so both sides divide by `multiple`."""
    h, w = image.shape[-2:]
    pad_h, pad_w = -h % multiple, -w % multiple
    return F.pad(image, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else image


def page_logits(net: nn.Module, image: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] -> (B, 2, H, W) logits in one pass, padded to the grid and cropped back to H x W."""
    h, w = image.shape[-2:]
    return net(pad_to_multiple(image))[..., :h, :w]


def waldo_log_odds(logits: torch.Tensor) -> torch.Tensor:
    """(..., 2, H, W) logits -> (..., H, W) log-odds of Waldo, float32: the probability is its sigmoid. A network
    with one output channel (models/fast_graph.py) gives the log-odds themselves."""
    logits = logits.float()
    if logits.shape[-3] == 1:
        return logits[..., 0, :, :]
    return logits[..., 1, :, :] - logits[..., 0, :, :]


def two_class_logits(log_odds: torch.Tensor) -> torch.Tensor:
    """(..., H, W) log-odds -> (..., 2, H, W) logits with the same softmax (background 0), for the loss."""
    return torch.stack([torch.zeros_like(log_odds), log_odds], dim=-3)


def waldo_probability(logits: torch.Tensor) -> torch.Tensor:
    """(..., 2, H, W) logits -> (..., H, W) probability of Waldo: the sigmoid of his log-odds."""
    return waldo_log_odds(logits).sigmoid()


def probability(log_odds: np.ndarray) -> np.ndarray:
    """The Waldo probability of a log-odds map (or value)."""
    return expit(log_odds)
