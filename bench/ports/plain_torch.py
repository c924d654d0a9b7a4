"""The anchor predict.py is measured against: a plain PyTorch port of the tutorial's network, float32, one
page at scale 1 as one whole process (read, pad, run, argmax), nothing but torch, numpy and PIL.

    python bench/ports/plain_torch.py PAGE WEIGHTS.pt
"""

import sys

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.down1, self.down2 = nn.Conv2d(3, 64, 3, padding=1), nn.Conv2d(64, 128, 3, padding=1)
        self.down3, self.down4 = nn.Conv2d(128, 256, 3, padding=1), nn.Conv2d(256, 256, 1)
        self.up3, self.up2 = nn.Conv2d(256, 256, 3, padding=1), nn.Conv2d(256, 128, 3, padding=1)
        self.up1, self.head = nn.Conv2d(128, 64, 3, padding=1), nn.Conv2d(64, 2, 1)

    def forward(self, x):
        down = lambda conv, t: F.max_pool2d(F.leaky_relu(conv(t), 0.3), 2)
        up = lambda conv, t: F.relu(conv(F.interpolate(t, scale_factor=2.0, mode="nearest")))
        s1 = down(self.down1, x)
        s2 = down(self.down2, s1)
        s3 = down(self.down3, s2)
        x = down(self.down4, s3)
        x = up(self.up1, up(self.up2, up(self.up3, x) + s3) + s2) + s1
        return self.head(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def main(page_path: str, weights_path: str) -> None:
    state = torch.load(weights_path, map_location="cpu", weights_only=True)["state_dict"]
    net = Net()
    net.load_state_dict({k[4:]: v.float() for k, v in state.items() if k.startswith("net.")})
    net.eval()
    page = np.asarray(Image.open(page_path).convert("RGB"))
    h, w = page.shape[:2]
    x = torch.from_numpy(page).permute(2, 0, 1)[None].float() / 255
    x = F.pad(x, (0, -w % 16, 0, -h % 16), mode="replicate")
    with torch.inference_mode():
        logits = net(x)[0, :, :h, :w]
    log_odds = (logits[1] - logits[0]).numpy()
    y, x = np.unravel_index(int(log_odds.argmax()), log_odds.shape)
    print(f"{page_path}: ({x}, {y})")


if __name__ == "__main__":
    main(*sys.argv[1:3])
