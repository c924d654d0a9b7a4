"""Both stages of a model as files that ONNX Runtime or OpenVINO run without this project (waldo-export --format).

    first_stage.onnx | first_stage.xml + .bin    pages (B, 3, H, W) float32 in [0, 1], H and W multiples of 16
                                                 -> Waldo's log-odds (B, H, W) float32 (the probability is its sigmoid)
    second_stage.onnx | second_stage.xml + .bin  windows (B, 3, 64, 64) float32 in [0, 1] -> log-odds (B,), where the
                                                 model has a second stage
    model.json                                   how to use them: the inputs, the second stage's settings, the record

The first stage is the network's cheaper exact graph (models/fast_graph.py): the same log-odds as the network to
float rounding. Finding the spots, cutting the windows and re-ranking are this project's own code (inference/);
model.json says what they do.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import torch

from waldo_pl.errors import UserError
from waldo_pl.files import write_text_atomically
from waldo_pl.inference.networks import window_of
from waldo_pl.models.checkpoint import network_from, read_checkpoint, second_stage_from
from waldo_pl.models.fast_graph import LogOddsGraph

FORMATS = ("onnx", "openvino")
SUFFIX = {"onnx": ".onnx", "openvino": ".xml"}


def _write_onnx(net: torch.nn.Module, example: torch.Tensor, path: Path, names: tuple[str, str], dynamic: dict) -> None:
    try:
        import onnx  # noqa: F401  (torch.onnx writes through it)
    except ImportError:
        raise UserError("--format onnx: the onnx package is not installed; pip install -e '.[onnx]'") from None
    with warnings.catch_warnings():  # tracing warns of the shape checks, which hold for every input the file takes
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net, (example,), path, input_names=[names[0]], output_names=[names[1]], dynamic_axes=dynamic, dynamo=False
        )


def _write_openvino(net: torch.nn.Module, example: torch.Tensor, path: Path, shape: list[int]) -> None:
    import openvino as ov

    ov.save_model(ov.convert_model(net, example_input=example, input=[shape]), path, compress_to_fp16=False)


def export_portable(ckpt: Path, out: Path, fmt: str) -> Path:
    """Write the checkpoint's stages into the folder `out` in `fmt` (FORMATS), whole or not at all; returns `out`."""
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt}: use pt, {' or '.join(FORMATS)}")
    if out.exists() and not (out / "model.json").is_file():
        raise UserError(f"{out}: exists and is not an export of this project; give a new folder")
    checkpoint = read_checkpoint(ckpt, setting=None)
    first = network_from(checkpoint, str(ckpt))
    stage = second_stage_from(checkpoint, str(ckpt))
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        graph = LogOddsGraph(first).eval().to(memory_format=torch.contiguous_format)
        page = torch.rand(1, 3, 64, 64)
        if fmt == "onnx":
            _write_onnx(
                graph,
                page,
                tmp / "first_stage.onnx",
                ("pages", "log_odds"),
                {"pages": {0: "batch", 2: "height", 3: "width"}, "log_odds": {0: "batch", 1: "height", 2: "width"}},
            )
        else:
            _write_openvino(graph, page, tmp / "first_stage.xml", [-1, 3, -1, -1])
        record = {
            "format": fmt,
            "first_stage": {
                "file": f"first_stage{SUFFIX[fmt]}",
                "input": "pages (B, 3, H, W) float32 in [0, 1], H and W multiples of 16",
                "output": "Waldo log-odds (B, H, W) float32",
            },
            "second_stage": None,
            "record": checkpoint.get("record", {"training": checkpoint.get("config")}),
        }
        if stage is not None:
            net = stage.net.eval()
            side = window_of(net)
            windows = torch.rand(1, 3, side, side)
            if fmt == "onnx":
                _write_onnx(
                    net,
                    windows,
                    tmp / "second_stage.onnx",
                    ("windows", "log_odds"),
                    {"windows": {0: "batch"}, "log_odds": {0: "batch"}},
                )
            else:
                _write_openvino(net, windows, tmp / "second_stage.xml", [-1, 3, side, side])
            record["second_stage"] = {
                "file": f"second_stage{SUFFIX[fmt]}",
                "input": f"windows (B, 3, {side}, {side}) float32 in [0, 1], each cut around one of the first "
                "stage's best spots (waldo_pl/data/spot_windows.py)",
                "output": "Waldo log-odds (B,) float32",
                **stage.settings(),
            }
        write_text_atomically(tmp / "model.json", json.dumps(record, indent=2) + "\n")
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
