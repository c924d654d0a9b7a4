"""What users of Lightning + Hydra projects expect: the working recipe by default, loggers, sweeps, debug
configs, any Trainer argument, resuming in the run's own folder."""

import inspect
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml
from conftest import draw_page, write_csv, write_labelled_pages
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from PIL import Image

from waldo_pl import CONF_DIR
from waldo_pl.crossval.rescore import Rescoring
from waldo_pl.crossval.table import fold_table
from waldo_pl.training import train

REPO = Path(__file__).resolve().parents[1]
TINY = [
    "experiment=tutorial",
    "data.panel=64",
    "data.batch_size=2",
    "data.steps_per_epoch=2",
    "trainer.accelerator=cpu",
    "trainer.devices=1",
    "trainer.check_val_every_n_epoch=1",
]


def compose_train(*overrides):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("train", overrides=list(overrides))


def run_train(*args, timeout=600):
    return subprocess.run(
        [sys.executable, "train.py", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def test_the_default_is_the_bundled_models_recipe():
    default, bundled = compose_train(), compose_train("experiment=bundled")
    for part in ("data", "model", "trainer", "second_stage"):
        assert OmegaConf.to_container(default[part]) == OmegaConf.to_container(bundled[part])
    assert default.task_name == "bundled" and default.second_stage is not None
    record = json.loads((REPO / "waldo_pl" / "weights" / "waldo.json").read_text())
    assert record["training"]["data"]["photo_look"] == default.data.photo_look
    assert record["second_stage"]["candidates"] == default.second_stage.candidates
    assert compose_train("experiment=tutorial").data.panel == 224


@pytest.mark.parametrize(
    "name", [n for n in inspect.signature(L.Trainer.__init__).parameters if n not in ("self", "logger", "callbacks")]
)
def test_every_trainer_argument_is_set_without_a_plus(name):
    value = {"num_nodes": 2, "limit_train_batches": 0.1}.get(name, None)
    cfg = compose_train(f"trainer.{name}={'null' if value is None else value}")
    assert name in cfg.trainer and cfg.trainer[name] == value


def test_trainer_ddp_is_lightnings_own():
    """Run on two CPU processes in test_train.py's DDP test."""
    cfg = compose_train("trainer=ddp", "trainer.num_nodes=2")
    assert (cfg.trainer.strategy, cfg.trainer.num_nodes, cfg.trainer.accelerator, cfg.trainer.devices) == (
        "ddp",
        2,
        "gpu",
        -1,
    )


def test_every_logger_writes_its_files_and_tensorboard_gets_pictures_wherever_it_stands(page_folder, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    train(
        compose_train(
            *TINY,
            f"data.root={page_folder}",
            "data.val_pages=[b.jpg]",
            "trainer.max_epochs=2",
            "logger=[csv,mlflow,tensorboard]",
            f"paths.output_dir={run}",
            "model.preview_every_n_epochs=1",
        )
    )
    rows = (run / "csv" / "metrics.csv").read_text().splitlines()
    assert "val/hit_rate" in rows[0] and len(rows) > 2
    with sqlite3.connect(run / "mlflow.db") as db:
        logged = {key for (key,) in db.execute("select distinct key from metrics")}
    assert {"val/hit_rate", "train/loss_epoch"} <= logged
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"images": 0}).Reload()
    assert {"val/b.jpg", "train/crop_target_prediction"} <= set(events.Tags()["images"])


def test_the_optuna_sweeper_runs_two_trials_on_the_returned_hit_rate(page_folder, tmp_path):
    result = run_train(
        "-m",
        "hparams_search=optuna",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.sampler.n_startup_trials=2",
        *TINY,
        f"data.root={page_folder}",
        "data.val_pages=[b.jpg]",
        "trainer.max_epochs=1",
        "logger=none",
        f"paths.log_dir={tmp_path}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (summary,) = tmp_path.rglob("optimization_results.yaml")
    results = yaml.safe_load(summary.read_text())
    assert 0.0 <= results["best_value"] <= 1.0 and set(results["best_params"]) == {
        "model.optimizer.lr",
        "data.prop",
        "model.class_weights",
    }
    assert len(list(summary.parent.glob("*/metrics.json"))) == 2


def test_debug_fdr_and_profiler_run(page_folder, tmp_path):
    fdr = train(
        compose_train(
            *TINY,
            "debug=fdr",
            f"data.root={page_folder}",
            "data.val_pages=[b.jpg]",
            f"paths.output_dir={tmp_path / 'fdr'}",
        )
    )
    assert "train/loss_step" in fdr and not (tmp_path / "fdr" / "tensorboard").exists()
    train(
        compose_train(
            *TINY,
            "debug=profiler",
            f"data.root={page_folder}",
            "data.val_pages=[b.jpg]",
            "logger=none",
            f"paths.output_dir={tmp_path / 'profiler'}",
        )
    )
    profile = (tmp_path / "profiler" / "fit-profile.txt").read_text()
    assert "run_training_epoch" in profile


def test_debug_overfit_learns_its_two_pages(tmp_path):
    write_labelled_pages(
        tmp_path, {"o0.png": ((96, 112), [(20, 24, 34, 42)]), "o1.png": ((96, 112), [(70, 60, 84, 78)])}
    )
    metrics = train(
        compose_train(
            *TINY,
            "debug=overfit",
            f"data.root={tmp_path}",
            "data.batch_size=8",
            "data.prop=0.5",
            "data.steps_per_epoch=10",
            "model.class_weights=[1,4]",
            "logger=none",
            "seed=1",
            f"paths.output_dir={tmp_path / 'run'}",
        )
    )
    record = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert [p["page"] for p in record["pages"]] == ["o0.png", "o1.png"]
    assert metrics["val/hit_rate"] == 1.0


def test_resuming_goes_on_in_the_runs_own_folder(page_folder, tmp_path):
    common = [*TINY, f"data.root={page_folder}", "data.val_pages=[b.jpg]", "logger=csv", f"paths.log_dir={tmp_path}"]
    assert run_train(*common, "trainer.max_epochs=1").returncode == 0
    (run,) = (tmp_path / "tutorial").iterdir()
    resumed = run_train(*common, "trainer.max_epochs=2", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert list((tmp_path / "tutorial").iterdir()) == [run]
    assert OmegaConf.load(run / ".hydra" / "config.yaml").ckpt_path is None  # the first run's config is kept
    (again,) = (run / ".hydra").glob("resumed_*/config.yaml")
    assert OmegaConf.load(again).ckpt_path.endswith("last.ckpt")
    assert (
        torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 2 * 2
    )  # two epochs of two steps
    epochs = {line.split(",")[0] for line in (run / "csv" / "metrics.csv").read_text().splitlines()[1:]}
    assert epochs  # one CSV, written by both parts


def test_crossval_rescores_runs_that_used_the_downloaded_pages(trained_checkpoint, tmp_path, monkeypatch):
    from waldo_pl.data.download import COMPLETE_MARKER, default_root

    monkeypatch.setenv("WALDO_PL_DATA", str(tmp_path / "cache"))
    pages = default_root()
    (pages / "images").mkdir(parents=True)
    Image.fromarray(draw_page(96, 128, [(40, 30, 56, 50)])).save(pages / "images" / "d.png")
    write_csv(pages / "annotations.csv", [("d.png", 128, 96, "waldo", 40, 30, 56, 50)])
    run = tmp_path / "runs" / "0"
    (run / ".hydra").mkdir(parents=True)
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "last.ckpt").write_bytes(trained_checkpoint.read_bytes())
    OmegaConf.save(
        OmegaConf.create({"seed": 0, "data": {"root": None, "folds": 5, "fold": 0}}), run / ".hydra" / "config.yaml"
    )
    (run / "metrics.json").write_text(
        json.dumps({"steps": 1, "pages": [{"page": "d.png", "hit": 0, "top5_hit": 0, "distance": 9}]})
    )
    with pytest.raises(Exception, match="waldo-download"):
        fold_table(tmp_path / "runs", Rescoring.searching([1.0]))
    (pages / COMPLETE_MARKER).write_text("")
    assert "d.png" in fold_table(tmp_path / "runs", Rescoring.searching([1.0]))
