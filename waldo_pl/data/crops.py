"""The training stream: random panels, about a third around a Waldo, the rest Waldo-free."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from waldo_pl.data.page import Page, boxes_to_mask
from waldo_pl.errors import UserError

# Waldo-free panel corners are listed on this grid: exact, and small enough to keep for every page.
NEGATIVE_STRIDE = 4


def pad_to_panel(page: Page, panel: int) -> Page:
    """Pad a page smaller than the panel on its right and bottom with white paper."""
    pad_h, pad_w = max(0, panel - page.height), max(0, panel - page.width)
    if not (pad_h or pad_w):
        return page
    image = np.pad(page.image, ((0, pad_h), (0, pad_w), (0, 0)), constant_values=255)
    return Page(page.name, image, page.waldo_boxes)


def waldo_free_corners(mask: np.ndarray, panel: int, stride: int = NEGATIVE_STRIDE) -> np.ndarray:
    """(K, 2) top-left (y, x) corners, on a `stride` grid, of panels holding no Waldo pixel."""
    integral = np.pad(mask.astype(np.int64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    ys = np.arange(0, mask.shape[0] - panel + 1, stride)
    xs = np.arange(0, mask.shape[1] - panel + 1, stride)
    y0, x0 = ys[:, None], xs[None, :]
    inside = (
        integral[y0 + panel, x0 + panel] - integral[y0, x0 + panel]
        - integral[y0 + panel, x0] + integral[y0, x0]
    )
    free_y, free_x = np.nonzero(inside == 0)
    return np.stack([ys[free_y], xs[free_x]], axis=1).astype(np.int32)


class CropStream(IterableDataset):
    """Endless (crop float32 (3, P, P) in [0, 1], target int64 (P, P)) pairs drawn from `pages`.

    A share `prop` of the crops contains a whole Waldo box at a random offset (for a box larger
    than the panel, a random window inside it); the rest contain no Waldo pixel. Each is flipped
    left-right with probability 1/2. The stream is a function of (seed, rank, worker, epoch) alone.
    """

    def __init__(self, pages: Sequence[Page], panel: int = 224, prop: float = 0.34, seed: int = 0):
        if not 0.0 <= prop <= 1.0:
            raise UserError(f"data.prop={prop}: must be between 0 and 1")
        if panel <= 0 or panel % 16:
            raise UserError(f"data.panel={panel}: must be a positive multiple of 16")
        self.pages = [pad_to_panel(p, panel) for p in pages]
        self.panel, self.prop, self.seed = panel, prop, seed
        self.rank, self.epoch = 0, 0
        self.waldo_boxes = [(i, box) for i, p in enumerate(self.pages) for box in p.waldo_boxes]
        self.free_corners = [waldo_free_corners(p.mask, panel) for p in self.pages]
        counts = np.array([len(c) for c in self.free_corners], dtype=np.float64)
        if prop > 0 and not self.waldo_boxes:
            raise UserError("the training pages hold no Waldo box; add labelled pages or set data.prop=0")
        if prop < 1 and counts.sum() == 0:
            raise UserError(f"no training page has a Waldo-free {panel}x{panel} panel; add pages or set data.prop=1")
        # Waldo-free panels are drawn uniformly over every such panel of every page.
        self.free_page_weights = counts / max(counts.sum(), 1.0)

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
        p = self.panel
        if with_waldo:
            page_index, box = self.waldo_boxes[rng.integers(len(self.waldo_boxes))]
            page = self.pages[page_index]
            y0 = self._offset(rng, box[1], box[3], page.height)
            x0 = self._offset(rng, box[0], box[2], page.width)
        else:
            page_index = rng.choice(len(self.pages), p=self.free_page_weights)
            page = self.pages[page_index]
            corners = self.free_corners[page_index]
            y0, x0 = corners[rng.integers(len(corners))]
        image = page.image[y0 : y0 + p, x0 : x0 + p]
        boxes = np.clip(page.waldo_boxes - [x0, y0, x0, y0], 0, p) if with_waldo else ()
        target = boxes_to_mask(boxes, p, p)
        if rng.random() < 0.5:
            image, target = image[:, ::-1], target[:, ::-1]
        crop = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().div_(255)
        return crop, torch.from_numpy(np.ascontiguousarray(target)).long()

    def _offset(self, rng: np.random.Generator, lo: int, hi: int, size: int) -> int:
        """Start of a panel along one axis that holds [lo, hi), or lies inside it when it is longer."""
        p = self.panel
        first, last = (max(0, hi - p), min(lo, size - p)) if hi - lo <= p else (lo, hi - p)
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
