"""The tutorial's network rewritten for inference: the same log-odds, fewer operations. Each step is exact
(equal up to float rounding) and uses the trained weights as they are:

- max-pool before LeakyReLU: the activation is monotonic, so pool(act(x)) == act(pool(x)) on a quarter of
  the pixels;
- each decoder stage's nearest 2x upsample + 3x3 conv as four 2x2 convs at the lower resolution, one for
  each of the four output pixels an input pixel becomes (sub-pixel): 16 taps per input pixel instead of
  36, and no upsampled map;
- the 1x1 head before the last upsample, and only the difference of its two outputs (Waldo's log-odds):
  one channel is upsampled instead of 64.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from waldo_pl.models.outputs import MULTIPLE
from waldo_pl.models.tutorial_net import TutorialNet


def phase_kernels(weight: torch.Tensor) -> torch.Tensor:
    """A 3x3 kernel after a nearest 2x upsample, as the four 2x2 kernels (phases (0,0), (0,1), (1,0), (1,1))
    on the input before upsampling, stacked as (4 * out, in, 2, 2)."""
    # Along one axis, output row 2i+a reads upsampled rows 2i+a-1..2i+a+1, i.e. input rows:
    # a=0: i-1 (tap 0) and i (taps 1, 2); a=1: i (taps 0, 1) and i+1 (tap 2).
    fold = [torch.tensor([[1.0, 0, 0], [0, 1, 1]]), torch.tensor([[1.0, 1, 0], [0, 0, 1]])]
    phases = [torch.einsum("pk,ql,oikl->oipq", fold[a], fold[b], weight) for a in (0, 1) for b in (0, 1)]
    return torch.cat(phases)


class SubPixelUp(nn.Module):
    """nearest 2x upsample + 3x3 conv (padding 1), computed at the input's resolution."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        self.out_channels = conv.out_channels
        self.weight = nn.Parameter(phase_kernels(conv.weight.detach()), requires_grad=False)
        self.bias = nn.Parameter(conv.bias.detach().repeat(4), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        padded = F.pad(x, (1, 1, 1, 1))
        c = self.out_channels
        phases = [F.conv2d(padded[:, :, a : a + h + 1, bb : bb + w + 1], self.weight[i * c : (i + 1) * c], self.bias[i * c : (i + 1) * c])
                  for i, (a, bb) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)])]
        # (B, C, 4, H, W) with phase 2a+b -> pixel (2i+a, 2j+b)
        return F.pixel_shuffle(torch.stack(phases, dim=2).reshape(b, c * 4, h, w), 2)


class FastTutorialNet(nn.Module):
    """TutorialNet's Waldo log-odds, (B, 3, H, W) -> (B, 1, H, W), computed the cheaper way."""

    def __init__(self, net: TutorialNet):
        super().__init__()
        self.leaky_slope = net.leaky_slope
        self.down1, self.down2, self.down3, self.down4 = net.down1, net.down2, net.down3, net.down4
        self.up3, self.up2, self.up1 = SubPixelUp(net.up3), SubPixelUp(net.up2), SubPixelUp(net.up1)
        head = net.head
        self.head = nn.Conv2d(head.in_channels, 1, 1).to(head.weight.device)
        with torch.no_grad():
            self.head.weight.copy_(head.weight[1:2] - head.weight[0:1])
            self.head.bias.copy_(head.bias[1:2] - head.bias[0:1])
        self.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % MULTIPLE or x.shape[-2] % MULTIPLE:
            raise ValueError(f"the network needs sides that are multiples of {MULTIPLE}, got {tuple(x.shape[-2:])}")
        down = lambda conv, t: F.leaky_relu(F.max_pool2d(conv(t), 2), self.leaky_slope)
        skip1 = down(self.down1, x)
        skip2 = down(self.down2, skip1)
        skip3 = down(self.down3, skip2)
        x = down(self.down4, skip3)
        x = F.relu(self.up3(x)) + skip3
        x = F.relu(self.up2(x)) + skip2
        x = F.relu(self.up1(x)) + skip1
        return F.interpolate(self.head(x), scale_factor=2.0, mode="nearest")


def fast_graph(net: nn.Module) -> nn.Module:
    """The cheaper inference graph of a TutorialNet (in eval mode, on its device); any other network as it is."""
    if type(net) is not TutorialNet:
        return net
    device = next(net.parameters()).device
    return FastTutorialNet(net).eval().to(device, memory_format=torch.channels_last)
