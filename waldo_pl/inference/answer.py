"""From a heatmap to the answer: Waldo's position, confidence, box and the next best candidates."""

from __future__ import annotations

import dataclasses

import numpy as np

from waldo_pl.data.page import distance_to_boxes
from waldo_pl.errors import UserError
from waldo_pl.odds import expit as probability
from waldo_pl.odds import logit


@dataclasses.dataclass(frozen=True)
class Spot:
    x: int
    y: int
    confidence: float
    box: tuple[int, int, int, int] | None  # x1, y1, x2, y2, max exclusive
    first_stage: float | None = None  # the first stage's confidence, once the second stage has re-ranked the spot
    log_odds: float | None = None  # the first stage's log-odds there (its confidence unrounded, where that says 100%)

    def as_dict(self) -> dict:
        found = {"x": self.x, "y": self.y, "confidence": self.confidence, "box": list(self.box) if self.box else None}
        return found if self.first_stage is None else {**found, "first_stage_confidence": self.first_stage}


MAX_RUNS = 5000


def region_box(heatmap: np.ndarray, y: int, x: int, level: float) -> tuple[int, int, int, int] | None:
    """The box of the connected region at or above `level` that holds (x, y), its pixels joined by edges or corners:
    not of every such pixel on the page. A scanline fill over each row's runs, in NumPy; a region of more than
    MAX_RUNS runs (a noisy heatmap, not a Waldo) is left to scikit-image's flood fill, which is faster there but
    costs predict.py a quarter of a second to import."""
    if heatmap[y, x] < level:
        return None
    y, x = int(y), int(x)
    above = np.pad(heatmap >= level, ((0, 0), (1, 1)))
    runs: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def row_runs(row: int) -> tuple[np.ndarray, np.ndarray]:
        """Starts and (exclusive) ends of the runs above `level` on one row."""
        if row not in runs:
            edges = np.flatnonzero(above[row, 1:] != above[row, :-1])
            runs[row] = edges[0::2], edges[1::2]
        return runs[row]

    starts, ends = row_runs(y)
    first = int(np.searchsorted(starts, x, side="right")) - 1
    todo, seen = [(y, int(starts[first]), int(ends[first]))], {(y, int(starts[first]))}
    x1, y1, x2, y2 = x, y, x + 1, y + 1
    while todo:
        if len(seen) > MAX_RUNS:
            return _flooded_box(heatmap >= level, y, x)
        row, start, end = todo.pop()
        x1, x2, y1, y2 = min(x1, start), max(x2, end), min(y1, row), max(y2, row + 1)
        for near in (row - 1, row + 1):
            if 0 <= near < heatmap.shape[0]:
                near_starts, near_ends = row_runs(near)
                # runs that touch [start, end) at an edge or a corner: ending at or after start, starting at or
                # before end
                for j in range(
                    int(np.searchsorted(near_ends, start)), int(np.searchsorted(near_starts, end, side="right"))
                ):
                    if (near, int(near_starts[j])) not in seen:
                        seen.add((near, int(near_starts[j])))
                        todo.append((near, int(near_starts[j]), int(near_ends[j])))
    return x1, y1, x2, y2


def _flooded_box(mask: np.ndarray, y: int, x: int) -> tuple[int, int, int, int]:
    from skimage.segmentation import flood

    region = flood(mask.view(np.uint8), (y, x), connectivity=2)
    rows, cols = np.flatnonzero(region.any(axis=1)), np.flatnonzero(region.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def check_threshold(setting: str, threshold: float) -> None:
    """A box threshold is a probability: an impossible one would make a box of the whole page, or none."""
    if not 0 < threshold < 1:
        raise UserError(f"{setting}={threshold}: must be a probability between 0 and 1, e.g. 0.8")


def find_spots(log_odds: np.ndarray, threshold: float, count: int, min_distance: int = 32) -> list[Spot]:
    """The `count` best distinct peaks of a log-odds heatmap, best first, each with its probability as the confidence
    and the box of its region above the probability `threshold`. Each one's region (or a `min_distance` square) is
    masked before the next."""
    level = float(logit(threshold))
    work = np.array(log_odds, dtype=np.float32)
    spots = []
    for _ in range(count):
        y, x = np.unravel_index(int(np.argmax(work)), work.shape)
        if spots and work[y, x] == -np.inf:
            break
        box = region_box(log_odds, y, x, level)
        score = float(log_odds[y, x])  # in float64 from here: a float32 probability is exactly 1 past 16.6 log-odds
        spots.append(Spot(int(x), int(y), float(probability(score)), box, log_odds=score))
        x1, y1, x2, y2 = box or (x, y, x + 1, y + 1)
        work[
            max(0, min(y1, y - min_distance)) : max(y2, y + min_distance),
            max(0, min(x1, x - min_distance)) : max(x2, x + min_distance),
        ] = -np.inf
    return spots


def page_outcome(spots: list[Spot], boxes: np.ndarray) -> dict:
    """How the answer on one labelled page went: hit (the best spot in a box), top-5 hit, distance, the spot, and its
    confidence also as log-odds (unrounded where the confidence rounds to 100%), for calibration, with the first
    stage's log-odds there."""
    distances = [distance_to_boxes(s.x, s.y, boxes) for s in spots[:5]]
    answer = spots[0]
    first_stage = {} if answer.log_odds is None else {"first_stage_log_odds": round(answer.log_odds, 3)}
    return {
        "hit": int(distances[0] == 0),
        "top5_hit": int(min(distances) == 0),
        "distance": round(distances[0], 1),
        "x": answer.x,
        "y": answer.y,
        "confidence": round(answer.confidence, 4),
        "log_odds": round(answer_log_odds(answer), 3),
        **first_stage,
    }


def answer_log_odds(spot: Spot) -> float:
    """A spot's confidence as log-odds: the first stage's own where its confidence is the first stage's (the logit of
    a probability within a rounding of 1 is not the number it came from), else the logit of the (re-ranked) one."""
    if spot.first_stage is None and spot.log_odds is not None:
        return spot.log_odds
    return float(logit(min(max(spot.confidence, 1e-12), 1 - 1e-12)))
