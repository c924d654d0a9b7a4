"""Windows around spots for the second stage: cut at a side scaled to the spot's region, resized to WINDOW px.

The same cut serves training (data/spot_stream.py, around true Waldos and the first stage's false peaks) and
prediction (inference/rerank.py, around the first stage's best spots), so the classifier sees at test time
what it learned on."""

from __future__ import annotations

import numpy as np
from PIL import Image

WINDOW = 64  # the side the classifier sees
CONTEXT = 3.0  # the window is this many times the spot region's longer side: head, shoulders and neighbours
MIN_SIDE, MAX_SIDE = 48, 192
DEFAULT_SIDE = 96  # a spot without a region (its peak below the box threshold)


def window_side(box) -> int:
    """The window side (page px) for a spot's region box (x1, y1, x2, y2) or None."""
    if box is None:
        return DEFAULT_SIDE
    longer = max(box[2] - box[0], box[3] - box[1])
    return int(np.clip(round(CONTEXT * longer), MIN_SIDE, MAX_SIDE))


def cut_window(page: np.ndarray, x: float, y: float, side: int, out: int) -> np.ndarray:
    """The side x side window of an RGB uint8 page centred on (x, y), zero beyond the page, as float32 (3, out, out)
    in [0, 1], resized by antialiased bilinear interpolation in float (PIL's, as PyTorch's antialias=True)."""
    h, w = page.shape[:2]
    side = max(4, int(side))
    x0, y0 = int(round(x - side / 2)), int(round(y - side / 2))
    window = np.zeros((side, side, 3), dtype=np.uint8)
    px0, py0, px1, py1 = max(0, x0), max(0, y0), min(w, x0 + side), min(h, y0 + side)
    if px1 > px0 and py1 > py0:
        window[py0 - y0 : py1 - y0, px0 - x0 : px1 - x0] = page[py0:py1, px0:px1]
    crop = window.transpose(2, 0, 1).astype(np.float32) / 255
    if side != out:
        crop = np.stack(
            [np.asarray(Image.fromarray(channel, mode="F").resize((out, out), Image.BILINEAR)) for channel in crop]
        )
    return crop
