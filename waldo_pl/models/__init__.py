"""The networks, what their outputs mean, the LightningModule that trains them, and their checkpoints.

Names are imported on first use, so that the grid and the log-odds helpers do not import PyTorch."""

import importlib

_HOMES = {"TutorialNet": "tutorial_net"}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
