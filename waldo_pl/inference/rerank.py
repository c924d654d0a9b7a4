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
from waldo_pl.data.spot_windows import cut_window, window_side
from waldo_pl.inference.answer import Spot
from waldo_pl.inference.networks import spot_network
from waldo_pl.second_stage.spec import SecondStage


def confidence_of(stage: SecondStage | None) -> str:
    """What an answer's confidence is made from: the stage's share or score, or without one the first stage's own."""
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


def spot_scores(net, page: np.ndarray, spots: list[Spot], bf16: bool = False) -> np.ndarray:
    """The second stage's log-odds for each spot of an RGB uint8 page; a PyTorch classifier runs in bf16 autocast
    when `bf16`."""
    net = spot_network(net, bf16)
    return net(np.stack([cut_window(page, s.x, s.y, window_side(s.box), net.window) for s in spots]))


def rerank(stage: SecondStage, page: np.ndarray, spots: list[Spot], bf16: bool = False) -> list[Spot]:
    """The spots with the second stage's calibrated confidences: the first `stage.candidates` ordered by its score,
    the first stage's best given `stage.margin` more (the answer is among them), any further spots after them in the
    first stage's order."""
    if not spots:
        return []
    scores = spot_scores(stage.net, page, spots, bf16)
    number = share_log_odds(scores, stage.candidates) if stage.confidence == "share" else scores
    confidence = calibrated(number, stage.platt, [s.log_odds for s in spots])
    return [
        dataclasses.replace(spots[i], confidence=float(confidence[i]), first_stage=spots[i].confidence)
        for i in reranked_order(scores, stage.candidates, stage.margin)
    ]


def reranked_order(scores, candidates: int, margin: float) -> list[int]:
    """The spots' order after re-ranking by their second-stage `scores` (in the first stage's order): the first
    `candidates` by score, the first stage's best given `margin` more, any further spots after them as they were."""
    ranked = np.array(scores[:candidates], dtype=np.float64)  # a copy: the scores are left as they were
    ranked[0] += margin
    return [*(int(i) for i in np.argsort(-ranked, kind="stable")), *range(candidates, len(scores))]
