"""The network's Waldo score over a whole page, in the page's own pixels.

The score is the log-odds of Waldo (his logit minus the background's; the probability is its
sigmoid). Answers are ranked by it, not by the probability: a confident network saturates the
probability at exactly 1.0 on many pixels at once, and the argmax among them is then the first,
wherever it lies, while their log-odds still tell them apart.

Pages are padded (never stretched) to a multiple of 16 and run whole, or for large pages in
overlapping tiles. Tiles start on the 16-pixel grid and only their inner parts, farther than
`margin` from a cut, are kept and blended, so tiled and whole-page heatmaps agree.
"""

from __future__ import annotations

import contextlib
import itertools

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from waldo_pl.models.outputs import MULTIPLE, page_logits, waldo_log_odds

MARGIN = 64  # beyond the network's reach (its receptive field is about 80 px wide)


def tile_starts(length: int, tile: int, margin: int) -> list[int]:
    """Starts of tiles of side `tile` over `length`, each next one overlapping by 3 margins (a third blended)."""
    if length <= tile:
        return [0]
    step = tile - 3 * margin
    starts = list(range(0, length - tile, step)) + [length - tile]
    return sorted(set(starts))


def blend_weights(start: int, tile: int, length: int, margin: int) -> np.ndarray:
    """Along one axis: 0 within `margin` of a cut, rising over the next `margin`, 1 inside; page edges keep full weight."""
    size = min(tile, length)
    ramp = np.clip((np.arange(size) - margin + 1) / margin, 0, 1).astype(np.float32)
    weights = np.ones(size, np.float32)
    if start > 0:
        weights = np.minimum(weights, ramp)
    if start + size < length:
        weights = np.minimum(weights, ramp[::-1])
    return weights


def _to_tensor(page: np.ndarray, device: torch.device) -> torch.Tensor:
    """(1, 3, H, W) float in [0, 1], channels-last: the layout the network runs fastest in."""
    pixels = torch.from_numpy(np.ascontiguousarray(page)).to(device)
    return pixels.permute(2, 0, 1)[None].float().div_(255).contiguous(memory_format=torch.channels_last)


def check_tile(tile: int) -> None:
    """Tiles start on the 16-px grid and must keep something beyond their three blended margins."""
    if tile % MULTIPLE or tile <= 3 * MARGIN:
        raise ValueError(f"tile={tile}: must be a multiple of {MULTIPLE} above {3 * MARGIN}, e.g. 1024")


def check_scales(scales) -> None:
    if not scales or min(scales) <= 0:
        raise ValueError(f"scales={list(scales)}: give one or more positive sizes, e.g. [1.0, 1.25]")


@torch.inference_mode()
def page_log_odds(
    net: nn.Module,
    page: np.ndarray,
    tile: int = 1024,
    batch_size: int = 4,
    max_whole_pixels: int = 1 << 22,
    bf16: bool = False,
) -> np.ndarray:
    """Waldo log-odds (H, W) float32 for an RGB uint8 page (H, W, 3); tiles when the page is over `max_whole_pixels`."""
    check_tile(tile)
    device = next(itertools.chain(net.parameters(), net.buffers())).device
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    h, w = page.shape[:2]
    if h * w <= max_whole_pixels:
        with autocast:
            return waldo_log_odds(page_logits(net, _to_tensor(page, device)))[0].cpu().numpy()

    # The page as if padded to the 16-px grid (edge repeated, as pad_to_multiple does), without copying it:
    # only tiles that reach past the page are padded, one batch at a time.
    ph, pw = h + -h % MULTIPLE, w + -w % MULTIPLE
    ys, xs = tile_starts(ph, tile, MARGIN), tile_starts(pw, tile, MARGIN)
    total = np.zeros((ph, pw), np.float32)
    # The blend weights are separable and the tiles a grid, so their sum is an outer product of 1-D sums.
    weight_y, weight_x = np.zeros(ph, np.float32), np.zeros(pw, np.float32)
    for y in ys:
        weight_y[y : y + tile] += blend_weights(y, tile, ph, MARGIN)
    for x in xs:
        weight_x[x : x + tile] += blend_weights(x, tile, pw, MARGIN)
    corners = [(y, x) for y in ys for x in xs]
    for i in range(0, len(corners), batch_size):
        batch = corners[i : i + batch_size]
        tiles = torch.cat([_to_tensor(_tile(page, y, x, min(tile, ph - y), min(tile, pw - x)), device) for y, x in batch])
        with autocast:
            scores = waldo_log_odds(net(tiles)).cpu().numpy()
        for (y, x), score in zip(batch, scores):
            th, tw = score.shape
            total[y : y + th, x : x + tw] += score * np.outer(blend_weights(y, tile, ph, MARGIN), blend_weights(x, tile, pw, MARGIN))
    total = total[:h, :w]
    total /= weight_y[:h, None]
    total /= weight_x[None, :w]
    return total


def _tile(page: np.ndarray, y: int, x: int, th: int, tw: int) -> np.ndarray:
    """page[y:y+th, x:x+tw], repeating the page's last row and column where it runs past them."""
    part = page[y : y + th, x : x + tw]
    short_h, short_w = th - part.shape[0], tw - part.shape[1]
    return np.pad(part, ((0, short_h), (0, short_w), (0, 0)), mode="edge") if short_h or short_w else part


def log_odds_at_scales(net: nn.Module, page: np.ndarray, scales=(1.0,), flip: bool = False, **kwargs) -> np.ndarray:
    """The page searched at each scale, per pixel the best (highest) log-odds over the scales, in the page's own
    pixels. With `flip`, each scale's map is the mean of the page's and its mirror image's (mirrored back), so
    that a spot the network sees only one way round counts half."""
    check_scales(scales)
    h, w = page.shape[:2]
    best = None
    for scale in scales:
        scaled = page
        if scale != 1.0:
            size = (max(MULTIPLE, round(w * scale)), max(MULTIPLE, round(h * scale)))
            scaled = np.array(Image.fromarray(np.ascontiguousarray(page)).resize(size, Image.BILINEAR))
        heat = page_log_odds(net, scaled, **kwargs)
        if flip:
            heat = (heat + page_log_odds(net, scaled[:, ::-1], **kwargs)[:, ::-1]) / 2
        if scale != 1.0:
            heat = F.interpolate(torch.from_numpy(np.ascontiguousarray(heat))[None, None], size=(h, w), mode="bilinear",
                                 align_corners=False)[0, 0].numpy()
        best = heat if best is None else np.maximum(best, heat)
    return best
