"""Log-odds and probability, with NumPy alone: predict.py's path imports neither SciPy nor PyTorch for them."""

from __future__ import annotations

import numpy as np


def expit(x):
    """The sigmoid, 1 / (1 + e^-x), without overflow at either end; keeps float32 as float32."""
    x = np.asarray(x)
    small = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + small), small / (1 + small))


def logit(p):
    """The inverse of expit: log(p / (1 - p))."""
    p = np.asarray(p)
    return np.log(p) - np.log1p(-p)


MAX_MARGIN = 1e6


def is_margin(value) -> bool:
    """Whether a value is a second stage's margin: a number of log-odds from 0 (its ranking alone) up to MAX_MARGIN.
    One rule for the settings' check (inference/rerank.py) and a model file's reader (models/checkpoint.py)."""
    return not isinstance(value, bool) and isinstance(value, (int, float)) and 0 <= value < MAX_MARGIN


# What a second stage's calibration maps to a confidence: each spot's own score, or its share of the candidates' odds
# (inference/rerank.py). One list for the settings' check and a model file's reader.
CONFIDENCES = ("score", "share")

# A calibration that maps a confidence to itself: sigmoid(1 * x + 0). A second stage has it until it is calibrated, and
# again when it is made to answer with the other number (its mapping was fitted on the one it had).
UNCALIBRATED = (1.0, 0.0)
