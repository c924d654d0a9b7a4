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

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from scipy.special import expit
from torch import nn

MULTIPLE = 16  # four 2x poolings
MARGIN = 64  # beyond the network's reach (its receptive field is about 80 px wide)


def pad_to_multiple(image: torch.Tensor, multiple: int = MULTIPLE) -> torch.Tensor:
    """Pad (B, 3, H, W) on the right and bottom, repeating the edge, so both sides divide by `multiple`."""
    h, w = image.shape[-2:]
    pad_h, pad_w = -h % multiple, -w % multiple
    return F.pad(image, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else image


def page_logits(net: nn.Module, image: torch.Tensor) -> torch.Tensor:
    """(1, 3, H, W) in [0, 1] -> (1, 2, H, W) logits, the whole page in one pass, cropped back to H x W."""
    h, w = image.shape[-2:]
    return net(pad_to_multiple(image))[..., :h, :w]


def waldo_probability(logits: torch.Tensor) -> torch.Tensor:
    """(..., 2, H, W) logits -> (..., H, W) probability of Waldo: the sigmoid of his log-odds."""
    return waldo_log_odds(logits).sigmoid()


def waldo_log_odds(logits: torch.Tensor) -> torch.Tensor:
    """(..., 2, H, W) logits -> (..., H, W) log-odds of Waldo, float32: the probability is its sigmoid."""
    logits = logits.float()
    return logits[..., 1, :, :] - logits[..., 0, :, :]


def probability(log_odds: np.ndarray) -> np.ndarray:
    """The Waldo probability of a log-odds map (or value)."""
    return expit(log_odds)


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
def heatmap(
    net: nn.Module,
    page: np.ndarray,
    tile: int = 1024,
    batch_size: int = 4,
    max_whole_pixels: int = 1 << 22,
    bf16: bool = False,
) -> np.ndarray:
    """Waldo log-odds (H, W) float32 for an RGB uint8 page (H, W, 3); tiles when the page is over `max_whole_pixels`."""
    check_tile(tile)
    device = next(net.parameters()).device
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


def mirrored_heatmap(net: nn.Module, page: np.ndarray, flip: bool = False, **kwargs) -> np.ndarray:
    """`heatmap`; with `flip`, the mean of the page's heatmap and its mirror image's (mirrored back), so that a
    spot the network sees only one way round counts half."""
    heat = heatmap(net, page, **kwargs)
    if flip:
        heat = (heat + heatmap(net, page[:, ::-1], **kwargs)[:, ::-1]) / 2
    return heat


def heatmap_at_scales(net: nn.Module, page: np.ndarray, scales=(1.0,), flip: bool = False, **kwargs) -> np.ndarray:
    """The page searched at each scale (and mirrored, with `flip`); per pixel the best (highest) log-odds
    over the scales, in the page's own pixels."""
    check_scales(scales)
    h, w = page.shape[:2]
    best = None
    for scale in scales:
        if scale == 1.0:
            heat = mirrored_heatmap(net, page, flip, **kwargs)
        else:
            size = (max(MULTIPLE, round(w * scale)), max(MULTIPLE, round(h * scale)))
            resized = np.array(Image.fromarray(np.ascontiguousarray(page)).resize(size, Image.BILINEAR))
            small = torch.from_numpy(mirrored_heatmap(net, resized, flip, **kwargs))[None, None]
            heat = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)[0, 0].numpy()
        best = heat if best is None else np.maximum(best, heat)
    return best
