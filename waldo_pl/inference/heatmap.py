"""The network's Waldo probability over a whole page, in the page's own pixels."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

MULTIPLE = 16  # four 2x poolings


def pad_to_multiple(image: torch.Tensor, multiple: int = MULTIPLE) -> torch.Tensor:
    """Pad (B, 3, H, W) on the right and bottom, repeating the edge, so both sides divide by `multiple`."""
    h, w = image.shape[-2:]
    pad_h, pad_w = -h % multiple, -w % multiple
    return F.pad(image, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else image


def page_logits(net: nn.Module, image: torch.Tensor) -> torch.Tensor:
    """(1, 3, H, W) in [0, 1] -> (1, 2, H, W) logits, the whole page in one pass, cropped back to H x W."""
    h, w = image.shape[-2:]
    return net(pad_to_multiple(image))[..., :h, :w]


def waldo_probability(logits: torch.Tensor) -> torch.Tensor:
    """(..., 2, H, W) logits -> (..., H, W) probability of Waldo."""
    return logits.float().softmax(dim=-3)[..., 1, :, :]
