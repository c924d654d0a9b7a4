"""The run's whole config in every checkpoint it writes: a later second stage, export or search reads it there."""

from __future__ import annotations

import lightning as L


class RunConfig(L.Callback):
    """Store `config` (plain data, resolved) as each checkpoint's "config"."""

    def __init__(self, config: dict):
        self.config = config

    def on_save_checkpoint(self, trainer: L.Trainer, module: L.LightningModule, checkpoint: dict) -> None:
        checkpoint["config"] = self.config
