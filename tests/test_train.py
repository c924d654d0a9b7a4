"""train.py and the training run, on small generated pages."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import draw_page, write_csv
from hydra import compose, initialize_config_dir
from PIL import Image

from waldo_pl import CONF_DIR
from waldo_pl.crossval.rescore import Rescoring
from waldo_pl.crossval.table import fold_table
from waldo_pl.errors import UserError
from waldo_pl.models.tutorial_net import TutorialNet
from waldo_pl.training import train

REPO = Path(__file__).resolve().parents[1]
SMALL = [
    "experiment=tutorial",
    "data.panel=64",
    "data.batch_size=4",
    "data.steps_per_epoch=2",
    "trainer.accelerator=cpu",
    "trainer.devices=1",
]


def config(tmp_path, *overrides):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("train", overrides=[f"paths.output_dir={tmp_path / 'run'}", "experiment=tutorial", *overrides])


def run_train(*args, timeout=300):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "train.py", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env
    )


@pytest.fixture
def learnable_pages(tmp_path) -> Path:
    """Eight 128x128 pages, each with a red-striped Waldo and a blue-striped look-alike; two are for validation."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "pages"
    (folder / "images").mkdir(parents=True)
    rows = []
    for i in range(8):
        x, y = int(rng.integers(8, 110)), int(rng.integers(8, 46)) + 64 * (i % 2)
        box = (x, y, x + 14, y + 18)
        look_alike = draw_page(128, 128, [(128 - 14 - x, 128 - 18 - y, 128 - x, 128 - y)], seed=i)[..., ::-1]
        page = draw_page(128, 128, [box], seed=i)
        page[64 * (1 - i % 2) : 64 * (2 - i % 2)] = look_alike[64 * (1 - i % 2) : 64 * (2 - i % 2)]
        Image.fromarray(page).save(folder / "images" / f"p{i}.png")
        rows.append((f"p{i}.png", 128, 128, "waldo", *box))
    write_csv(folder / "annotations.csv", rows)
    return folder


def test_fast_dev_run_of_train_py(page_folder, tmp_path):
    result = run_train(
        *SMALL,
        f"data.root={page_folder}",
        "data.val_pages=[b.jpg]",
        f"paths.log_dir={tmp_path}",
        "trainer.fast_dev_run=true",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "1 validation pages (b.jpg)" in result.stderr + result.stdout


def test_tensorboard_gets_curves_pictures_and_hyperparameters(page_folder, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = config(
        tmp_path,
        *SMALL,
        f"data.root={page_folder}",
        "data.val_pages=[b.jpg]",
        "trainer.max_epochs=2",
        "trainer.check_val_every_n_epoch=1",
        "model.preview_every_n_epochs=1",
        "trainer.log_every_n_steps=1",
    )
    train(cfg)
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"), size_guidance={"images": 0}).Reload()
    scalars, images = set(events.Tags()["scalars"]), set(events.Tags()["images"])
    assert {
        "train/loss_step",
        "train/loss_epoch",
        "train/pixel_accuracy",
        "val/loss",
        "val/hit_rate",
        "val/distance",
        "lr-Adam",
    } <= scalars
    assert {"train/crop_target_prediction", "val/b.jpg"} <= images
    assert len(events.Images("train/crop_target_prediction")) == 2
    page = events.Images("val/b.jpg")[-1]
    assert page.width > 2 * 128 and page.height >= 96  # page and heatmap side by side
    assert (tmp_path / "run" / "tensorboard" / "hparams.yaml").read_text().count("batch_size") >= 1


def test_a_short_run_learns_to_find_the_drawn_waldo(learnable_pages, tmp_path):
    cfg = config(
        tmp_path,
        f"data.root={learnable_pages}",
        "data.val_pages=[p6.png,p7.png]",
        "data.panel=64",
        "data.batch_size=8",
        "data.steps_per_epoch=25",
        "data.prop=0.5",
        "trainer.max_epochs=6",
        "trainer.accelerator=cpu",
        "trainer.check_val_every_n_epoch=6",
        "model.class_weights=[1,4]",
        "model.preview_every_n_epochs=0",
        "logger=none",
        "seed=2",
    )
    import lightning as L
    from hydra.utils import instantiate

    # the weights that training starts from (seed 2: untrained, they miss both validation Waldos)
    L.seed_everything(cfg.seed)
    before = L.Trainer(
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        callbacks=[instantiate(cfg.callbacks.page_validation)],
    ).validate(instantiate(cfg.model), datamodule=instantiate(cfg.data), verbose=False)[0]
    start = time.perf_counter()
    metrics = train(cfg)
    wall = time.perf_counter() - start
    assert metrics["val/loss"] < 0.5 * before["val/loss"]
    assert metrics["val/hit_rate"] == 1.0 > before["val/hit_rate"]
    assert metrics["val/distance"] < before["val/distance"]
    record = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert [p["page"] for p in record["pages"]] == ["p6.png", "p7.png"] and all(p["hit"] for p in record["pages"])
    table = fold_table(tmp_path)
    rows = lambda text: text.split("\n\n")[0].splitlines()  # the fold table, without the confidence table after it
    assert "2/2" in rows(table)[-1] and 0 < record["fit_seconds"] < wall  # the fit alone, not setup
    assert f"{record['fit_seconds'] / 60:.1f} min" in rows(table)[2]
    assert "Mean confidence of hits" in table
    # the last checkpoint searches the held-out pages again, as predict.py would, and finds the same
    assert rows(fold_table(tmp_path, Rescoring.searching([1.0]), data_root=learnable_pages))[2:] == rows(table)[2:]
    assert (
        "2/2"
        in rows(
            fold_table(
                tmp_path, Rescoring.searching(flip=True), data_root=learnable_pages, keep=tmp_path / "answers.json"
            )
        )[-1]
    )
    kept = json.loads((tmp_path / "answers.json").read_text())  # the answers searched again, to study without searching
    assert [(p["page"], p["hit"], p["run"]) for p in kept] == [("p6.png", 1, "run"), ("p7.png", 1, "run")]
    assert all(
        p["first_stage_log_odds"] >= p["log_odds"] - 1e-3 for p in kept
    )  # no second stage: the same number, unrounded
    with pytest.raises(UserError, match="no such folder"):
        fold_table(tmp_path, Rescoring.searching([1.0, 2.0]), data_root=tmp_path / "nowhere")


def test_validation_searches_the_mirrored_page_too_when_told(learnable_pages, tmp_path, monkeypatch):
    """callbacks.page_validation.flip=true validates as predict.py searches by default: each page searched twice."""
    import lightning as L
    from hydra.utils import instantiate

    from waldo_pl.inference import heatmap

    images, searched = {}, heatmap.page_log_odds
    for flip in ("false", "true"):
        cfg = config(
            tmp_path,
            f"data.root={learnable_pages}",
            "data.val_pages=[p6.png,p7.png]",
            "data.panel=64",
            "trainer.accelerator=cpu",
            "logger=none",
            f"callbacks.page_validation.flip={flip}",
            "callbacks.page_validation.pictures=false",
        )
        callback, module = instantiate(cfg.callbacks.page_validation), instantiate(cfg.model)
        seen = []
        monkeypatch.setattr(
            heatmap,
            "page_log_odds",
            lambda net, page, seen=seen, **kwargs: seen.append(page.shape) or searched(net, page, **kwargs),
        )
        L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, callbacks=[callback]).validate(
            module, datamodule=instantiate(cfg.data), verbose=False
        )
        images[flip] = len(seen)
        assert [p["page"] for p in callback.page_results] == ["p6.png", "p7.png"]
    assert images["false"] == 2 and images["true"] == 4


def test_resuming_from_a_checkpoint_continues_exactly(page_folder, tmp_path):
    common = [
        *SMALL,
        f"data.root={page_folder}",
        "data.val_pages=[b.jpg]",
        "trainer.check_val_every_n_epoch=1",
        "logger=none",
    ]
    train(config(tmp_path / "straight", *common, "trainer.max_epochs=3"))
    train(config(tmp_path / "first", *common, "trainer.max_epochs=2"))
    stopped = tmp_path / "first" / "run" / "checkpoints" / "last.ckpt"
    train(config(tmp_path / "resumed", *common, "trainer.max_epochs=3", f"ckpt_path={stopped}"))

    straight = torch.load(tmp_path / "straight" / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    resumed = torch.load(tmp_path / "resumed" / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    assert resumed["global_step"] == straight["global_step"] == 6
    for name, value in straight["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][name]), name
    assert list((tmp_path / "straight" / "run" / "checkpoints").glob("best-*.ckpt"))


@pytest.mark.slow  # torch.compile builds its kernels with the C++ compiler: about half a minute
def test_a_compiled_network_trains_and_its_checkpoint_is_the_networks_own(page_folder, tmp_path):
    from waldo_pl.models.checkpoint import network_from, read_checkpoint

    cfg = config(
        tmp_path,
        *SMALL,
        f"data.root={page_folder}",
        "data.val_pages=[b.jpg]",
        "trainer.max_epochs=1",
        "model.compile=true",
        "logger=none",
        "trainer.check_val_every_n_epoch=1",
    )
    metrics = train(cfg)
    assert np.isfinite(metrics["train/loss_epoch"]) and "val/hit_rate" in metrics
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    state = torch.load(ckpt, weights_only=False)["state_dict"]
    assert {k for k in state if k.startswith("net.")} == {f"net.{k}" for k in TutorialNet().state_dict()}
    loaded = network_from(read_checkpoint(ckpt, None), str(ckpt))
    assert all(torch.equal(loaded.state_dict()[k], state[f"net.{k}"]) for k in loaded.state_dict())


@pytest.mark.parametrize("group", sorted(str(p.relative_to(CONF_DIR)) for p in CONF_DIR.rglob("*") if p.is_dir()))
def test_every_option_of_every_group_composes(group, tmp_path):
    for option in sorted((CONF_DIR / group).glob("*.yaml")):
        cfg = config(tmp_path, f"{group}={option.stem}")
        assert cfg.data.panel % 16 == 0 and cfg.trainer._target_.endswith("Trainer")
        assert cfg.model.scheduler._target_.startswith("torch.optim.lr_scheduler.")


def test_experiment_tutorial_is_the_tutorials_run(tmp_path):
    cfg = config(tmp_path, "experiment=tutorial")
    assert (cfg.data.batch_size, cfg.data.steps_per_epoch, cfg.data.prop, cfg.trainer.max_epochs) == (6, 6, 0.34, 500)
    assert cfg.model.optimizer.lr == 1e-3 and cfg.model.scheduler.patience == 100


def test_experiment_fast_is_this_projects_recipe(tmp_path):
    cfg = config(tmp_path, "experiment=fast")
    assert (cfg.data.panel, cfg.data.batch_size, cfg.data.prop, list(cfg.model.class_weights)) == (128, 16, 0.5, [1, 3])
    assert cfg.model.scheduler.T_max == cfg.trainer.max_epochs == 160 and cfg.trainer.precision == "auto"


def test_auto_precision_is_bf16_only_where_the_hardware_computes_in_it(monkeypatch):
    from waldo_pl import precision

    monkeypatch.setattr(precision, "cpu_bf16", lambda: False)  # an AVX2-only CPU: bf16 would be emulated
    chosen, why = precision.training_precision("auto", "cpu")
    assert chosen == "32-true" and why.startswith("auto: a CPU without native bf16")
    monkeypatch.setattr(precision, "cpu_bf16", lambda: True)  # AVX-512 or AMX
    assert precision.training_precision("auto", "cpu")[0] == "bf16-mixed"
    monkeypatch.setattr(precision, "cuda_bf16", lambda: True)
    assert precision.training_precision("auto", "cuda")[0] == "bf16-mixed"
    monkeypatch.setattr(precision, "cuda_bf16", lambda: False)
    assert precision.training_precision("auto", "cuda")[0] == "32-true"
    assert precision.training_precision("bf16-mixed", "cpu") == ("bf16-mixed", "as set")  # the user's word stands
    assert precision.training_precision(32, "cuda") == ("32", "as set")


def test_a_short_seeded_run_learns_alike_in_float32_and_bf16(page_folder, tmp_path):
    """Whichever precision auto chooses, the run learns the same: the same seeded steps in 32-true and bf16-mixed end at
    losses within bf16's rounding of each other (bf16 keeps 8 bits of mantissa)."""
    losses = {}
    for precision in ("32-true", "bf16-mixed"):
        cfg = config(
            tmp_path / precision,
            *SMALL,
            f"data.root={page_folder}",
            "data.val_pages=[b.jpg]",
            "trainer.max_epochs=3",
            "trainer.check_val_every_n_epoch=10",
            "logger=none",
            "callbacks=none",
            f"trainer.precision={precision}",
        )
        losses[precision] = train(cfg)["train/loss_epoch"]
    assert losses["bf16-mixed"] != losses["32-true"]  # each ran in its own precision
    assert losses["bf16-mixed"] == pytest.approx(losses["32-true"], rel=0.05)


def test_experiment_long_is_fast_twice_as_long_at_four_zooms(tmp_path):
    fast, long = config(tmp_path, "experiment=fast"), config(tmp_path, "experiment=long")
    assert list(long.data.zooms) == [0.8, 1.0, 1.25, 1.6] and list(fast.data.zooms) == [1.0]
    assert long.model.scheduler.T_max == long.trainer.max_epochs == 2 * fast.trainer.max_epochs
    assert (
        long.task_name == "long"
        and long.data.panel == fast.data.panel
        and long.model.class_weights == fast.model.class_weights
    )


def test_experiment_quick_is_bundled_on_smaller_crops_in_fewer_steps(tmp_path):
    bundled, quick = config(tmp_path, "experiment=bundled"), config(tmp_path, "experiment=quick")
    assert (quick.data.panel, quick.trainer.max_epochs, quick.model.scheduler.T_max) == (96, 200, 200)
    assert (bundled.data.panel, bundled.trainer.max_epochs) == (128, 320)
    same = lambda cfg: (cfg.data.zooms, cfg.data.photo_look, cfg.data.batch_size, cfg.second_stage, cfg.model.optimizer)
    assert same(quick) == same(bundled) and quick.task_name == "quick"


def test_ddp_on_two_cpu_processes_gives_each_rank_its_own_crops(page_folder, tmp_path):
    result = run_train(
        *SMALL[:4],
        f"data.root={page_folder}",
        "data.val_pages=[b.jpg]",
        f"paths.log_dir={tmp_path}",
        "trainer=ddp",
        "trainer.devices=2",
        "trainer.accelerator=cpu",
        "trainer.precision=32",
        "trainer.max_epochs=1",
        "logger=none",
        "callbacks=none",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    logs = "".join(p.read_text() for p in tmp_path.rglob("*.log"))
    checksums = dict(
        line.split(": first batch checksum ") for line in logs.splitlines() if "first batch checksum" in line
    )
    ranks = {key.split(" - ")[-1]: value for key, value in checksums.items()}
    assert set(ranks) == {"rank 0 of 2", "rank 1 of 2"}
    assert ranks["rank 0 of 2"] != ranks["rank 1 of 2"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["trainer.accelerator=gpu"], "trainer.accelerator=gpu: no CUDA GPU"),
        (["data.batch_sizee=3"], "Could not override 'data.batch_sizee'"),
        (["model=nope"], "Could not find 'model/nope'"),
        (["data.root=/no/such/folder"], "data.root=/no/such/folder: no such folder"),
        (["ckpt_path=/no/such.ckpt"], "ckpt_path=/no/such.ckpt: no such checkpoint"),
        (["data.prop=2"], "data.prop=2"),
        (["callbacks.page_validation.threshold=80"], "threshold=80: must be a probability"),
        (["second_stage.candidates=0"], "second_stage.candidates=0: must be a whole number, 1 or more"),
        (["second_stage.mined=2.5"], "second_stage.mined=2.5: must be a whole number"),
        (["second_stage.margin=-1"], "second_stage.margin=-1: must be a number of log-odds, 0 or more"),
    ],
)
def test_bad_settings_are_one_line_and_exit_2(page_folder, tmp_path, args, message):
    if not any(a.startswith("data.root") for a in args):
        args = [f"data.root={page_folder}", *args]
    result = run_train(*args, f"paths.log_dir={tmp_path}", "trainer.max_epochs=1")
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(errors) == 1 and message in errors[0]
    assert "Traceback" not in result.stderr


def test_hydras_own_flags_work_and_a_bad_option_among_them_is_one_line():
    shown = run_train("--cfg", "job", "-p", "model", "experiment=fast")
    assert shown.returncode == 0 and "class_weights:" in shown.stdout and "- 1\n" in shown.stdout
    bad = run_train("--cfg", "job", "trainer=nope")
    assert bad.returncode == 2 and "trainer/nope" in bad.stderr and "Traceback" not in bad.stderr


def test_config_dir_and_searchpath_compose_as_plain_hydra_does(tmp_path):
    added = tmp_path / "added"
    (added / "experiment").mkdir(parents=True)
    (added / "experiment" / "cd.yaml").write_text("# @package _global_\nseed: 41\n")
    own = run_train("-cd", str(added), "-cn", "train", "experiment=cd", "--cfg", "job")
    assert own.returncode == 0, own.stderr[-2000:]
    assert "\nseed: 41\n" in own.stdout
    extra = tmp_path / "extra"
    (extra / "experiment").mkdir(parents=True)
    (extra / "experiment" / "mine.yaml").write_text("# @package _global_\ntask_name: mine\ndata:\n  panel: 96\n")
    found = run_train(f"hydra.searchpath=[file://{extra}]", "experiment=mine", "--cfg", "job")
    assert found.returncode == 0, found.stderr[-2000:]
    assert "task_name: mine" in found.stdout and "panel: 96" in found.stdout
    missing = run_train("experiment=mine", "--cfg", "job")
    assert missing.returncode == 2 and "experiment/mine" in missing.stderr
