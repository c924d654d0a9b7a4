"""A checkpoint file is data: it can name one of this project's networks, never code to run."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import draw_page
from PIL import Image

from waldo_pl.errors import UserError
from waldo_pl.export import export
from waldo_pl.models.checkpoint import load_network

REPO = Path(__file__).resolve().parents[1]


class Opener:
    """Unpickling this opens (and so empties) the file it names."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


def crafted(tmp_path: Path, kind: str, victim: Path) -> Path:
    weights = {f"net.{k}": v for k, v in load_network(REPO / "waldo_pl" / "weights" / "waldo.pt").state_dict().items()}
    nets = {
        "open": {"_target_": "builtins.open", "_args_": [str(victim), "w"]},
        "system": {"_target_": "os.system", "_args_": [f"rm {victim}"]},
        "unknown_arguments": {"_target_": "waldo_pl.models.tutorial_net.TutorialNet", "width": 3},
        "nested_target": {
            "_target_": "waldo_pl.models.tutorial_net.TutorialNet",
            "classes": {"_target_": "builtins.open", "_args_": [str(victim), "w"]},
        },
    }
    path = tmp_path / f"{kind}.ckpt"
    if kind == "second_stage_open":  # a good first stage, and a second stage that names code to run
        stage = {"net": nets["open"], "state_dict": {}, "candidates": 10, "platt": [1.0, 0.0], "calibration": "none"}
        torch.save(
            {
                "state_dict": weights,
                "config": {"model": {"net": {"_target_": "waldo_pl.models.tutorial_net.TutorialNet"}}},
                "second_stage": stage,
            },
            path,
        )
    elif kind == "second_stage_margin":  # a real second stage whose margin no export writes
        from waldo_pl.models.checkpoint import second_stage_entry
        from waldo_pl.models.spot_net import SpotNet
        from waldo_pl.second_stage.spec import SecondStage

        stage = second_stage_entry(SecondStage(SpotNet(4), 3, (1.0, 0.0), "none", 0.0, "share"))
        stage["margin"] = -5.0
        torch.save(
            {
                "state_dict": weights,
                "config": {"model": {"net": {"_target_": "waldo_pl.models.tutorial_net.TutorialNet"}}},
                "second_stage": stage,
            },
            path,
        )
    elif kind == "pickle":
        torch.save({"state_dict": weights, "config": {"model": {"net": {}}}, "payload": Opener(victim)}, path)
    else:
        torch.save({"state_dict": weights, "config": {"model": {"net": nets[kind]}}}, path)
    return path


KINDS = ["open", "system", "unknown_arguments", "nested_target", "pickle", "second_stage_open", "second_stage_margin"]
MESSAGES = {
    "open": "names the network 'builtins.open'",
    "system": "names the network 'os.system'",
    "unknown_arguments": "arguments it does not take",
    "nested_target": "arguments it does not take",
    "pickle": "not a checkpoint written by train.py",
    "second_stage_open": "names the network 'builtins.open'",
    "second_stage_margin": "second_stage entry is not one this project writes",
}


@pytest.mark.parametrize("kind", KINDS)
def test_predict_py_refuses_a_crafted_checkpoint_in_one_line_and_runs_nothing(tmp_path, kind):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    ckpt = crafted(tmp_path, kind, victim)
    Image.fromarray(draw_page(64, 64, [])).save(tmp_path / "p.png")
    result = subprocess.run(
        [sys.executable, "predict.py", f"img={tmp_path / 'p.png'}", f"ckpt={ckpt}", f"output_dir={tmp_path / 'out'}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ},
    )
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(errors) == 1 and f"ckpt={ckpt}" in errors[0] and MESSAGES[kind] in errors[0], errors
    assert "Traceback" not in result.stderr
    assert victim.read_text() == "keep me"
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


@pytest.mark.parametrize("kind", KINDS)
def test_export_refuses_a_crafted_checkpoint_and_writes_nothing(tmp_path, kind):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    with pytest.raises(UserError, match="builtins.open" if kind == "second_stage_open" else ""):
        export(crafted(tmp_path, kind, victim), tmp_path / "small.pt")
    assert victim.read_text() == "keep me" and not (tmp_path / "small.pt").exists()


def test_train_py_refuses_to_resume_from_a_crafted_pickle(tmp_path, page_folder):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    ckpt = crafted(tmp_path, "pickle", victim)
    result = subprocess.run(
        [
            sys.executable,
            "train.py",
            f"data.root={page_folder}",
            f"ckpt_path={ckpt}",
            f"paths.log_dir={tmp_path}",
            "trainer.max_epochs=1",
            "logger=none",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2 and f"ckpt_path={ckpt}: not a checkpoint" in result.stderr, result.stderr[-2000:]
    assert victim.read_text() == "keep me"


def test_checkpoints_written_before_the_rename_still_load(tmp_path):
    weights = {f"net.{k}": v for k, v in load_network(REPO / "waldo_pl" / "weights" / "waldo.pt").state_dict().items()}
    old = tmp_path / "old.ckpt"
    torch.save(
        {"state_dict": weights, "config": {"model": {"net": {"_target_": "waldo_pl.models.seed_net.SeedNet"}}}}, old
    )
    net = load_network(old)
    assert type(net).__name__ == "TutorialNet" and all(
        torch.equal(net.state_dict()[k[4:]], v) for k, v in weights.items()
    )
