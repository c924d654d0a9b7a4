"""What the second stage learns from: windows around true Waldos and around the first stage's false spots."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from waldo_pl.data.page import Page, distance_to_boxes, head_boxes
from waldo_pl.data.photo_look import photograph
from waldo_pl.data.spot_windows import MAX_SIDE, MIN_SIDE, cut_window, window_side
from waldo_pl.errors import UserError


class SpotStream(IterableDataset):
    """Endless (window float32 (3, WINDOW, WINDOW), label float32) pairs for the second stage, half Waldo.

    Waldo windows: around each page's true head boxes (sides and centres jittered) and around the first
    stage's spots that hit him. Waldo-free windows: around the first stage's false spots on the page,
    the higher ranked drawn more often (look-alikes first), around the page's decoys (a title badge's portrait: as
    often as a best false spot), and a share `random_share` of random windows.
    Each is flipped left-right half the time; a share `photo_look` is made to look photographed. A window's side is
    its spot's times exp(u), u drawn uniformly from SIDE_JITTER: down to 0.6 times, because on pages the first stage
    never saw, its region around Waldo is narrower than on its training pages, and windows cut only near their
    training size taught the second stage to doubt him there (bench/RESULTS.md, "Windows cut tighter").

    Copy-paste (Ghiasi et al., "Simple Copy-Paste", CVPR 2021): a share `paste` of the Waldo windows shows one of the
    pages' Waldos pasted into another page's scene at a Waldo-free spot, his head box and the body below it cut out
    with feathered edges, so that each Waldo is seen in many contexts; the photo look comes after the paste."""

    SIDE_JITTER = (-0.5, 0.2)

    def __init__(
        self,
        pages: Sequence[Page],
        spots: Sequence[Sequence[dict]],
        seed: int = 0,
        out: int = 64,
        photo_look: float = 0.0,
        random_share: float = 0.2,
        paste: float = 0.0,
    ):
        if len(pages) != len(spots):
            raise ValueError("one list of spots a page")
        self.pages, self.out, self.seed, self.photo_look, self.random_share = (
            list(pages),
            out,
            seed,
            photo_look,
            random_share,
        )
        self.paste = paste
        self.epoch = 0
        self.waldos = [(i, box) for i, page in enumerate(self.pages) for box in head_boxes(page.waldo_boxes)]
        hits, misses, weights = [], [], []
        for i, (page, page_spots) in enumerate(zip(self.pages, spots)):
            for rank, spot in enumerate(page_spots):
                inside = distance_to_boxes(spot["x"], spot["y"], page.waldo_boxes) == 0
                entry = (i, spot["x"], spot["y"], window_side(spot.get("box")))
                if inside:
                    hits.append(entry)
                else:
                    misses.append(entry)
                    weights.append(1.0 / (1 + rank))
        for i, page in enumerate(
            self.pages
        ):  # Waldos printed outside the scene: drawn as often as a page's best false spot
            for box in page.decoy_boxes:
                misses.append((i, (box[0] + box[2]) / 2, (box[1] + box[3]) / 2, window_side(box)))
                weights.append(1.0)
        if not self.waldos or not misses:
            raise UserError(
                "the second stage needs training pages with Waldo boxes and first-stage spots that miss him"
            )
        self.hits, self.misses = hits, misses
        self.miss_cdf = np.cumsum(weights)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        worker = get_worker_info()
        rng = np.random.default_rng([self.seed, worker.id if worker else 0, self.epoch])
        while True:
            waldo = rng.random() < 0.5
            window = self.draw(rng, waldo)
            if rng.random() < 0.5:
                window = window.flip(-1)
            if self.photo_look and rng.random() < self.photo_look:
                window, _ = photograph(rng, window, torch.zeros(window.shape[-2:], dtype=torch.int64))
            yield window, torch.tensor(float(waldo))

    def draw(self, rng: np.random.Generator, waldo: bool) -> torch.Tensor:
        if waldo and self.paste and len(self.pages) > 1 and rng.random() < self.paste:
            return self.pasted_window(rng)
        if waldo and (not self.hits or rng.random() < 0.5):
            i, box = self.waldos[rng.integers(len(self.waldos))]
            x, y, side = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2, window_side(box)
        elif waldo:
            i, x, y, side = self.hits[rng.integers(len(self.hits))]
        elif rng.random() < self.random_share:
            return self.random_window(rng)
        else:
            pick = int(np.searchsorted(self.miss_cdf, rng.random() * self.miss_cdf[-1], side="right"))
            i, x, y, side = self.misses[min(pick, len(self.misses) - 1)]
        x, y, side = self.jittered(rng, x, y, side)
        return torch.from_numpy(cut_window(self.pages[i].image, x, y, round(side), self.out))

    def jittered(self, rng: np.random.Generator, x: float, y: float, side: float) -> tuple[float, float, float]:
        """A window's centre and side drawn around a spot's: the side by SIDE_JITTER, the centre by 6% of it."""
        side *= float(np.exp(rng.uniform(*self.SIDE_JITTER)))
        return x + rng.normal(0, 0.06 * side), y + rng.normal(0, 0.06 * side), side

    def random_window(self, rng: np.random.Generator) -> torch.Tensor:
        while True:
            page = self.pages[rng.integers(len(self.pages))]
            side = int(rng.integers(MIN_SIDE, MAX_SIDE // 2 + 1))
            x, y = rng.uniform(0, page.width), rng.uniform(0, page.height)
            if distance_to_boxes(x, y, page.waldo_boxes) > side / 2:
                return torch.from_numpy(cut_window(page.image, x, y, side, self.out))

    def pasted_window(self, rng: np.random.Generator) -> torch.Tensor:
        """A Waldo window of one page pasted over a Waldo-free window of another, cut at the same side (his own
        window where 50 draws find no spot that far from another page's Waldos: pages that are all Waldo)."""
        i, box = self.waldos[rng.integers(len(self.waldos))]
        x, y, side = self.jittered(rng, (box[0] + box[2]) / 2, (box[1] + box[3]) / 2, window_side(box))
        waldo = cut_window(self.pages[i].image, x, y, round(side), self.out)
        for _ in range(50):
            j = int(rng.integers(len(self.pages) - 1))
            page = self.pages[j + (j >= i)]  # any page but his
            bx, by = rng.uniform(0, page.width), rng.uniform(0, page.height)
            if distance_to_boxes(bx, by, page.waldo_boxes) > side:
                break
        else:
            return torch.from_numpy(waldo)
        scene = cut_window(page.image, bx, by, round(side), self.out)
        mask = paste_mask(box, x, y, side, self.out)
        return torch.from_numpy(mask * waldo + (1 - mask) * scene)


def paste_mask(box, x: float, y: float, side: float, out: int) -> np.ndarray:
    """Where a window of `side` page px around (x, y), resized to `out`, shows the Waldo of head `box`: his head box a
    little widened, down to twice its height below it (his shoulders and shirt), its edges feathered over a tenth of
    his head's width. (1, out, out) float32 in [0, 1]."""
    scale = out / side
    width, height = (box[2] - box[0]) * scale, (box[3] - box[1]) * scale
    cx, top = ((box[0] + box[2]) / 2 - x) * scale + out / 2, (box[1] - y) * scale + out / 2  # window px
    left, right, bottom = cx - 0.65 * width, cx + 0.65 * width, top + 3 * height
    feather = max(1.0, 0.1 * width)
    grid = np.arange(out, dtype=np.float32) + 0.5
    across = np.clip((grid - left) / feather, 0, 1) * np.clip((right - grid) / feather, 0, 1)
    down = np.clip((grid - top) / feather, 0, 1) * np.clip((bottom - grid) / feather, 0, 1)
    return (down[:, None] * across[None, :])[None].astype(np.float32)
