"""The LightningModule: weighted per-pixel cross-entropy on crops, and the optimiser.

Whole held-out pages are searched and scored by the PageValidation callback (waldo_pl/callbacks), so
that training code knows nothing of the search in waldo_pl/inference."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy
from torchvision.utils import make_grid

from waldo_pl.errors import UserError
from waldo_pl.models.outputs import waldo_probability

log = logging.getLogger(__name__)

PREVIEW_CROPS = 6


def balanced_class_weights(waldo_fraction: float) -> list[float]:
    """Weights that give Waldo pixels and the rest the same total weight, background kept at 1."""
    if not 0.0 < waldo_fraction < 1.0:
        raise UserError(f"cannot weight classes: the crop stream's Waldo-pixel fraction is {waldo_fraction}")
    return [1.0, (1.0 - waldo_fraction) / waldo_fraction]


def as_rgb(gray: torch.Tensor) -> torch.Tensor:
    return gray.float().clamp(0, 1).expand(3, *gray.shape[-2:])


class WaldoSegmenter(L.LightningModule):
    def __init__(
        self,
        net: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., object] | None = None,
        class_weights: str | Sequence[float] = "auto",
        preview_every_n_epochs: int = 10,
        channels_last: bool = True,
        waldo_pixels_per_crop: float | None = None,
        compile: bool = False,
    ):
        super().__init__()
        if not isinstance(class_weights, str):
            class_weights = [float(w) for w in class_weights]  # plain numbers, not a Hydra ListConfig
        # the callables stay out of the checkpoint (it must load with weights_only); the run's whole config goes in
        # instead (callbacks/run_config.py)
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"], logger=False)
        self.net, self.optimizer, self.scheduler = net, optimizer, scheduler
        if isinstance(class_weights, str) and class_weights != "auto":
            raise UserError(f"model.class_weights={class_weights}: use auto or two numbers, e.g. [1, 20]")
        if not isinstance(class_weights, str) and (len(class_weights) != 2 or min(class_weights) <= 0):
            raise UserError(
                f"model.class_weights={list(class_weights)}: needs two positive numbers (background, Waldo)"
            )
        if waldo_pixels_per_crop is not None and waldo_pixels_per_crop <= 0:
            raise UserError(
                f"model.waldo_pixels_per_crop={waldo_pixels_per_crop}: must be positive, or null to leave it off"
            )
        self.register_buffer(
            "class_weights", torch.tensor([1.0, 1.0] if isinstance(class_weights, str) else class_weights)
        )
        self.train_accuracy = MulticlassAccuracy(num_classes=2, average="micro")

    def setup(self, stage: str) -> None:
        if self.hparams.class_weights == "auto" and stage == "fit":
            datamodule = self.trainer.datamodule
            fraction = datamodule.waldo_pixel_fraction()
            self.class_weights.copy_(torch.tensor(balanced_class_weights(fraction)))
            log.info(
                "class weights auto: Waldo pixels are %.4f of the crops -> weights %s",
                fraction,
                self.class_weights.tolist(),
            )

    def on_fit_start(self) -> None:
        if self.hparams.channels_last:  # about a third faster on CPU (bench/train_speed.py)
            self.net.to(memory_format=torch.channels_last)
        if self.hparams.get("compile"):
            self.net.compile()  # in place: the checkpoint's keys stay the network's own

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.hparams.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return self.net(images)

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Class-weighted cross-entropy, the weighted mean over pixels. With `waldo_pixels_per_crop`, the
        Waldo pixels of each crop (or page) weigh together as that many pixels, so that a 13 px Waldo
        counts as much as a 60 px one."""
        per_crop = self.hparams.get("waldo_pixels_per_crop")
        if per_crop is None:
            return F.cross_entropy(logits.float(), target, weight=self.class_weights)
        weights = self.class_weights[target]
        is_waldo = target == 1
        count = is_waldo.sum(dim=(-2, -1), keepdim=True).clamp(min=1)
        weights = torch.where(is_waldo, weights * (per_crop / count), weights)
        pixel_losses = F.cross_entropy(logits.float(), target, reduction="none")
        return (pixel_losses * weights).sum() / weights.sum()

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        if self.global_step == 0 and batch_idx == 0:
            # Each rank (and worker) draws its own crops: the checksums differ between ranks.
            log.info(
                "rank %d of %d: first batch checksum %.6f",
                self.global_rank,
                self.trainer.world_size,
                float(batch[0].double().sum()),
            )

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        crops, target = batch
        logits = self(crops)
        loss = self.loss(logits, target)
        self.train_accuracy(logits.argmax(1), target)
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, sync_dist=True)
        self.log("train/pixel_accuracy", self.train_accuracy, on_step=False, on_epoch=True)
        every = self.hparams.preview_every_n_epochs
        if batch_idx == 0 and every and self.current_epoch % every == 0:
            self.log_preview(crops, target, logits)
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        """Nothing here: the PageValidation callback searches each held-out page as predict.py does, and logs
        val/loss, val/hit_rate and the pictures (conf/callbacks/default.yaml)."""

    def configure_optimizers(self):
        optimizer = self.optimizer(params=self.parameters())
        if self.scheduler is None:
            return optimizer
        scheduler = self.scheduler(optimizer=optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "monitor": "train/loss_epoch", "interval": "epoch"},
        }

    @torch.no_grad()
    def log_preview(self, crops, target, logits) -> None:
        """The tutorial's preview: each crop beside its target and the predicted Waldo probability."""
        if (board := tensorboard(self.loggers)) is None:
            return
        prob = waldo_probability(logits.detach())
        tiles = []
        for crop, t, p in list(zip(crops, target, prob))[:PREVIEW_CROPS]:
            tiles += [crop.float().cpu(), as_rgb(t.cpu()), as_rgb(p.cpu())]
        board.add_image(
            "train/crop_target_prediction", make_grid(tiles, nrow=3, padding=4, pad_value=1.0), self.global_step
        )


def tensorboard(loggers) -> object | None:
    """The SummaryWriter of the TensorBoard logger among `loggers`, wherever it stands; None without one."""
    for logger in loggers:
        experiment = getattr(logger, "experiment", None)
        if hasattr(experiment, "add_image"):
            return experiment
    return None
