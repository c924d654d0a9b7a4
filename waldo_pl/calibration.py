"""Calibrating the answer's confidence on held-out pages: Platt scaling of the second stage's score of the answer.

Fitted on the answers of pages the model did not train on (cross-validation), so that among answers given
p% confidence about p% are right."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from waldo_pl.odds import expit


def fit_platt(scores: Sequence[float], right: Sequence[bool], prior: float = 1.0) -> tuple[float, float]:
    """(a, b) minimising the log-loss of sigmoid(a * score + b) against `right`, with Platt's smoothed targets
    (so that a few pages cannot drive it to 0% or 100%) and a weak pull of `a` towards 1."""
    from scipy.optimize import minimize  # only when fitting: prediction imports this module for `calibrated`

    scores, right = np.asarray(scores, dtype=np.float64), np.asarray(right, dtype=bool)
    n_right, n_wrong = int(right.sum()), int((~right).sum())
    target = np.where(right, (n_right + 1) / (n_right + 2), 1 / (n_wrong + 2))

    def loss(ab: np.ndarray) -> float:
        z = ab[0] * scores + ab[1]
        return float(np.sum(np.logaddexp(0, z) - target * z) + 0.5 * prior * (ab[0] - 1) ** 2)

    a, b = minimize(loss, np.array([1.0, 0.0]), method="Nelder-Mead").x
    return float(a), float(b)


def calibrated(scores: Sequence[float], platt: tuple[float, float]) -> np.ndarray:
    """sigmoid(a * score + b) for Platt's (a, b)."""
    a, b = platt
    return expit(a * np.asarray(scores, dtype=np.float64) + b)
