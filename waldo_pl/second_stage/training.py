"""Train the second stage after the first: mine the first stage's spots on the training pages, learn to tell
Waldo from them (models/spot_module.py), and store it with the first stage in the run's checkpoints."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException
from torch import nn
from torch.utils.data import DataLoader

from waldo_pl import CONF_DIR
from waldo_pl.data.page import Page
from waldo_pl.data.spot_stream import SpotStream
from waldo_pl.errors import UserError, exits_cleanly
from waldo_pl.files import write_atomically
from waldo_pl.inference.device import search_network
from waldo_pl.inference.search import ONE_PASS, PREDICT, SearchSettings, search
from waldo_pl.models import lite_spot_net
from waldo_pl.models.checkpoint import network_from, read_checkpoint, second_stage_entry
from waldo_pl.models.lite_spot_net import LiteSpotNet
from waldo_pl.models.spot_module import SpotClassifier
from waldo_pl.models.spot_net import SpotNet
from waldo_pl.precision import is_bf16, trainer_device_type, training_precision
from waldo_pl.second_stage.spec import UNCALIBRATED, SecondStage, as_setting, check_reranking, whole_number

log = logging.getLogger(__name__)

# What the second stage looks through: SpotNet, learnt from scratch on 64-px windows, or EfficientNet-Lite0 from
# ImageNet's weights (models/lite_spot_net.py), on `window`-px windows, its last `tuned` blocks learning.
BACKBONES = ("spotnet", "efficientnet_lite0")
# Worker processes making the windows (cut, flipped, some made photo-like) beside the steps: none, as one costs more
# than it saves on 2 CPU cores (bench/RESULTS.md, "Training speed"); one gives the same windows as none.
WINDOW_WORKERS = 0


def check_settings(settings) -> None:
    """Refuse a setting the second stage cannot use before the first stage trains, not an hour later."""
    for key in ("mined", "steps", "batch_size", "window"):
        value = settings.get(key)
        if value is not None and not whole_number(value):
            raise UserError(f"{as_setting(key, value)}: must be a whole number, 1 or more")
    check_reranking(settings.get("candidates"), settings.get("margin"), settings.get("confidence"))
    backbone, tuned = settings.get("backbone", "spotnet"), settings.get("tuned", 0)
    if backbone not in BACKBONES:
        raise UserError(f"{as_setting('backbone', backbone)}: must be one of {', '.join(BACKBONES)}")
    if isinstance(tuned, bool) or not isinstance(tuned, int) or not 0 <= tuned <= lite_spot_net.STAGES:
        raise UserError(
            f"{as_setting('tuned', tuned)}: must be a whole number of blocks, 0 to {lite_spot_net.STAGES} "
            "(0: ImageNet's features as they are)"
        )
    paste = settings.get("paste", 0.0)
    if isinstance(paste, bool) or not isinstance(paste, (int, float)) or not 0 <= paste <= 1:
        raise UserError(f"{as_setting('paste', paste)}: must be a share of the Waldo windows, 0 to 1")
    if backbone == "spotnet" and settings.get("window") is not None:
        raise UserError(
            f"{as_setting('window', settings['window'])}: SpotNet sees 64-px windows; "
            "the window is efficientnet_lite0's setting (second_stage.backbone=efficientnet_lite0)"
        )
    if backbone == "efficientnet_lite0":
        lite_spot_net.require_imagenet()


def spot_classifier(backbone: str, width: int, window: int | None, tuned: int) -> nn.Module:
    """A second stage's network before training: a SpotNet of `width`, or EfficientNet-Lite0 from ImageNet's
    weights seeing `window`-px windows (None: its own default), its last `tuned` blocks to learn."""
    if backbone == "spotnet":
        return SpotNet(width)
    return LiteSpotNet(window or lite_spot_net.WINDOW, tuned).load_imagenet()


def mine_spots(net, pages: Sequence[Page], settings: SearchSettings) -> list[list[dict]]:
    """The first stage's best spots on each page, as {x, y, confidence, box}, best first; `net` as search takes it."""
    return [[s.as_dict() for s in search(net, page.image, settings)[1]] for page in pages]


def mine_training_spots(
    first_net: nn.Module, pages: Sequence[Page], mined: int, scales: Sequence[float], bf16: bool
) -> list[list[dict]]:
    """A PyTorch first stage's best `mined` spots on each page, searched by the search's own network: OpenVINO on a
    CPU where it is installed, else the exact fast graph."""
    device = next(first_net.parameters()).device
    net = search_network(first_net.eval(), device, bf16, "auto")
    return mine_spots(net, pages, dataclasses.replace(ONE_PASS, scales=tuple(scales), candidates=mined - 1, bf16=bf16))


def fit_second_stage(
    pages: Sequence[Page],
    spots: Sequence[Sequence[dict]],
    steps: int = 1500,
    batch_size: int = 64,
    lr: float = 2e-3,
    photo_look: float = 0.0,
    width: int = 16,
    seed: int = 0,
    precision: str = "auto",
    accelerator: str = "cpu",
    backbone: str = "spotnet",
    window: int | None = None,
    tuned: int = 2,
    paste: float = 0.0,
) -> nn.Module:
    """A second stage's network (`spot_classifier`) trained on windows around the pages' Waldos and the first
    stage's false spots, in `precision` (a Lightning precision, or auto: the device's fastest)."""
    precision = training_precision(precision, trainer_device_type(accelerator))[0]
    L.seed_everything(seed, workers=True, verbose=False)
    net = spot_classifier(backbone, width, window, tuned)
    stream = SpotStream(pages, spots, seed=seed, out=net.window, photo_look=photo_look, paste=paste)
    module = SpotClassifier(net, lr=lr, max_steps=steps)
    trainer = L.Trainer(
        max_steps=steps,
        accelerator=accelerator,
        precision=precision,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, DataLoader(stream, batch_size=batch_size, num_workers=WINDOW_WORKERS))
    return module.net.eval()


def train_second_stage(
    first_net: nn.Module,
    pages: Sequence[Page],
    candidates: int = 3,
    mined: int = 9,
    scales: Sequence[float] | None = None,
    precision: str = "auto",
    margin: float = 0.0,
    confidence: str = "share",
    **fit,
) -> tuple[SecondStage, dict]:
    """A second stage for `first_net`: its best `mined` spots on each page (at `scales`, None: predict.py's,
    unmirrored), and a SpotNet fitted to tell Waldo from them, re-ranking `candidates` spots, the first stage's best
    given `margin` log-odds; and the record of how it was made. Mining and fit run in `precision` (a Lightning
    precision, or auto: the device's fastest)."""
    check_reranking(candidates, margin, confidence)
    precision = training_precision(precision, trainer_device_type(fit.get("accelerator", "cpu")))[0]
    started = time.perf_counter()
    spots = mine_training_spots(first_net, pages, mined, scales or PREDICT.scales, is_bf16(precision))
    fitting = time.perf_counter()
    net = fit_second_stage(pages, spots, precision=precision, **fit)
    stage = SecondStage(net, candidates, UNCALIBRATED, f"none: the {confidence} as it comes", margin, confidence)
    record = {
        "candidates": candidates,
        "margin": margin,
        "confidence": confidence,
        "mined": mined,
        "pages": len(pages),
        "precision": str(precision),
        "mine_seconds": round(fitting - started, 1),
        "fit_seconds": round(time.perf_counter() - fitting, 1),
        **{k: v for k, v in fit.items() if k != "accelerator"},
    }
    log.info(
        "second stage: %d pages mined in %.0f s, fitted in %.0f s",
        len(pages),
        record["mine_seconds"],
        record["fit_seconds"],
    )
    return stage, record


def store_second_stage(stage: SecondStage, record: dict, checkpoints: Sequence[Path]) -> None:
    """Add `stage` (its network has a spec(): SpotNet, LiteSpotNet), with its training `record`, to each
    checkpoint file, each written whole."""
    entry = second_stage_entry(stage, record=record)
    for path in checkpoints:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        checkpoint["second_stage"] = entry
        write_atomically(path, lambda f, checkpoint=checkpoint: torch.save(checkpoint, f))


def run_settings(cfg, overrides: Sequence[str] = ()) -> dict:
    """A train.py run's second-stage settings (its config's, else conf/second_stage's) with `overrides`
    ("key=value") on top, checked."""
    defaults = OmegaConf.load(CONF_DIR / "second_stage" / "default.yaml")
    try:
        settings = OmegaConf.merge(defaults, cfg.get("second_stage") or {}, OmegaConf.from_dotlist(list(overrides)))
        look = {"data": {"photo_look": cfg.data.get("photo_look", 0.0)}}
        settings = OmegaConf.to_container(OmegaConf.merge(look, {"s": settings}), resolve=True)["s"]
    except OmegaConfBaseException as err:
        raise UserError(f"second-stage settings {list(overrides)}: {err}".splitlines()[0]) from None
    unknown = set(settings) - set(defaults)
    if unknown:
        raise UserError(f"{', '.join(sorted(unknown))}: not a second-stage setting; use {', '.join(defaults)}")
    check_settings(settings)
    return settings


@exits_cleanly
def main(argv: list[str] | None = None) -> None:
    """waldo-second-stage RUN: train the second stage for a finished train.py run (its first stage's last
    weights and its training pages), and add it to the run's checkpoints."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("run", type=Path, help="a train.py run folder (with .hydra/config.yaml and checkpoints/)")
    parser.add_argument(
        "overrides",
        nargs="*",
        help="second-stage settings, e.g. steps=500 candidates=8 (conf/second_stage/default.yaml)",
    )
    args = parser.parse_args(argv)
    try:
        cfg = OmegaConf.load(args.run / ".hydra" / "config.yaml")
    except (OSError, OmegaConfBaseException):
        raise UserError(f"{args.run}: no readable .hydra/config.yaml; give the folder of a train.py run") from None
    checkpoints = sorted((args.run / "checkpoints").glob("*.ckpt"))
    if not checkpoints:
        raise UserError(f"{args.run / 'checkpoints'}: no checkpoint; give the folder of a finished train.py run")
    settings = run_settings(cfg, args.overrides)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    first = network_from(
        read_checkpoint(args.run / "checkpoints" / "last.ckpt", None), str(args.run / "checkpoints" / "last.ckpt")
    )
    precision, why = training_precision(cfg.trainer.get("precision", "auto"), "cpu")
    log.info("precision: %s (%s)", precision, why)
    stage, record = train_second_stage(
        first, datamodule.train_pages, precision=precision, seed=int(cfg.seed), **settings
    )
    store_second_stage(stage, record, checkpoints)
    print(f"second stage added to {', '.join(str(p) for p in checkpoints)}: {record}")


if __name__ == "__main__":
    main()
