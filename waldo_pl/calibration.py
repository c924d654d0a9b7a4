"""Calibrating the answer's confidence on held-out pages: Platt scaling of what the confidence is made from (the
second stage's share or score of the answer), optionally with the first stage's log-odds at the answer too.

Fitted on the answers of pages the model did not train on (cross-validation), so that among answers given
p% confidence about p% are right."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from waldo_pl.odds import expit


def fit_platt(
    scores: Sequence[float], right: Sequence[bool], prior: float = 1.0, first_stage: Sequence[float] | None = None
) -> tuple[float, ...]:
    """(a, b) minimising the log-loss of sigmoid(a * score + b) against `right`, with Platt's smoothed targets
    (so that a few pages cannot drive it to 0% or 100%) and a weak pull of `a` towards 1. With `first_stage` (the
    first stage's log-odds at each answer), (a, b, c) for sigmoid(a * score + b + c * first_stage), `c` pulled
    weakly towards 0."""
    from scipy.optimize import minimize  # only when fitting: prediction imports this module for `calibrated`

    scores, right = np.asarray(scores, dtype=np.float64), np.asarray(right, dtype=bool)
    extra = np.zeros_like(scores) if first_stage is None else np.asarray(first_stage, dtype=np.float64)
    n_right, n_wrong = int(right.sum()), int((~right).sum())
    target = np.where(right, (n_right + 1) / (n_right + 2), 1 / (n_wrong + 2))

    def loss(abc: np.ndarray) -> float:
        z = abc[0] * scores + abc[1] + abc[2] * extra
        return float(np.sum(np.logaddexp(0, z) - target * z) + 0.5 * prior * ((abc[0] - 1) ** 2 + abc[2] ** 2))

    start = np.array([1.0, 0.0] if first_stage is None else [1.0, 0.0, 0.0])  # without it, c stays 0
    fitted = minimize(
        lambda v: loss(np.pad(v, (0, 3 - len(v)))),
        start,
        method="Nelder-Mead",
        options={"maxiter": 4000, "xatol": 1e-6, "fatol": 1e-8},
    ).x
    return tuple(float(v) for v in fitted)


def calibrated(
    scores: Sequence[float], platt: Sequence[float], first_stage: Sequence[float] | None = None
) -> np.ndarray:
    """sigmoid(a * score + b) for Platt's (a, b); for (a, b, c), sigmoid(a * score + b + c * first_stage), the
    first stage's log-odds at each answer, which such a calibration needs."""
    a, b, *weight = platt
    z = a * np.asarray(scores, dtype=np.float64) + b
    if weight:
        if first_stage is None or any(f is None for f in first_stage):
            raise ValueError("this calibration weighs the first stage's log-odds too; give them")
        z = z + weight[0] * np.asarray(first_stage, dtype=np.float64)
    return expit(z)


def composed(platt: Sequence[float], fitted: dict) -> tuple[float, ...]:
    """A model's own mapping (a0, b0[, c0]) followed by a calibration fitted on the confidences it gave (a fit that
    waldo-crossval --calibrate wrote: a, b[, c]), as one mapping of the same number: sigmoid(a (a0 x + b0 + c0 f) + b
    + c f) = sigmoid(a a0 x + a b0 + b + (a c0 + c) f), f the first stage's log-odds."""
    (a0, b0, *c0), a, b = platt, fitted["a"], fitted["b"]
    mapping = [a * a0, a * b0 + b]
    if c0 or "c" in fitted:
        mapping.append(a * (c0[0] if c0 else 0.0) + fitted.get("c", 0.0))
    return tuple(float(v) for v in mapping)


def described(fitted: dict, confidence: str, platt: Sequence[float]) -> str:
    """What a model's record says of a calibration `fitted` on its `confidence`, composed into `platt`."""
    what = "the answer's share of the candidates' odds" if confidence == "share" else "the second stage's score"
    what += " and the first stage's log-odds there" if len(platt) == 3 else ""
    return (
        f"Platt scaling of {what}, fitted on {fitted['pages']} held-out answers ({fitted['hits']} right) "
        f"of the runs in {fitted['runs']}{searched_as(fitted)}"
    )


def searched_as(fitted: dict) -> str:
    """How the calibration's pages were searched, in words ('' where it does not say); a ValueError where its
    search is not one waldo-crossval --calibrate writes."""
    searched = fitted.get("search")
    if searched is None:
        return ""
    try:
        scales, flip = [float(s) for s in searched["scales"]], searched["flip"]
    except (TypeError, KeyError, ValueError):
        scales, flip = [], None
    if not scales or not isinstance(flip, bool):
        raise ValueError("its search is not one waldo-crossval --calibrate writes (needs scales and flip)")
    merged = {"mean": " (their mean)", "max": " (their best)"}.get(searched.get("merge")) if len(scales) > 1 else None
    return f", searched at scales {', '.join(f'{s:g}' for s in scales)}{merged or ''}{' and mirrored' if flip else ''}"
