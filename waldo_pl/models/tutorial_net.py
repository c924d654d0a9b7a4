"""The tutorial's fully-convolutional network (1,395,650 parameters).

Encoder: four conv + LeakyReLU(0.3, Keras' default slope) + 2x max-pool stages of 64, 128, 256
and 256 channels (the last conv 1x1). Decoder: three nearest 2x upsample + 3x3 conv + ReLU
stages, each added to the encoder output of the same size, then a last upsample and a 1x1 conv
to 2 logits a pixel. Any input whose sides are multiples of 16.

`layer_by_layer` computes it in the tutorial's order. `forward`, used to train and to search, computes the same
logits (to float rounding, and the same gradients) from the same weights with fewer operations (a training step's
time: bench/train_speed.py):
- max-pool before LeakyReLU: the activation is monotonic, so pool(act(x)) == act(pool(x)) on a quarter of the
  pixels;
- each decoder stage's nearest 2x upsample + 3x3 conv as one transposed conv (stride 2, 4x4 kernel, made from
  the 3x3 kernel at each call) on the map before upsampling: 16 taps per input pixel instead of 36;
- the 1x1 head before the last upsample, on a quarter of the pixels.
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

    def upsampled_conv(self, conv: nn.Conv2d, t: torch.Tensor) -> torch.Tensor:
        """conv(nearest 2x upsample of t), as one transposed conv on t."""
        return F.conv_transpose2d(t, transposed_kernel(conv.weight), conv.bias, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> (B, classes, H, W) logits: layer_by_layer's, computed the cheaper way."""
        x = self.encode_decode(
            x,
            down=lambda conv, t: F.leaky_relu(F.max_pool2d(conv(t), 2), self.leaky_slope),
            up=lambda conv, t: F.relu(self.upsampled_conv(conv, t)),
        )
        return F.interpolate(self.head(x), scale_factor=2.0, mode="nearest")

    def layer_by_layer(self, x: torch.Tensor) -> torch.Tensor:
        """The same logits in the tutorial's order of layers."""
        x = self.encode_decode(
            x,
            down=lambda conv, t: F.max_pool2d(F.leaky_relu(conv(t), self.leaky_slope), 2),
            up=lambda conv, t: F.relu(conv(F.interpolate(t, scale_factor=2.0, mode="nearest"))),
        )
        return self.head(F.interpolate(x, scale_factor=2.0, mode="nearest"))

    def encode_decode(self, x: torch.Tensor, down, up) -> torch.Tensor:
        """The four encoder stages `down(conv, t)` and three decoder stages `up(conv, t)`, each added to the encoder
        output of its size: the features at half the input's size, before the last upsample and the head."""
        if x.shape[-1] % MULTIPLE or x.shape[-2] % MULTIPLE:
            raise ValueError(
                f"{type(self).__name__} needs sides that are multiples of {MULTIPLE}, got {tuple(x.shape[-2:])}"
            )
        skip1 = down(self.down1, x)
        skip2 = down(self.down2, skip1)
        skip3 = down(self.down3, skip2)
        x = down(self.down4, skip3)
        x = up(self.up3, x) + skip3
        x = up(self.up2, x) + skip2
        return up(self.up1, x) + skip1


def transposed_kernel(weight: torch.Tensor) -> torch.Tensor:
    """A 3x3 conv kernel (out, in, 3, 3) applied after a nearest 2x upsample, as the (in, out, 4, 4) kernel of a
    transposed conv with stride 2 and padding 1 on the input before upsampling."""
    # Along one axis, output p = 2i + a reads upsampled p-1..p+1 (taps 0..2), i.e. input rows (p-1)//2..(p+1)//2.
    # The transposed conv gives output p input i through its tap j = p + 1 - 2i, so tap j gathers the 3x3 taps
    # t with (p + t - 1) // 2 == i, i.e. t in {2 - j, 3 - j}.
    gather = torch.tensor([[0.0, 0, 1], [0, 1, 1], [1, 1, 0], [1, 0, 0]], dtype=weight.dtype, device=weight.device)
    return torch.einsum("ja,kb,oiab->iojk", gather, gather, weight)
