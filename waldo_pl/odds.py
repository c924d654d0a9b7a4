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
