"""Hard-negative mining: draw more Waldo-free crops where the current network sees a Waldo."""

from __future__ import annotations

import dataclasses
import logging

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F

from waldo_pl.callbacks.page_validation import network_as_searched
from waldo_pl.data.crops import NEGATIVE_STRIDE, CropStream
from waldo_pl.errors import UserError
from waldo_pl.inference.search import ONE_PASS, search
from waldo_pl.models.outputs import probability
from waldo_pl.precision import is_bf16

log = logging.getLogger(__name__)


def window_peaks(log_odds: np.ndarray, window: int) -> np.ndarray:
    """The highest Waldo probability in each window of side `window`, for corners on the NEGATIVE_STRIDE grid."""
    pooled = F.max_pool2d(torch.from_numpy(log_odds)[None, None], kernel_size=window, stride=NEGATIVE_STRIDE)
    return probability(pooled[0, 0].numpy()).astype(np.float16)


class HardNegativeMining(L.Callback):
    """Every `every_n_epochs` epochs, run the network over the training pages and weight each Waldo-free
    window of the crop stream by 1 + `boost` * the highest Waldo probability it gets there."""

    def __init__(self, every_n_epochs: int = 10, boost: float = 20.0):
        if every_n_epochs < 1 or boost < 0:
            raise UserError(f"mining: every_n_epochs={every_n_epochs} must be >= 1 and boost={boost} >= 0")
        self.every_n_epochs, self.boost = every_n_epochs, boost

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        stream: CropStream = trainer.datamodule.crop_stream
        network = network_as_searched(trainer, module)
        settings = dataclasses.replace(ONE_PASS, bf16=is_bf16(trainer.precision), candidates=0)
        heats = [search(network, page.image, settings)[0] for page in stream.pages]
        hardness = {w: [window_peaks(h, w) for h in heats] for w in stream.free_windows}
        stream.set_hardness(hardness, self.boost)
        # the worst look-alike of each page: the highest probability outside Waldo's boxes
        worst = [float(probability(h[page.mask == 0].max())) for h, page in zip(heats, stream.pages)]
        module.log("train/look_alike_peak", float(np.mean(worst)))
        log.info("hard negatives mined: mean look-alike peak %.3f over %d pages", np.mean(worst), len(worst))
