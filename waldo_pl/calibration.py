"""Calibrating the answer's confidence on held-out pages: Platt scaling of what the confidence is made from (the
second stage's share or score of the answer), optionally with the first stage's log-odds at the answer too.

Fitted on the answers of pages the model did not train on (cross-validation), so that among answers given
p% confidence about p% are right."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from waldo_pl.odds import expit


def fit_platt(scores: Sequence[float], right: Sequence[bool], prior: float = 1.0,
              first_stage: Sequence[float] | None = None) -> tuple[float, ...]:
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
    fitted = minimize(lambda v: loss(np.pad(v, (0, 3 - len(v)))), start, method="Nelder-Mead",
                      options={"maxiter": 4000, "xatol": 1e-6, "fatol": 1e-8}).x
    return tuple(float(v) for v in fitted)


def calibrated(scores: Sequence[float], platt: Sequence[float], first_stage: Sequence[float] | None = None) -> np.ndarray:
    """sigmoid(a * score + b) for Platt's (a, b); for (a, b, c), sigmoid(a * score + b + c * first_stage), the
    first stage's log-odds at each answer, which such a calibration needs."""
    a, b, *weight = platt
    z = a * np.asarray(scores, dtype=np.float64) + b
    if weight:
        if first_stage is None or any(f is None for f in first_stage):
            raise ValueError("this calibration weighs the first stage's log-odds too; give them")
        z = z + weight[0] * np.asarray(first_stage, dtype=np.float64)
    return expit(z)
