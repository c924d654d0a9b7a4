"""The one search from a page to the answer, used by predict.py, validation, cross-validation, mining and the app."""

from __future__ import annotations

import dataclasses

import numpy as np

from waldo_pl.errors import UserError
from waldo_pl.inference.answer import Spot, check_threshold, find_spots
from waldo_pl.inference.heatmap import check_merge, check_scales, check_tile, log_odds_at_scales, log_odds_in_windows
from waldo_pl.inference.rerank import SecondStage, rerank
from waldo_pl.models.grid import MULTIPLE


@dataclasses.dataclass(frozen=True)
class SearchSettings:
    """How a page is searched: the one home of the search's settings and their defaults, which are predict.py's (its
    config, the Python API's `predict` and the app read them here). Searches that differ on purpose start from a named
    preset (ONE_PASS). Each bad value is a UserError named as predict.py's setting."""

    threshold: float = 0.8  # the box is the region around the peak above this probability (the tutorial's)
    # the page searched at these sizes: 1.25 finds the smallest Waldos more often
    scales: tuple[float, ...] = (1.0, 1.25)
    flip: bool = True  # also search the mirror image and average the two: finds more Waldos in photos
    merge: str = "mean"  # the scales' maps per pixel: mean (a spot seen at one scale counts less) | max
    # 0: every pass over the whole page; N: the page once at scale 1, unmirrored, then the other scales and the mirror
    # image only in windows around that pass's N best spots, where the answer is then found
    windows: int = 0
    candidates: int = 4  # next best distinct peaks after the answer
    tile: int = 1024  # tile side for pages over max_whole_pixels
    batch_size: int = 4  # tiles a batch
    max_whole_pixels: int = 8_000_000  # larger pages are searched in tiles, which bounds the memory
    bf16: bool = False  # bf16 autocast (a GPU, or a CPU with native bf16)

    def __post_init__(self):
        object.__setattr__(self, "scales", tuple(float(s) for s in self.scales))
        check_threshold("threshold", self.threshold)
        if self.candidates < 0:
            raise UserError(f"candidates={self.candidates}: must be 0 or more")
        if self.windows < 0 or self.windows and 1.0 not in self.scales:
            raise UserError(
                f"windows={self.windows}: must be 0 (the whole page every pass) or more, with 1.0 among the "
                "scales (the pass over the whole page)"
            )
        try:  # the heatmap's own checks, said as settings
            check_scales(self.scales)
            check_merge(self.merge)
            check_tile(self.tile)
        except ValueError as err:
            raise UserError(str(err)) from None
        if self.batch_size < 1:
            raise UserError(f"batch_size={self.batch_size}: must be 1 or more")
        if self.max_whole_pixels < 0:
            raise UserError(f"max_whole_pixels={self.max_whole_pixels}: must be 0 (always tile) or more")

    @property
    def tiling(self) -> dict:
        """How a page is cut into tiles, as heatmap.page_log_odds and log_odds_at_scales take it."""
        return {"tile": self.tile, "batch_size": self.batch_size, "max_whole_pixels": self.max_whole_pixels}


PREDICT = SearchSettings()
# The page once, at scale 1, unmirrored: a quarter of PREDICT's passes, for the searches made while training (page
# validation, hard-negative mining), which weigh time against weights that change anyway.
ONE_PASS = SearchSettings(scales=(1.0,), flip=False)


def with_settings(preset: SearchSettings, **settings) -> SearchSettings:
    """`preset` with each setting given replacing its own; one given as None keeps the preset's."""
    return dataclasses.replace(preset, **{name: value for name, value in settings.items() if value is not None})


def spots_wanted(settings: SearchSettings, second_stage: SecondStage | None = None) -> int:
    """How many of the first stage's best spots a search finds: the answer and its `candidates`, or as many as the
    second stage re-ranks where that is more."""
    count = 1 + settings.candidates
    return count if second_stage is None else max(count, second_stage.candidates)


def first_stage_search(net, page: np.ndarray, settings: SearchSettings, wanted: int) -> tuple[np.ndarray, list[Spot]]:
    """Waldo's log-odds over an RGB uint8 page (H, W, 3) and the first stage's `wanted` best spots, best first."""
    h, w = page.shape[:2]
    if min(h, w) < MULTIPLE:
        raise UserError(f"page is {w}x{h} px; it needs at least {MULTIPLE} px a side")
    if settings.windows and (len(settings.scales) > 1 or settings.flip):
        first_pass = log_odds_at_scales(net, page, (1.0,), False, settings.merge, settings.bf16, **settings.tiling)
        centres = [(s.y, s.x) for s in find_spots(first_pass, settings.threshold, count=max(settings.windows, wanted))]
        log_odds, inside = log_odds_in_windows(
            net, page, first_pass, centres, settings.scales, settings.flip, settings.merge, settings.bf16
        )
        return log_odds, find_spots(np.where(inside, log_odds, -np.inf), settings.threshold, count=wanted)
    log_odds = log_odds_at_scales(
        net, page, settings.scales, settings.flip, settings.merge, settings.bf16, **settings.tiling
    )
    return log_odds, find_spots(log_odds, settings.threshold, count=wanted)


def reranked(
    second_stage: SecondStage | None, page: np.ndarray, spots: list[Spot], settings: SearchSettings
) -> list[Spot]:
    """The first stage's spots as the search answers them: the answer and its `candidates`, in the second stage's
    order over its own candidates where there is one."""
    if second_stage is None:
        return spots
    return rerank(second_stage, page, spots, settings.bf16)[: 1 + settings.candidates]


def search(
    net, page: np.ndarray, settings: SearchSettings = PREDICT, second_stage: SecondStage | None = None
) -> tuple[np.ndarray, list[Spot]]:
    """Waldo's log-odds over an RGB uint8 page (H, W, 3), and the best spots on it, the answer first: the first
    stage's order, or with a second stage, its order over the first stage's best `second_stage.candidates`.
    `net` is a PageNetwork (device.load_for_search) or a PyTorch network, run in bf16 when `settings.bf16`."""
    log_odds, spots = first_stage_search(net, page, settings, spots_wanted(settings, second_stage))
    return log_odds, reranked(second_stage, page, spots, settings)
