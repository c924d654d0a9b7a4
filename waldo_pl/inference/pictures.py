"""What a person looks at: the heatmap in colour, and the tutorial's final figure."""

from __future__ import annotations

import numpy as np
import torch
from torchvision.utils import draw_bounding_boxes

from waldo_pl.inference.answer import Spot
from waldo_pl.models.outputs import probability

# Dark blue -> purple -> orange -> pale yellow, as a 256-entry table (a table keeps huge pages small in memory).
HEAT_COLOURS = np.array([[0, 0, 40], [80, 20, 120], [190, 50, 90], [250, 140, 30], [255, 250, 180]], np.float32)
HEAT_TABLE = np.stack(
    [np.interp(np.linspace(0, 1, 256), np.linspace(0, 1, len(HEAT_COLOURS)), HEAT_COLOURS[:, c]) for c in range(3)], axis=-1
).astype(np.uint8)


def colour_heatmap(log_odds: np.ndarray) -> np.ndarray:
    """(H, W) Waldo log-odds -> (H, W, 3) uint8 colour image of the probability."""
    levels = probability(log_odds).astype(np.float32, copy=False)
    levels = np.multiply(levels, 255, out=np.empty_like(levels)).round(out=levels).astype(np.uint8)
    return HEAT_TABLE[levels]


def marked_box(spot: Spot, height: int, width: int) -> tuple[int, int, int, int]:
    """The spot's box, or with no region above the threshold a square around the peak, 1/20 of the page's short side."""
    if spot.box is not None:
        return spot.box
    half = max(16, min(height, width) // 40)
    return max(0, spot.x - half), max(0, spot.y - half), min(width, spot.x + half + 1), min(height, spot.y + half + 1)


def result_picture(page: np.ndarray, spot: Spot) -> np.ndarray:
    """The page dimmed everywhere but Waldo's box, the box drawn in red."""
    h, w = page.shape[:2]
    x1, y1, x2, y2 = marked_box(spot, h, w)
    out = page >> 1  # half as bright, as the tutorial's black overlay at alpha 0.5
    out[y1:y2, x1:x2] = page[y1:y2, x1:x2]
    line = max(2, round(max(h, w) / 800))
    # the line goes around the box, not over Waldo
    outer = torch.tensor([[max(0, x1 - line), max(0, y1 - line), min(w - 1, x2 + line - 1), min(h - 1, y2 + line - 1)]], dtype=torch.float32)
    drawn = draw_bounding_boxes(torch.from_numpy(out).permute(2, 0, 1), outer, colors="red", width=line)
    return drawn.permute(1, 2, 0).numpy()
