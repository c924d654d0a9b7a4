"""The second stage's LightningModule: binary cross-entropy on windows around spots, Waldo or not."""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from waldo_pl.models.spot_net import SpotNet


class SpotClassifier(L.LightningModule):
    def __init__(
        self, net: nn.Module | None = None, lr: float = 2e-3, weight_decay: float = 1e-4, max_steps: int = 1000
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["net"], logger=False)
        self.net = net if net is not None else SpotNet()

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        return self.net(windows)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        windows, labels = batch
        logits = self.net(windows)
        loss = F.binary_cross_entropy_with_logits(logits.float(), labels)
        accuracy = ((logits > 0).float() == labels).float().mean()
        self.log_dict({"second_stage/loss": loss, "second_stage/accuracy": accuracy}, prog_bar=True)
        return loss

    def configure_optimizers(self):
        learning = [p for p in self.parameters() if p.requires_grad]  # a pretrained eye's fixed blocks do not
        optimizer = torch.optim.AdamW(learning, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=self.hparams.lr, total_steps=self.hparams.max_steps
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
