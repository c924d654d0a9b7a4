"""Make a clean scan's crop look photographed: a book page under a webcam or a phone is slightly turned and
bent (perspective, lens barrel), out of focus or shaken (blur), lit unevenly (vignetting, gamma, contrast),
tinted (white balance), noisy, resampled and JPEG-compressed.

Every parameter is drawn from the crop stream's own generator, so the stream stays a function of its seed;
the geometric steps move the target with the crop (torchvision's `tv_tensors.Mask`, nearest-neighbour).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from torchvision import tv_tensors


def perspective(rng: np.random.Generator, crop, target, size: int, strength: float = 0.12):
    """Each corner moved inwards or outwards by up to `strength` of the side: the page seen a little askew."""
    corners = [[0, 0], [size - 1, 0], [size - 1, size - 1], [0, size - 1]]
    moved = [
        [x + rng.uniform(-strength, strength) * size, y + rng.uniform(-strength, strength) * size] for x, y in corners
    ]
    return (
        TF.perspective(crop, corners, moved, interpolation=TF.InterpolationMode.BILINEAR, fill=0.5),
        TF.perspective(target, corners, moved, fill=0),
    )


def barrel(rng: np.random.Generator, crop: torch.Tensor, target: torch.Tensor, size: int, strength: float = 0.15):
    """Radial lens distortion r -> r (1 + k r^2) about a centre near the middle; one sampling grid for both."""
    k = rng.uniform(-strength, strength)
    cx, cy = rng.uniform(-0.3, 0.3, size=2)
    axis = torch.linspace(-1, 1, size)
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    dx, dy = x - cx, y - cy
    factor = 1 + k * (dx * dx + dy * dy)
    grid = torch.stack([cx + dx * factor, cy + dy * factor], dim=-1)[None]
    crop = F.grid_sample(crop[None], grid, mode="bilinear", padding_mode="reflection", align_corners=True)[0]
    target = F.grid_sample(target[None, None].float(), grid, mode="nearest", padding_mode="zeros", align_corners=True)[
        0, 0
    ]
    return crop, target.long()


def motion_kernel(rng: np.random.Generator, length: int) -> torch.Tensor:
    """A normalised line of `length` pixels at a random angle: the blur of a shaken camera."""
    kernel = np.zeros((length, length), np.float32)
    angle = rng.uniform(0, np.pi)
    centre = (length - 1) / 2
    for t in np.linspace(-centre, centre, 4 * length):
        kernel[int(round(centre + t * np.sin(angle))), int(round(centre + t * np.cos(angle)))] = 1
    return torch.from_numpy(kernel / kernel.sum())


def photograph(rng: np.random.Generator, crop: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(3, P, P) float crop in [0, 1] and (P, P) target -> the same as a photo of the page might show them."""
    size = crop.shape[-1]
    image, mask = tv_tensors.Image(crop), tv_tensors.Mask(target)
    if rng.random() < 0.7:
        image, mask = perspective(rng, image, mask, size)
    crop, target = torch.as_tensor(image), torch.as_tensor(mask)
    if rng.random() < 0.5:
        crop, target = barrel(rng, crop, target, size)
    if rng.random() < 0.5:  # seen smaller than it is, then enlarged again
        small = max(16, int(size * rng.uniform(0.45, 0.9)))
        crop = F.interpolate(
            F.interpolate(crop[None], size=small, mode="bilinear", antialias=True), size=size, mode="bilinear"
        )[0]
    if rng.random() < 0.6:
        crop = TF.gaussian_blur(crop, kernel_size=7, sigma=float(rng.uniform(0.3, 1.8)))
    if rng.random() < 0.3:
        kernel = motion_kernel(rng, int(rng.choice([3, 5, 7])))  # odd: the padded crop keeps its size
        crop = F.conv2d(F.pad(crop[:, None], [kernel.shape[-1] // 2] * 4, mode="replicate"), kernel[None, None])[:, 0]
    # light and colour: white balance (per-channel gains), gamma, contrast, vignetting
    crop = crop * torch.from_numpy(rng.uniform(0.75, 1.2, size=3).astype(np.float32))[:, None, None]
    crop = crop.clamp(0, 1) ** float(rng.uniform(0.7, 1.5))
    crop = (crop - 0.5) * float(rng.uniform(0.6, 1.1)) + 0.5 + float(rng.uniform(-0.1, 0.1))
    if rng.random() < 0.6:
        axis = torch.linspace(-1, 1, size)
        y, x = torch.meshgrid(axis - float(rng.uniform(-1, 1)), axis - float(rng.uniform(-1, 1)), indexing="ij")
        crop = crop * (1 - float(rng.uniform(0.1, 0.45)) * ((x * x + y * y) / 8).clamp(max=1))
    crop = crop + torch.from_numpy(rng.normal(0, rng.uniform(0.0, 0.05), size=crop.shape).astype(np.float32))
    crop = crop.clamp(0, 1)
    if rng.random() < 0.7:
        quality = int(rng.integers(30, 90))
        crop = TF.jpeg((crop * 255).round().to(torch.uint8), quality=quality).float() / 255
    return crop.contiguous(), target.contiguous()
