"""What a person looks at: the answer on a page-sized preview, Waldo zoomed beside it with the next best
candidates, and the heatmap laid over the page. `full` keeps the tutorial's page-size figures."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from waldo_pl.inference.answer import Spot
from waldo_pl.odds import expit as probability

# Dark blue -> purple -> orange -> pale yellow, as a 256-entry table (a table keeps huge pages small in memory).
HEAT_COLOURS = np.array([[0, 0, 40], [80, 20, 120], [190, 50, 90], [250, 140, 30], [255, 250, 180]], np.float32)
HEAT_TABLE = np.stack(
    [np.interp(np.linspace(0, 1, 256), np.linspace(0, 1, len(HEAT_COLOURS)), HEAT_COLOURS[:, c]) for c in range(3)],
    axis=-1,
).astype(np.uint8)

PREVIEW_SIDE = 1400  # the page's longer side in the result picture and the overlay: fits a screen
PANEL = 360  # the side panel: Waldo zoomed, then the next best candidates
INSET = 320  # Waldo's zoomed window, px a side
THUMB = 150  # each candidate's zoomed window
ANSWER, CANDIDATE, LINK = (230, 20, 30), (255, 160, 0), (255, 220, 0)


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


def tutorial_figure(page: np.ndarray, spot: Spot) -> np.ndarray:
    """The tutorial's figure, page-size: the page dimmed everywhere but Waldo's box, the box drawn in red."""
    h, w = page.shape[:2]
    x1, y1, x2, y2 = marked_box(spot, h, w)
    out = page >> 1  # half as bright, as the tutorial's black overlay at alpha 0.5
    out[y1:y2, x1:x2] = page[y1:y2, x1:x2]
    line = max(2, round(max(h, w) / 800))
    # the line goes around the box, not over Waldo
    top, left, bottom, right = max(0, y1 - line), max(0, x1 - line), min(h, y2 + line), min(w, x2 + line)
    for rows, cols in (
        (slice(top, y1), slice(left, right)),
        (slice(y2, bottom), slice(left, right)),
        (slice(top, bottom), slice(left, x1)),
        (slice(top, bottom), slice(x2, right)),
    ):
        out[rows, cols] = (255, 0, 0)
    return out


def preview_scale(height: int, width: int) -> float:
    return min(1.0, PREVIEW_SIDE / max(height, width))


def shrunk(page: np.ndarray, scale: float) -> Image.Image:
    """The page at `scale` (shrunk, or for a small page enlarged)."""
    image = Image.fromarray(np.ascontiguousarray(page))
    if scale == 1.0:
        return image
    size = (max(1, round(page.shape[1] * scale)), max(1, round(page.shape[0] * scale)))
    return image.resize(size, Image.BILINEAR, reducing_gap=2.0 if scale < 1 else None)


def window_around(
    box: tuple[int, int, int, int], height: int, width: int, least: int = 64
) -> tuple[int, int, int, int]:
    """A square around `box`, three times its longer side (Waldo with some of his scene), inside the page."""
    x1, y1, x2, y2 = box
    side = min(max(least, 3 * max(x2 - x1, y2 - y1)), height, width)
    cx, cy = (x1 + x2) // 2, (y1 + y2) // 2
    left, top = min(max(0, cx - side // 2), width - side), min(max(0, cy - side // 2), height - side)
    return left, top, left + side, top + side


def zoomed(page: np.ndarray, spot: Spot, side: int, colour) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """The window around a spot, enlarged to `side` px, its box outlined; and the window in page pixels."""
    h, w = page.shape[:2]
    box = marked_box(spot, h, w)
    window = window_around(box, h, w)
    left, top, right, bottom = window
    crop = Image.fromarray(np.ascontiguousarray(page[top:bottom, left:right])).resize((side, side), Image.LANCZOS)
    k = side / (right - left)
    ImageDraw.Draw(crop).rectangle(
        [(box[0] - left) * k - 2, (box[1] - top) * k - 2, (box[2] - left) * k + 1, (box[3] - top) * k + 1],
        outline=colour,
        width=2,
    )
    return crop, window


def font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType sizes
        return ImageFont.load_default()


def result_picture(page: np.ndarray, spots: list[Spot]) -> np.ndarray:
    """The page shrunk to fit a screen, dimmed but for the answer, the next best candidates numbered; beside it
    Waldo zoomed with a line to where he is, and each candidate zoomed with its confidence."""
    h, w = page.shape[:2]
    best, others = spots[0], spots[1:]
    thumbs_per_row = 2
    rows = -(-len(others) // thumbs_per_row)
    panel_height = 40 + INSET + (40 + rows * (THUMB + 30) if others else 0) + 10
    # a large page shrinks to fit a screen; a small one grows to the panel's height, leaving no empty band
    scale = min(PREVIEW_SIDE / max(h, w), max(1.0, panel_height / h))
    preview = shrunk(page, scale)
    pw, ph = preview.size
    bx1, by1, bx2, by2 = (round(v * scale) for v in marked_box(best, h, w))
    bx2, by2 = max(bx2, bx1 + 1), max(by2, by1 + 1)
    pixels = np.asarray(preview)
    dimmed = pixels >> 1
    dimmed[by1:by2, bx1:bx2] = pixels[by1:by2, bx1:bx2]
    preview = Image.fromarray(dimmed)

    canvas = Image.new("RGB", (pw + PANEL, max(ph, panel_height)), (24, 24, 24))
    canvas.paste(preview, (0, 0))
    draw = ImageDraw.Draw(canvas)
    for n, spot in enumerate(others, start=2):
        x1, y1, x2, y2 = (round(v * scale) for v in marked_box(spot, h, w))
        draw.rectangle([x1 - 3, y1 - 3, x2 + 2, y2 + 2], outline=CANDIDATE, width=2)
        draw.text((x2 + 4, y1 - 4), str(n), fill=CANDIDATE, font=font(16))
    draw.rectangle([bx1 - 4, by1 - 4, bx2 + 3, by2 + 3], outline=ANSWER, width=3)

    inset, _ = zoomed(page, best, INSET, ANSWER)
    ix, iy = pw + (PANEL - INSET) // 2, 40
    draw.text(
        (ix, 8), f"Waldo? {100 * best.confidence:.1f}% at ({best.x}, {best.y})", fill=(255, 255, 255), font=font(20)
    )
    canvas.paste(inset, (ix, iy))
    draw.rectangle([ix - 3, iy - 3, ix + INSET + 2, iy + INSET + 2], outline=ANSWER, width=3)
    draw.line([(bx2 + 3, (by1 + by2) // 2), (ix - 3, iy + INSET // 2)], fill=LINK, width=3)
    if others:
        top = iy + INSET + 14
        draw.text((pw + 20, top), "next best", fill=(255, 255, 255), font=font(18))
        for i, spot in enumerate(others):
            thumb, _ = zoomed(page, spot, THUMB, CANDIDATE)
            tx = pw + 20 + (i % thumbs_per_row) * (THUMB + 20)
            ty = top + 28 + (i // thumbs_per_row) * (THUMB + 30)
            canvas.paste(thumb, (tx, ty))
            draw.text((tx, ty + THUMB + 4), f"#{i + 2}  {100 * spot.confidence:.1f}%", fill=CANDIDATE, font=font(16))
    return np.asarray(canvas)


def max_pooled(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """An (H, W) map shrunk to (height, width) <= (H, W), each cell the maximum of the pixels it covers (adaptive
    max-pooling: cell i spans floor(i * H / height) to ceil((i + 1) * H / height), one pixel into the next cell
    where the division is not exact)."""
    for axis, size in ((0, height), (1, width)):
        length = image.shape[axis]
        if size == length:
            continue
        cells = np.arange(size)
        starts, ends = cells * length // size, -(-(cells + 1) * length // size)
        pooled = np.maximum.reduceat(image, starts, axis=axis)
        spill = np.flatnonzero(ends[:-1] > starts[1:])
        index = [slice(None)] * image.ndim
        index[axis] = spill
        pooled[tuple(index)] = np.maximum(pooled[tuple(index)], np.take(image, starts[spill + 1], axis=axis))
        image = pooled
    return image


def heatmap_overlay(page: np.ndarray, log_odds: np.ndarray) -> np.ndarray:
    """The Waldo probability laid over the page (the page in grey, the probability in colour where it is high),
    shrunk as the result picture; each shown pixel takes the highest probability it covers, so a small Waldo
    stays visible."""
    h, w = page.shape[:2]
    scale = preview_scale(h, w)
    grey = np.asarray(shrunk(page, scale).convert("L"), np.float32)[..., None] * 0.55
    ph, pw = grey.shape[:2]
    level = probability(max_pooled(np.asarray(log_odds, dtype=np.float32), ph, pw)).astype(np.float32)
    colour = HEAT_TABLE[np.round(level * 255).astype(np.uint8)].astype(np.float32)
    alpha = np.clip(level * 1.2, 0, 0.9)[..., None]
    return (grey * (1 - alpha) + colour * alpha).round().astype(np.uint8)
