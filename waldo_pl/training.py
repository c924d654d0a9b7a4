"""Build data, model, callbacks, loggers and trainer from the Hydra config, and fit."""

from __future__ import annotations

import contextlib
import json
import logging
import time
import warnings
from pathlib import Path

import lightning as L
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import LearningRateMonitor
from omegaconf import DictConfig, OmegaConf

from waldo_pl.callbacks import PageValidation, RunConfig
from waldo_pl.cli import one_line, user_error_from
from waldo_pl.errors import UserError
from waldo_pl.files import write_text_atomically
from waldo_pl.models.checkpoint import read_checkpoint
from waldo_pl.precision import trainer_device_type, training_precision
from waldo_pl.second_stage.spec import SecondStage
from waldo_pl.second_stage.training import check_settings, store_second_stage, train_second_stage

log = logging.getLogger(__name__)

# The crop loader's length is its epoch in batches, whatever the workers: nothing to warn about.
warnings.filterwarnings("ignore", message=".*IterableDataset. has .__len__. defined")


def check_accelerator(accelerator: str) -> None:
    if str(accelerator) in ("gpu", "cuda") and not torch.cuda.is_available():
        raise UserError(
            f"trainer.accelerator={accelerator}: no CUDA GPU on this machine; use trainer.accelerator=cpu or auto"
        )


def instantiate_group(group: DictConfig | None) -> list:
    return [instantiate(c) for c in (group or {}).values() if c is not None]


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit the model on the data the config names; returns the last logged metrics."""
    check_accelerator(cfg.trainer.accelerator)
    if cfg.get("second_stage"):
        check_settings(cfg.second_stage)
    if cfg.ckpt_path is not None:
        read_checkpoint(cfg.ckpt_path, "ckpt_path")  # refused as data before Lightning unpickles it
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    precision, why = training_precision(cfg.trainer.precision, trainer_device_type(cfg.trainer.accelerator))
    log.info("precision: %s (%s)", precision, why)
    run_config = OmegaConf.to_container(cfg, resolve=True)
    run_config["trainer"]["precision"] = precision  # as it trained: a later second stage or search reads it
    try:
        datamodule = instantiate(cfg.data)
        model = instantiate(cfg.model)
        callbacks = [*instantiate_group(cfg.get("callbacks")), RunConfig(run_config)]
        loggers = instantiate_group(cfg.get("logger"))
        if not loggers:  # nothing to write learning rates to
            callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
        trainer = instantiate(cfg.trainer, precision=precision, callbacks=callbacks, logger=loggers or False)
    except InstantiationException as err:
        raise user_error_from(err) from None
    except MisconfigurationException as err:
        raise UserError(f"trainer: {one_line(err)}") from None
    Path(cfg.paths.output_dir).mkdir(
        parents=True, exist_ok=True
    )  # where the loggers write (Hydra makes it for train.py)
    for logger in loggers:
        logger.log_hyperparams(run_config)
    started = time.perf_counter()
    trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.ckpt_path)
    fit_seconds = time.perf_counter() - started
    metrics = {name: float(value) for name, value in trainer.callback_metrics.items()}
    validation = next((c for c in callbacks if isinstance(c, PageValidation)), None)
    second_stage = None
    if cfg.get("second_stage") and not trainer.fast_dev_run:
        second_stage = fit_second_stage_after(cfg, model, datamodule, trainer)
        fit_seconds = time.perf_counter() - started
    if datamodule.val_pages and not trainer.fast_dev_run:
        # The final weights on the held-out pages, whatever the validation interval was, re-ranked by the second stage.
        with validation.reranking_with(second_stage) if validation is not None else contextlib.nullcontext():
            metrics.update(trainer.validate(model, datamodule=datamodule, verbose=False)[0])
        if trainer.is_global_zero and validation is not None:
            write_metrics(
                Path(cfg.paths.output_dir) / "metrics.json", metrics, validation.page_results, trainer, fit_seconds
            )
    log.info("outputs in %s", cfg.paths.output_dir)
    return metrics


def fit_second_stage_after(cfg: DictConfig, model, datamodule, trainer: L.Trainer) -> SecondStage:
    """Train the second stage on the first stage's final weights (on the first process), add it to the run's
    checkpoints, and return it to every process."""
    stage = None
    if trainer.is_global_zero:
        settings = OmegaConf.to_container(cfg.second_stage, resolve=True)
        stage, record = train_second_stage(
            model.net,
            datamodule.train_pages,
            precision=str(trainer.precision),
            seed=cfg.seed,
            accelerator="gpu" if model.device.type == "cuda" else "cpu",
            **settings,
        )
        store_second_stage(stage, record, sorted(Path(cfg.paths.output_dir, "checkpoints").glob("*.ckpt")))
        log.info("second stage: %s", record)
    return trainer.strategy.broadcast(stage)


def write_metrics(path: Path, metrics: dict, pages: list[dict], trainer, fit_seconds: float) -> None:
    """The final validation figures and each held-out page's outcome, for cross-validation tables.
    `fit_seconds` is this process's trainer.fit, validation included (a resumed run counts its own part)."""
    record = {
        "epochs": trainer.current_epoch,
        "steps": trainer.global_step,
        "fit_seconds": round(fit_seconds, 1),
        "precision": str(trainer.precision),
        "metrics": metrics,
        "pages": pages,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(path, json.dumps(record, indent=2) + "\n")


def optimized_metric(cfg: DictConfig, metrics: dict[str, float]) -> float | None:
    """The metric named by `optimized_metric`, for a sweeper; None when it is unset or the run did not log it."""
    name = cfg.get("optimized_metric")
    if name is None:
        return None
    if name not in metrics:
        log.warning(
            "optimized_metric=%s: this run logged no such metric (it had no validation pages?); returning nothing", name
        )
        return None
    return metrics[name]
