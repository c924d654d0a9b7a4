"""The training stream: random panels, about a third around a Waldo, the rest Waldo-free."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from waldo_pl.data.page import Page, boxes_to_mask, head_boxes
from waldo_pl.data.photo_look import photograph
from waldo_pl.data.spot_stream import paste_mask
from waldo_pl.errors import UserError

# Waldo-free window corners are listed on this grid: exact, and small enough to keep for every page.
NEGATIVE_STRIDE = 8


def pad_to_panel(page: Page, panel: int) -> Page:
    """Pad a page smaller than the panel on its right and bottom with white paper."""
    pad_h, pad_w = max(0, panel - page.height), max(0, panel - page.width)
    if not (pad_h or pad_w):
        return page
    image = np.pad(page.image, ((0, pad_h), (0, pad_w), (0, 0)), constant_values=255)
    return dataclasses.replace(page, image=image)


def as_tensor(window: np.ndarray) -> torch.Tensor:
    """An (H, W, 3) uint8 window of a page as a (3, H, W) float32 tensor in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(window.transpose(2, 0, 1))).float().div_(255)


def waldo_free_corners(mask: np.ndarray, window: int, stride: int = NEGATIVE_STRIDE) -> np.ndarray:
    """(K, 2) top-left (y, x) corners, on a `stride` grid, of windows holding no Waldo pixel."""
    integral = np.pad(mask.astype(np.int64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    ys = np.arange(0, mask.shape[0] - window + 1, stride)
    xs = np.arange(0, mask.shape[1] - window + 1, stride)
    y0, x0 = ys[:, None], xs[None, :]
    inside = (
        integral[y0 + window, x0 + window] - integral[y0, x0 + window] - integral[y0 + window, x0] + integral[y0, x0]
    )
    free_y, free_x = np.nonzero(inside == 0)
    return np.stack([ys[free_y], xs[free_x]], axis=1).astype(np.int32)


class CropStream(IterableDataset):
    """Endless (crop float32 (3, P, P) in [0, 1], target int64 (P, P)) pairs drawn from `pages`.

    A share `prop` of the crops contains a whole Waldo box at a random offset (for a box larger
    than the window, a random window inside it); the rest contain no Waldo pixel. The target marks
    his head: a head-and-body box is cut to its top (page.head_boxes). Each crop is
    seen at one of `zooms` (a window of P / zoom pixels resized to P), flipped left-right with
    probability 1/2, and its brightness, contrast and saturation scaled by up to +-`colour_jitter`; a share
    `photo_look` of them is made to look photographed (data/photo_look.py).
    Copy-paste (Ghiasi et al., "Simple Copy-Paste", CVPR 2021): a share `paste` of the Waldo crops shows the Waldos of
    their window pasted over a Waldo-free window of the same size on another page (each Waldo's head box and the body
    below it, feathered: spot_stream.paste_mask), so that each Waldo is seen in many scenes; the target is his head as
    before, and the photo look comes after the paste.
    The stream is a function of (seed, rank, worker, epoch) alone.
    """

    def __init__(
        self,
        pages: Sequence[Page],
        panel: int = 224,
        prop: float = 0.34,
        seed: int = 0,
        zooms: Sequence[float] = (1.0,),
        colour_jitter: float = 0.0,
        photo_look: float = 0.0,
        paste: float = 0.0,
    ):
        if not 0.0 <= prop <= 1.0:
            raise UserError(f"data.prop={prop}: must be between 0 and 1")
        if panel <= 0 or panel % 16:
            raise UserError(f"data.panel={panel}: must be a positive multiple of 16")
        if not zooms or min(zooms) <= 0:
            raise UserError(f"data.zooms={list(zooms)}: needs positive zoom factors, e.g. [0.75, 1.0, 1.5]")
        if not 0.0 <= colour_jitter < 1.0:
            raise UserError(f"data.colour_jitter={colour_jitter}: must be in [0, 1)")
        if not 0.0 <= photo_look <= 1.0:
            raise UserError(f"data.photo_look={photo_look}: the share of crops made to look photographed, from 0 to 1")
        if not 0.0 <= paste <= 1.0:
            raise UserError(f"data.paste={paste}: the share of Waldo crops pasted into another page's scene, 0 to 1")
        self.photo_look, self.paste = photo_look, paste
        self.windows = sorted({max(16, round(panel / z)) for z in zooms})
        self.pages = [pad_to_panel(p, max(self.windows)) for p in pages]
        self.panel, self.prop, self.seed, self.colour_jitter = panel, prop, seed, colour_jitter
        self.rank, self.epoch = 0, 0
        self.waldo_boxes = [(i, box) for i, p in enumerate(self.pages) for box in p.waldo_boxes]
        self.head_boxes = [head_boxes(p.waldo_boxes) for p in self.pages]  # the targets (page.head_boxes)
        if prop > 0 and not self.waldo_boxes:
            raise UserError("the training pages hold no Waldo box; add labelled pages or set data.prop=0")
        masks = [p.mask for p in self.pages]
        # For each window size: every page's Waldo-free corners, and pages weighted by how many they have,
        # so that Waldo-free windows are drawn uniformly over all of them.
        self.free_corners = {w: [waldo_free_corners(m, w) for m in masks] for w in self.windows}
        self.free_page_weights = {}
        for w, corners in self.free_corners.items():
            counts = np.array([len(c) for c in corners], dtype=np.float64)
            if counts.sum():
                self.free_page_weights[w] = counts / counts.sum()
        # Waldo-free crops use the zooms at which some page has room for them.
        self.free_windows = sorted(self.free_page_weights)
        # Hard-negative mining replaces uniform draws by these cumulative weights ({window: per page}).
        self.corner_cdfs: dict[int, list[np.ndarray | None]] = {w: [None] * len(self.pages) for w in self.windows}
        self.hardness: dict[int, list[np.ndarray]] = {}
        if prop < 1 and not self.free_windows:
            raise UserError(
                f"no training page has a Waldo-free {min(self.windows)}x{min(self.windows)} window; "
                "add pages, or set data.prop=1"
            )

    def rng(self) -> np.random.Generator:
        worker = get_worker_info()
        worker_id = worker.id if worker is not None else 0
        return np.random.default_rng([self.seed, self.rank, worker_id, self.epoch])

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        rng = self.rng()
        for i in range(1 << 62):
            # Waldo crops fall at exact, evenly spread positions: any window of n crops holds n*prop of them.
            with_waldo = int((i + 1) * self.prop) > int(i * self.prop)
            yield self.draw(rng, with_waldo)

    def draw(self, rng: np.random.Generator, with_waldo: bool) -> tuple[torch.Tensor, torch.Tensor]:
        windows = self.windows if with_waldo else self.free_windows
        win = windows[rng.integers(len(windows))]
        if with_waldo:
            page_index, box = self.waldo_boxes[rng.integers(len(self.waldo_boxes))]
            page = self.pages[page_index]
            y0 = self._offset(rng, box[1], box[3], page.height, win)
            x0 = self._offset(rng, box[0], box[2], page.width, win)
        else:
            page_index = rng.choice(len(self.pages), p=self.free_page_weights[win])
            page = self.pages[page_index]
            corners, cdf = self.free_corners[win][page_index], self.corner_cdfs[win][page_index]
            pick = (
                rng.integers(len(corners))
                if cdf is None
                else np.searchsorted(cdf, rng.random() * cdf[-1], side="right")
            )
            y0, x0 = corners[min(pick, len(corners) - 1)]
        crop = as_tensor(page.image[y0 : y0 + win, x0 : x0 + win])
        if with_waldo and self.paste and rng.random() < self.paste:
            crop = self._pasted(rng, crop, page_index, y0, x0, win)
        # The target is Waldo's head: a head-and-body box (the photos') is cut to its top (page.head_boxes).
        boxes = np.clip(self.head_boxes[page_index] - [x0, y0, x0, y0], 0, win) if with_waldo else np.zeros((0, 4))
        if win != self.panel:
            crop = F.interpolate(
                crop[None], size=(self.panel, self.panel), mode="bilinear", antialias=True, align_corners=False
            )[0]
            boxes = np.round(boxes * (self.panel / win)).astype(np.int64)
        target = torch.from_numpy(boxes_to_mask(boxes, self.panel, self.panel)).long()
        if rng.random() < 0.5:
            crop, target = crop.flip(-1), target.flip(-1)
        if self.colour_jitter:
            crop = self._jitter(rng, crop)
        if self.photo_look and rng.random() < self.photo_look:
            crop, target = photograph(rng, crop, target)
        return crop, target

    def set_hardness(self, hardness: dict[int, list[np.ndarray]], boost: float) -> None:
        """Draw Waldo-free windows in proportion to 1 + boost * hardness, where hardness[window][page] is the
        grid (one value a corner, on the NEGATIVE_STRIDE grid) of the highest Waldo probability in each window."""
        self.hardness, self.hardness_boost = hardness, boost
        for w in self.free_windows:
            totals = []
            for i, (corners, grid) in enumerate(zip(self.free_corners[w], hardness[w])):
                weights = 1.0 + boost * grid[corners[:, 0] // NEGATIVE_STRIDE, corners[:, 1] // NEGATIVE_STRIDE].astype(
                    np.float64
                )
                self.corner_cdfs[w][i] = np.cumsum(weights) if len(corners) else None
                totals.append(weights.sum())
            self.free_page_weights[w] = np.array(totals) / sum(totals)

    def _pasted(self, rng: np.random.Generator, crop: torch.Tensor, page_index: int, y0: int, x0: int, win: int):
        """`crop` (page `page_index`'s window at (y0, x0), side `win`) with its Waldos pasted over a Waldo-free window
        of the same side on another page; as it was where no other page has one."""
        weights = self.free_page_weights.get(win)
        if weights is None:
            return crop
        weights = weights.copy()
        weights[page_index] = 0.0
        if not weights.sum():
            return crop
        other = rng.choice(len(self.pages), p=weights / weights.sum())
        corners = self.free_corners[win][other]
        y1, x1 = corners[rng.integers(len(corners))]
        scene = as_tensor(self.pages[other].image[y1 : y1 + win, x1 : x1 + win])
        centre_x, centre_y = x0 + win / 2, y0 + win / 2
        mask = np.zeros((1, win, win), dtype=np.float32)
        for box in self.head_boxes[page_index]:
            np.maximum(mask, paste_mask(box, centre_x, centre_y, win, win), out=mask)
        mask = torch.from_numpy(mask)
        return mask * crop + (1 - mask) * scene

    def _jitter(self, rng: np.random.Generator, crop: torch.Tensor) -> torch.Tensor:
        brightness, contrast, saturation = 1.0 + rng.uniform(-self.colour_jitter, self.colour_jitter, size=3)
        crop = TF.adjust_brightness(crop, brightness)
        crop = TF.adjust_contrast(crop, contrast)
        return TF.adjust_saturation(crop, saturation).clamp_(0.0, 1.0)

    def _offset(self, rng: np.random.Generator, lo: int, hi: int, size: int, win: int) -> int:
        """Start of a window along one axis that holds [lo, hi), or lies inside it when it is longer."""
        first, last = (max(0, hi - win), min(lo, size - win)) if hi - lo <= win else (lo, hi - win)
        return int(rng.integers(first, last + 1))


class CropLoader(DataLoader):
    """Batches of a CropStream in epochs of `steps_per_epoch` batches, each epoch seeded anew.

    Lightning iterates the training loader once an epoch; counting the epochs here reaches the
    worker processes too, since they copy the stream when the iterator starts.
    """

    def __init__(self, dataset: CropStream, steps_per_epoch: int, **kwargs):
        super().__init__(dataset, **kwargs)
        self.steps_per_epoch = steps_per_epoch
        self.epochs_started = 0

    def __len__(self) -> int:
        return self.steps_per_epoch

    def __iter__(self):
        self.dataset.epoch = self.epochs_started
        self.epochs_started += 1
        return itertools.islice(super().__iter__(), self.steps_per_epoch)
