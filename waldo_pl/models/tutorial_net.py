"""The tutorial's fully-convolutional network, layer for layer (1,395,650 parameters).

Encoder: four conv + LeakyReLU(0.3, Keras' default slope) + 2x max-pool stages of 64, 128, 256
and 256 channels (the last conv 1x1). Decoder: three nearest 2x upsample + 3x3 conv + ReLU
stages, each added to the encoder output of the same size, then a last upsample and a 1x1 conv
to 2 logits a pixel. Any input whose sides are multiples of 16.
"""

import torch
import torch.nn.functional as F
from torch import nn

from waldo_pl.models.outputs import MULTIPLE


class TutorialNet(nn.Module):
    def __init__(self, classes: int = 2, leaky_slope: float = 0.3):
        super().__init__()
        self.leaky_slope = leaky_slope
        self.down1 = nn.Conv2d(3, 64, 3, padding=1)
        self.down2 = nn.Conv2d(64, 128, 3, padding=1)
        self.down3 = nn.Conv2d(128, 256, 3, padding=1)
        self.down4 = nn.Conv2d(256, 256, 1)
        self.up3 = nn.Conv2d(256, 256, 3, padding=1)
        self.up2 = nn.Conv2d(256, 128, 3, padding=1)
        self.up1 = nn.Conv2d(128, 64, 3, padding=1)
        self.head = nn.Conv2d(64, classes, 1)
        for conv in self.modules():
            if isinstance(conv, nn.Conv2d):  # Keras' defaults: Glorot-uniform kernels, zero biases
                nn.init.xavier_uniform_(conv.weight)
                nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> (B, classes, H, W) logits."""
        if x.shape[-1] % MULTIPLE or x.shape[-2] % MULTIPLE:
            raise ValueError(f"TutorialNet needs sides that are multiples of {MULTIPLE}, got {tuple(x.shape[-2:])}")
        down = lambda conv, t: F.max_pool2d(F.leaky_relu(conv(t), self.leaky_slope), 2)
        up = lambda conv, t: F.relu(conv(F.interpolate(t, scale_factor=2.0, mode="nearest")))
        skip1 = down(self.down1, x)
        skip2 = down(self.down2, skip1)
        skip3 = down(self.down3, skip2)
        x = down(self.down4, skip3)
        x = up(self.up3, x) + skip3
        x = up(self.up2, x) + skip2
        x = up(self.up1, x) + skip1
        return self.head(F.interpolate(x, scale_factor=2.0, mode="nearest"))
