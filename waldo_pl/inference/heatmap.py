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

from collections.abc import Iterable

import numpy as np
from PIL import Image

from waldo_pl.inference.networks import page_network
from waldo_pl.models.grid import MULTIPLE

MARGIN = 64  # beyond the network's reach (its receptive field is about 80 px wide)


def tile_starts(length: int, tile: int, margin: int) -> list[int]:
    """Starts of tiles of side `tile` over `length`, each next one overlapping by 3 margins (a third blended)."""
    if length <= tile:
        return [0]
    step = tile - 3 * margin
    starts = list(range(0, length - tile, step)) + [length - tile]
    return sorted(set(starts))


def blend_weights(start: int, tile: int, length: int, margin: int) -> np.ndarray:
    """Along one axis: 0 within `margin` of a cut, rising over the next `margin`, 1 inside; page edges weigh fully."""
    size = min(tile, length)
    ramp = np.clip((np.arange(size) - margin + 1) / margin, 0, 1).astype(np.float32)
    weights = np.ones(size, np.float32)
    if start > 0:
        weights = np.minimum(weights, ramp)
    if start + size < length:
        weights = np.minimum(weights, ramp[::-1])
    return weights


def check_tile(tile: int) -> None:
    """Tiles start on the 16-px grid and must keep something beyond their three blended margins."""
    if tile % MULTIPLE or tile <= 3 * MARGIN:
        raise ValueError(f"tile={tile}: must be a multiple of {MULTIPLE} above {3 * MARGIN}, e.g. 1024")


def check_scales(scales) -> None:
    if not scales or min(scales) <= 0:
        raise ValueError(f"scales={list(scales)}: give one or more positive sizes, e.g. [1.0, 1.25]")


MERGES = ("mean", "max")  # how the scales' maps combine per pixel


def check_merge(merge: str) -> None:
    if merge not in MERGES:
        raise ValueError(f"merge={merge}: {' or '.join(MERGES)} (how the scales' heatmaps combine per pixel)")


def page_log_odds(
    net, page: np.ndarray, *, tile: int, batch_size: int, max_whole_pixels: int, bf16: bool = False
) -> np.ndarray:
    """Waldo log-odds (H, W) float32 for an RGB uint8 page (H, W, 3); tiles when the page is over `max_whole_pixels`.
    `net` is a PageNetwork, or a PyTorch network (run in bf16 autocast when `bf16`)."""
    check_tile(tile)
    net = page_network(net, bf16)
    h, w = page.shape[:2]
    if h * w <= max_whole_pixels:
        return net(_tile(page, 0, 0, h + -h % MULTIPLE, w + -w % MULTIPLE)[None])[0, :h, :w]

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
        scores = net(np.stack([_tile(page, y, x, min(tile, ph - y), min(tile, pw - x)) for y, x in batch]))
        for (y, x), score in zip(batch, scores):
            th, tw = score.shape
            total[y : y + th, x : x + tw] += score * np.outer(
                blend_weights(y, tile, ph, MARGIN), blend_weights(x, tile, pw, MARGIN)
            )
    total = total[:h, :w]
    total /= weight_y[:h, None]
    total /= weight_x[None, :w]
    return total


def _tile(page: np.ndarray, y: int, x: int, th: int, tw: int) -> np.ndarray:
    """page[y:y+th, x:x+tw], repeating the page's last row and column where it runs past them."""
    part = page[y : y + th, x : x + tw]
    short_h, short_w = th - part.shape[0], tw - part.shape[1]
    return np.pad(part, ((0, short_h), (0, short_w), (0, 0)), mode="edge") if short_h or short_w else part


def log_odds_at_scales(
    net,
    page: np.ndarray,
    scales,
    flip: bool,
    merge: str,
    bf16: bool,
    *,
    tile: int,
    batch_size: int,
    max_whole_pixels: int,
) -> np.ndarray:
    """The page searched at each scale, per pixel the mean log-odds over the scales (`merge="max"`: the best), in the
    page's own pixels: like `flip`, which makes each scale's map the mean of the page's and its mirror image's
    (mirrored back), a spot the network sees at one scale only counts less than one it sees at all of them."""
    check_scales(scales)
    check_merge(merge)
    net = page_network(net, bf16)
    h, w = page.shape[:2]
    kwargs = {"tile": tile, "batch_size": batch_size, "max_whole_pixels": max_whole_pixels}

    def at(scale: float) -> np.ndarray:
        scaled = page
        if scale != 1.0:
            size = (max(MULTIPLE, round(w * scale)), max(MULTIPLE, round(h * scale)))
            scaled = np.array(Image.fromarray(np.ascontiguousarray(page)).resize(size, Image.BILINEAR))
        heat = page_log_odds(net, scaled, **kwargs)
        if flip:
            heat = (heat + page_log_odds(net, scaled[:, ::-1], **kwargs)[:, ::-1]) / 2
        return resize_bilinear(heat, h, w) if scale != 1.0 else heat

    return merge_maps((at(scale) for scale in scales), merge)


def merge_maps(maps: Iterable[np.ndarray], merge: str) -> np.ndarray:
    """Same-sized maps met per pixel by their mean or their max (`merge`), one at a time, so that only two are held."""
    check_merge(merge)
    merged, count = None, 0
    for heat in maps:
        count += 1
        if merged is None:
            merged = heat
        elif merge == "max":
            merged = np.maximum(merged, heat)
        else:
            merged = merged + heat  # not in place: the first map may be the network's own output
    return merged if merge == "max" else merged / count


def resize_bilinear(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """A float (H, W) map resized to (height, width) by bilinear interpolation between pixel centres, the edge
    repeated (PyTorch's interpolate(mode="bilinear", align_corners=False), without antialiasing)."""
    for axis, size in ((0, height), (1, width)):
        low, high, frac = _sampling(0, size, image.shape[axis], size)
        frac = frac.reshape((-1, 1) if axis == 0 else (1, -1))
        image = np.take(image, low, axis=axis) * (1 - frac) + np.take(image, high, axis=axis) * frac
    return image.astype(np.float32, copy=False)


def _sampling(start: int, side: int, length: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Along one axis of a map `length` long resized to `size`, for the resized pixels start..start+side: the two
    pixels blended for each and how much of the second (identity where length == size)."""
    index = np.minimum(np.arange(start, start + side), size - 1)
    where = np.maximum((index.astype(np.float64) + 0.5) * (length / size) - 0.5, 0)
    low = np.minimum(where.astype(np.int64), length - 1)
    return low, np.minimum(low + 1, length - 1), (where - low).astype(np.float32)


WINDOW_SIDE = 256  # a window around a spot, in page pixels: Waldo's region with room around it
WINDOW_GRID = 64  # windows start on this grid (each pass cuts its crops on the network's 16-px grid itself)


def window_corners(centres, height: int, width: int, side: int = WINDOW_SIDE) -> list[tuple[int, int]]:
    """The top-left corner of a window of `side` around each (y, x) centre, on WINDOW_GRID, inside the page where
    the page is that large."""
    corners = []
    for y, x in centres:
        corner = []
        for centre, length in ((y, height), (x, width)):
            start = int(round((centre - side / 2) / WINDOW_GRID)) * WINDOW_GRID
            corner.append(max(0, min(start, (length - side) // WINDOW_GRID * WINDOW_GRID)))
        corners.append((corner[0], corner[1]))
    return corners


def log_odds_in_windows(
    net,
    page: np.ndarray,
    first_pass: np.ndarray,
    centres,
    scales,
    flip: bool,
    merge: str,
    bf16: bool,
    side: int = WINDOW_SIDE,
) -> tuple[np.ndarray, np.ndarray]:
    """`first_pass` (the page's log-odds at scale 1, unmirrored) with the search's other passes (each scale, and
    mirrored where `flip`) merged in as log_odds_at_scales merges them, but only within a window of `side` around
    each (y, x) of `centres`; and the mask of those windows. Each pass cuts its windows from the page as that pass
    sees it (resized, mirrored), on the network's 16-px grid as the whole page lies on it, with MARGIN around them
    (the network's reach), all of a pass's windows in one batch; so a window holds the whole search's log-odds,
    except within the network's reach of the page's edges."""
    check_scales(scales)
    check_merge(merge)
    net = page_network(net, bf16)
    h, w = page.shape[:2]
    corners = window_corners(centres, h, w, side)

    def at(scale: float) -> np.ndarray:
        """(N, side, side): each window's log-odds at `scale` (with `flip`, the mean of the page's and its mirror
        image's), in the page's own pixels; the page resized once for both."""
        seen = page
        if scale != 1.0:
            size = (max(MULTIPLE, round(w * scale)), max(MULTIPLE, round(h * scale)))
            seen = np.array(Image.fromarray(np.ascontiguousarray(page)).resize(size, Image.BILINEAR))
        if scale == 1.0:
            padded = np.pad(first_pass, ((0, side), (0, side)), mode="edge")
            plain = np.stack([padded[y : y + side, x : x + side] for y, x in corners])
        else:
            plain = windows_of(seen, False)
        return (plain + windows_of(seen, True)) / 2 if flip else plain

    def windows_of(seen: np.ndarray, mirrored: bool) -> np.ndarray:
        """(N, side, side): each window's log-odds from the page as this pass sees it (`seen`, resized), mirrored
        first where `mirrored` and mirrored back, in the page's own pixels."""
        sh, sw = seen.shape[:2]
        seen = seen[:, ::-1] if mirrored else seen
        # each window's pixels in this pass's map: rows as they are, columns mirrored where the page was
        rows = [_sampling(y, side, sh, h) for y, _ in corners]
        cols = [_sampling(x, side, sw, w) for _, x in corners]
        if mirrored:
            cols = [(sw - 1 - low, sw - 1 - high, frac) for low, high, frac in cols]
        # crops on the 16-px grid, MARGIN beyond the pixels read, one size for all (the widest reach of a window)
        starts = [
            (
                min(r[0].min(), r[1].min()) // MULTIPLE * MULTIPLE - MARGIN,
                min(c[0].min(), c[1].min()) // MULTIPLE * MULTIPLE - MARGIN,
            )
            for r, c in zip(rows, cols)
        ]
        reach = max(max(r[0].max(), r[1].max()) - s[0] for r, s in zip(rows, starts))
        reach = max(reach, *(max(c[0].max(), c[1].max()) - s[1] for c, s in zip(cols, starts)))
        crop = (reach + 1 + MARGIN + MULTIPLE - 1) // MULTIPLE * MULTIPLE
        pad = crop + MARGIN
        ph, pw = sh + -sh % MULTIPLE, sw + -sw % MULTIPLE  # as page_log_odds pads the pass's page
        padded = np.pad(seen, ((pad, pad + ph - sh), (pad, pad + pw - sw), (0, 0)), mode="edge")
        heat = net(np.stack([padded[y + pad : y + pad + crop, x + pad : x + pad + crop] for y, x in starts]))
        out = []
        for m, (y0, x0), (rl, rh, rf), (cl, ch, cf) in zip(heat, starts, rows, cols):
            top, bottom = m[rl - y0], m[rh - y0]
            vertical = top * (1 - rf[:, None]) + bottom * rf[:, None]
            out.append(vertical[:, cl - x0] * (1 - cf) + vertical[:, ch - x0] * cf)
        return np.stack(out)

    merged = merge_maps((at(scale) for scale in scales), merge)
    out, inside = first_pass.copy(), np.zeros((h, w), bool)
    for (y, x), heat in zip(corners, merged):
        out[y : y + side, x : x + side] = heat[: max(0, h - y), : max(0, w - x)]
        inside[y : y + side, x : x + side] = True
    return out, inside
