"""Validation on whole held-out pages, searched as predict.py searches them: val/loss, val/hit_rate, the
top-5 hit rate, the distance, each page's outcome (for metrics.json) and a picture of each page."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
from collections.abc import Sequence

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torchvision.utils import draw_bounding_boxes, make_grid

from waldo_pl.data.page import boxes_to_mask
from waldo_pl.inference.answer import page_outcome
from waldo_pl.inference.device import search_network
from waldo_pl.inference.rerank import confidence_of
from waldo_pl.inference.search import ONE_PASS, first_stage_search, reranked, spots_wanted, with_settings
from waldo_pl.models.module import as_rgb, tensorboard
from waldo_pl.models.outputs import probability, two_class_logits
from waldo_pl.precision import is_bf16
from waldo_pl.second_stage.spec import SecondStage

PREVIEW_PAGE_SIDE = 768  # validation pictures are shrunk to this for TensorBoard


class PageValidation(L.Callback):
    """Search each validation page whole, at `scales` (merged by `merge`; and mirrored, with `flip`), and log how the
    answer went. A validation with the weights of the one before it (the run's final validation, which re-ranks with
    the second stage trained since) reuses that validation's first-stage search of each page instead of searching
    the page again."""

    def __init__(
        self,
        threshold: float | None = None,
        scales: Sequence[float] | None = None,
        flip: bool | None = None,
        merge: str | None = None,
        pictures: bool = True,
    ):
        # the training-time preset (ONE_PASS), each setting given replacing its own; whole pages, never tiles; a bad
        # threshold or scale fails when the callback is built
        self.settings = with_settings(
            ONE_PASS, threshold=threshold, scales=scales, flip=flip, merge=merge, max_whole_pixels=1 << 40
        )
        self.pictures = pictures
        self.page_results: list[dict] = []
        self.second_stage = None  # the run's second stage, during reranking_with
        self.network = None
        self.weights = None  # what identifies the first stage's weights during a validation
        # (page, settings, spots wanted) -> the first stage's log-odds and spots, with these weights
        self.searched: dict = {}

    @contextlib.contextmanager
    def reranking_with(self, second_stage: SecondStage | None):
        """Validation within this block re-ranks each page's spots with `second_stage` (trained after the first)."""
        self.second_stage = second_stage
        try:
            yield self
        finally:
            self.second_stage = None

    def on_validation_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.page_results = []  # this validation's pages, for metrics.json
        self.network = None  # built for the first page that needs searching
        weights = weights_of(module)
        if weights != self.weights:
            self.searched, self.weights = {}, weights

    def on_train_batch_start(self, trainer: L.Trainer, module: L.LightningModule, batch, batch_idx: int) -> None:
        self.searched = {}  # the weights are about to change: the pages' maps would only hold memory

    def on_validation_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.network = None

    @torch.no_grad()
    def on_validation_batch_end(self, trainer, module, outputs, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        page, boxes = batch["page"], batch["waldo_boxes"]
        settings = dataclasses.replace(self.settings, bf16=is_bf16(trainer.precision))
        key = (batch["name"], settings, spots_wanted(settings, self.second_stage))
        if key not in self.searched:
            if self.network is None:
                self.network = network_as_searched(trainer, module)
            self.searched[key] = first_stage_search(self.network, page, settings, key[2])
        log_odds, first_stage_spots = self.searched[key]
        spots = reranked(self.second_stage, page, first_stage_spots, settings)
        outcome = page_outcome(spots, boxes)
        target = torch.from_numpy(boxes_to_mask(boxes, *page.shape[:2])).long()[None]
        loss = module.loss(
            two_class_logits(torch.from_numpy(log_odds))[None].to(module.device), target.to(module.device)
        )
        module.log("val/loss", loss, batch_size=1, sync_dist=True)
        module.log("val/hit_rate", float(outcome["hit"]), batch_size=1, prog_bar=True, sync_dist=True)
        module.log("val/top5_hit_rate", float(outcome["top5_hit"]), batch_size=1, sync_dist=True)
        module.log("val/distance", outcome["distance"], batch_size=1, sync_dist=True)
        self.page_results.append({"page": batch["name"], **outcome, "confidence_of": confidence_of(self.second_stage)})
        if self.pictures:
            draw_page(trainer, module.global_step, batch["name"], page, log_odds, spots[0].box, boxes)


def weights_of(module: L.LightningModule) -> tuple:
    """The training step and a checksum of each of the network's tensors: equal for the same weights."""
    with torch.no_grad():
        sums = tuple(float(t.double().sum()) for t in module.net.state_dict().values())
    return module.global_step, sums


def network_as_searched(trainer: L.Trainer, module: L.LightningModule):
    """The module's network with its weights as they are now, as predict.py and the second stage's mining search it:
    OpenVINO on a CPU where it is installed, else the network's cheaper exact graph; built from a copy, so that the
    network in training is left as it is."""
    return search_network(copy.deepcopy(module.net).eval(), module.device, is_bf16(trainer.precision), "auto")


def draw_page(trainer, step: int, name: str, page: np.ndarray, log_odds: np.ndarray, predicted_box, true_boxes) -> None:
    """A validation page's heatmap beside the page, true boxes in green, the predicted box in red (TensorBoard)."""
    if (board := tensorboard(trainer.loggers)) is None:
        return
    image = torch.from_numpy(page).permute(2, 0, 1).float() / 255
    scale = min(1.0, PREVIEW_PAGE_SIDE / max(image.shape[-2:]))
    size = [max(1, round(s * scale)) for s in image.shape[-2:]]
    small = lambda t: F.interpolate(t[None].float(), size=size, mode="area")[0]
    boxes = [np.asarray(b) * scale for b in true_boxes]
    colours = ["lime"] * len(boxes)
    if predicted_box is not None:
        boxes.append(np.asarray(predicted_box) * scale)
        colours.append("red")
    shown = (small(image) * 255).to(torch.uint8)
    heat = (as_rgb(small(torch.from_numpy(probability(log_odds)).float()[None])) * 255).to(torch.uint8)
    if boxes:
        box_tensor = torch.tensor(np.stack(boxes), dtype=torch.float32)
        shown = draw_bounding_boxes(shown, box_tensor, colors=colours, width=2)
        heat = draw_bounding_boxes(heat, box_tensor, colors=colours, width=2)
    board.add_image(f"val/{name}", make_grid([shown, heat], nrow=2, padding=4), step)
