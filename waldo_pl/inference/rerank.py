"""The second stage at prediction: score a window around each of the first stage's best spots, answer the best.

The spots' order and confidence become the second stage's, except that the first stage's best spot stays the
answer unless the second stage scores another higher by its `margin` (log-odds); each spot keeps the first stage's
confidence as `first_stage`. The confidence is the calibration stored with the model (Platt scaling fitted on
held-out pages, so that a 90% answer is right about 9 times in 10) applied to what the model's `confidence` names:
"share", a spot's share of the candidates' odds (its chance of being Waldo if one of them is, which tells right
answers from wrong ones better), or, for files from before it, "score", the spot's own second-stage score; and,
where the calibration has a third number, the first stage's log-odds at the spot as well."""

from __future__ import annotations

import dataclasses

import numpy as np

from waldo_pl.calibration import calibrated
from waldo_pl.errors import UserError
from waldo_pl.data.spot_windows import WINDOW, cut_window, window_side
from waldo_pl.inference.answer import Spot
from waldo_pl.odds import CONFIDENCES, is_margin


class SpotNetwork:
    """A second-stage classifier as the search runs it: (B, 3, WINDOW, WINDOW) float32 windows in [0, 1] in,
    (B,) float32 Waldo log-odds out. The OpenVINO backend gives one; a PyTorch classifier is run as it is."""

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class SecondStage:
    net: object                     # a SpotNetwork or a PyTorch classifier
    candidates: int                 # how many of the first stage's spots it looks at
    platt: tuple[float, ...]        # confidence = sigmoid(a * x + b), x the score or the share's log-odds; with a
                                    # third number c, + c * the first stage's log-odds at the spot
    calibration: str                # how the confidence was calibrated, said in the JSON
    margin: float = 0.0             # log-odds the first stage's best spot is given before ranking
    confidence: str = "score"       # what the calibration maps: "score" or "share" (CONFIDENCES)


def check_confidence(label: str, confidence) -> None:
    """A confidence names what the calibration maps (CONFIDENCES); None leaves it as it is."""
    if confidence is not None and confidence not in CONFIDENCES:
        raise UserError(f"{label}: must be one of {', '.join(CONFIDENCES)} (share: the answer's share of the candidates' odds)")


def confidence_of(stage: SecondStage | None) -> str:
    """What an answer's confidence is made from: the stage's share or score, or the first stage's own where none re-ranked."""
    return "first stage" if stage is None else stage.confidence


def share_log_odds(scores: np.ndarray, candidates: int) -> np.ndarray:
    """Each spot's log-odds against the first `candidates` spots (the others among them; for a spot past them, all
    of them): the logit of its share of their odds, its chance of being Waldo if one of them is."""
    scores = np.asarray(scores, dtype=np.float64)
    head = scores[:candidates]
    out = np.full(len(scores), np.inf)  # a lone candidate: Waldo if any is
    for i, score in enumerate(scores):
        others = np.delete(head, i) if i < len(head) else head
        if len(others):
            out[i] = score - np.logaddexp.reduce(others)
    return out


def check_margin(label: str, margin) -> None:
    """A margin is a number of log-odds, 0 (the second stage's ranking alone) or more; None leaves it as it is."""
    if margin is not None and not is_margin(margin):
        raise UserError(f"{label}: must be a number of log-odds, 0 or more (0: the second stage's ranking alone)")


def spot_scores(net, page: np.ndarray, spots: list[Spot], bf16: bool = False) -> np.ndarray:
    """The second stage's log-odds for each spot of an RGB uint8 page; a PyTorch classifier runs in bf16 autocast
    when `bf16`."""
    windows = np.stack([cut_window(page, s.x, s.y, window_side(s.box), WINDOW) for s in spots])
    if isinstance(net, SpotNetwork):
        return net(windows)
    from waldo_pl.inference.torch_network import spot_logits  # only for PyTorch classifiers

    return spot_logits(net, windows, bf16)


def rerank(stage: SecondStage, page: np.ndarray, spots: list[Spot], bf16: bool = False) -> list[Spot]:
    """The spots with the second stage's calibrated confidences: the first `stage.candidates` ordered by its score,
    the first stage's best given `stage.margin` more (the answer is among them), any further spots after them in the
    first stage's order."""
    if not spots:
        return []
    scores = spot_scores(stage.net, page, spots, bf16)
    number = share_log_odds(scores, stage.candidates) if stage.confidence == "share" else scores
    confidence = calibrated(number, stage.platt, [s.log_odds for s in spots])
    return [dataclasses.replace(spots[i], confidence=float(confidence[i]), first_stage=spots[i].confidence)
            for i in reranked_order(scores, stage.candidates, stage.margin)]


def reranked_order(scores, candidates: int, margin: float) -> list[int]:
    """The spots' order after re-ranking by their second-stage `scores` (in the first stage's order): the first
    `candidates` by score, the first stage's best given `margin` more, any further spots after them as they were."""
    ranked = np.array(scores[:candidates], dtype=np.float64)  # a copy: the scores are left as they were
    ranked[0] += margin
    return [*(int(i) for i in np.argsort(-ranked, kind="stable")), *range(candidates, len(scores))]


def load_second_stage(checkpoint: dict, where: str) -> SecondStage | None:
    """The second stage a checkpoint read by read_checkpoint holds, or None."""
    from waldo_pl.models.checkpoint import second_stage_from

    stage = second_stage_from(checkpoint, where)
    return None if stage is None else SecondStage(**stage)
