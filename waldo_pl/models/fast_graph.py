"""The tutorial's network as the search runs it: TutorialNet's own cheaper graph (models/tutorial_net.py), with
the transposed kernels made once, and the 1x1 head reduced to the difference of its two outputs (Waldo's
log-odds), so that one channel is upsampled instead of two. The same log-odds to float rounding, from the same
weights.
"""

from __future__ import annotations

import torch
from torch import nn

from waldo_pl.models.outputs import waldo_log_odds
from waldo_pl.models.tutorial_net import TutorialNet, transposed_kernel


def upsampling_conv(conv: nn.Conv2d) -> nn.ConvTranspose2d:
    """nearest 2x upsample + `conv` (3x3, padding 1) as one transposed conv at the input's resolution."""
    up = nn.ConvTranspose2d(conv.in_channels, conv.out_channels, 4, stride=2, padding=1).to(conv.weight.device)
    with torch.no_grad():
        up.weight.copy_(transposed_kernel(conv.weight.detach()))
        up.bias.copy_(conv.bias.detach())
    return up


class FastTutorialNet(TutorialNet):
    """TutorialNet's Waldo log-odds, (B, 3, H, W) -> (B, 1, H, W), frozen, for the search."""

    def __init__(self, net: TutorialNet):
        super().__init__(classes=1, leaky_slope=net.leaky_slope)
        self.down1, self.down2, self.down3, self.down4 = net.down1, net.down2, net.down3, net.down4
        self.up3, self.up2, self.up1 = upsampling_conv(net.up3), upsampling_conv(net.up2), upsampling_conv(net.up1)
        head = net.head
        with torch.no_grad():
            self.head.weight.copy_(head.weight[1:2] - head.weight[0:1])
            self.head.bias.copy_(head.bias[1:2] - head.bias[0:1])
        self.requires_grad_(False)

    def upsampled_conv(self, conv: nn.ConvTranspose2d, t: torch.Tensor) -> torch.Tensor:
        return conv(t)


def fast_graph(net: nn.Module) -> nn.Module:
    """The cheaper inference graph of a TutorialNet (in eval mode, on its device); any other network as it is."""
    if type(net) is not TutorialNet:
        return net
    device = next(net.parameters()).device
    return FastTutorialNet(net).eval().to(device, memory_format=torch.channels_last)


class LogOddsGraph(nn.Module):
    """A first stage as one graph from (B, 3, H, W) in [0, 1] to (B, H, W) Waldo log-odds, by its cheaper exact graph:
    what the OpenVINO backend converts."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = fast_graph(net)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return waldo_log_odds(self.net(x))
