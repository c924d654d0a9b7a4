"""waldo-export --format onnx|openvino: both stages as files that ONNX Runtime and OpenVINO run without this project."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from waldo_pl.errors import UserError
from waldo_pl.models.checkpoint import second_stage_entry
from waldo_pl.models.outputs import waldo_log_odds
from waldo_pl.models.spot_net import SpotNet
from waldo_pl.models.tutorial_net import TutorialNet
from waldo_pl.portable import export_portable
from waldo_pl.second_stage.spec import SecondStage

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def two_stages(tmp_path_factory):
    """A checkpoint of both stages with random weights, and the networks themselves."""
    torch.manual_seed(0)
    first, second = TutorialNet().eval(), SpotNet(4).eval()
    stage = SecondStage(second, 3, (0.5, -1.0), "test", 2.0, "share")
    path = tmp_path_factory.mktemp("portable") / "two.ckpt"
    torch.save(
        {
            "state_dict": {f"net.{k}": v for k, v in first.state_dict().items()},
            "second_stage": second_stage_entry(stage),
            "config": {"model": {"net": {"_target_": "waldo_pl.models.tutorial_net.TutorialNet"}}},
        },
        path,
    )
    return path, first, second


def expected(first, second, pages, windows):
    with torch.no_grad():
        return waldo_log_odds(first.layer_by_layer(torch.from_numpy(pages))).numpy(), second(
            torch.from_numpy(windows)
        ).numpy()


def run_onnx(folder: Path, pages, windows):
    ort = pytest.importorskip("onnxruntime")
    first = ort.InferenceSession(str(folder / "first_stage.onnx")).run(None, {"pages": pages})[0]
    return first, ort.InferenceSession(str(folder / "second_stage.onnx")).run(None, {"windows": windows})[0]


def run_openvino(folder: Path, pages, windows):
    ov = pytest.importorskip("openvino")
    core, f32 = ov.Core(), {"INFERENCE_PRECISION_HINT": "f32"}
    first = core.compile_model(str(folder / "first_stage.xml"), "CPU", f32)(pages)[0]
    return first, core.compile_model(str(folder / "second_stage.xml"), "CPU", f32)(windows)[0]


@pytest.mark.parametrize("fmt, run", [("onnx", run_onnx), ("openvino", run_openvino)])
def test_exported_stages_give_pytorchs_log_odds_at_any_page_size(two_stages, tmp_path, fmt, run):
    if fmt == "onnx":
        pytest.importorskip("onnx")
    path, first, second = two_stages
    folder = export_portable(path, tmp_path / fmt, fmt)
    rng = np.random.default_rng(0)
    for h, w in ((64, 96), (112, 80)):  # one file, several page sizes
        pages, windows = rng.random((2, 3, h, w), np.float32), rng.random((5, 3, 64, 64), np.float32)
        got, want = run(folder, pages, windows), expected(first, second, pages, windows)
        assert got[0].shape == (2, h, w) and got[1].shape == (5,)
        assert np.abs(got[0] - want[0]).max() < 1e-4 and np.abs(got[1] - want[1]).max() < 1e-4
    described = json.loads((folder / "model.json").read_text())
    assert described["format"] == fmt and described["second_stage"]["candidates"] == 3
    assert described["second_stage"]["margin"] == 2.0 and described["second_stage"]["platt"] == [0.5, -1.0]
    export_portable(path, folder, fmt)  # an export of its own is replaced
    assert (folder / "model.json").is_file() and not list(tmp_path.glob(".*tmp"))


def test_export_to_another_format_refuses_a_folder_it_did_not_write_and_options_of_the_pt_file(two_stages, tmp_path):
    path = two_stages[0]
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match="exists and is not an export of this project"):
        export_portable(path, tmp_path / "mine", "openvino")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "waldo_pl.export",
            str(path),
            str(tmp_path / "out"),
            "--format",
            "openvino",
            "--margin",
            "0",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2 and bad.stderr.startswith("error: --margin with --format openvino"), bad.stderr
    assert not (tmp_path / "out").exists()
