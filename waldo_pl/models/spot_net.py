"""The second stage: a small classifier that looks at a window around one of the first stage's spots
and says whether Waldo is there. Windows are scaled to the spot's region, so it sees Waldo at one size."""

from __future__ import annotations

import torch
from torch import nn

from waldo_pl.data.spot_windows import WINDOW  # the window's side in the classifier's pixels


def _stage(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True), nn.MaxPool2d(2)
    )


class SpotNet(nn.Module):
    """(B, 3, WINDOW, WINDOW) windows in [0, 1] -> (B,) log-odds that Waldo's head is at the centre."""

    def __init__(self, width: int = 16):
        super().__init__()
        self.width = width  # what a model file names beside the weights
        self.window = WINDOW
        self.features = nn.Sequential(
            _stage(3, width), _stage(width, 2 * width), _stage(2 * width, 4 * width), _stage(4 * width, 8 * width)
        )  # 64 -> 4 px
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(8 * width * (WINDOW // 16) ** 2, 1))

    def spec(self) -> dict:
        """What a model file names beside the weights (models/checkpoint.py builds it back)."""
        return {"_target_": f"{__name__}.{type(self).__name__}", "width": self.width}

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(windows)).squeeze(1)
