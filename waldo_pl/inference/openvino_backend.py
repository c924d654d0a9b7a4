"""The search's networks compiled by OpenVINO for the CPU (a dependency of the project): the same log-odds as
PyTorch within bf16 rounding, faster there (bench/predict_speed.py measures by how much).

A checkpoint is converted once, both stages, into a cache folder ($WALDO_PL_CACHE, else ~/.cache/waldo_pl)
under the hash of the file's bytes; later runs load that and never import PyTorch. The cache keeps the
KEPT_MODELS most recently used conversions. The first stage takes the page as it is read (uint8, height x
width x 3) and is compiled for each page size it meets, which runs faster than one compiled for any size.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np

from waldo_pl.errors import UserError
from waldo_pl.inference.networks import PageNetwork, SpotNetwork
from waldo_pl.second_stage.spec import SecondStage

FORMAT = 2  # what a cache entry holds (the graph, its input, the second stage's settings, every one named since 2):
# bump it when they change, so files are converted again
COMPILED_SIZES = 4  # page sizes kept compiled at once (a folder of pages of many sizes)
KEPT_MODELS = 8  # converted checkpoints the cache keeps, the most recently used


def available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def cache_folder() -> Path:
    return Path(os.environ.get("WALDO_PL_CACHE", Path.home() / ".cache" / "waldo_pl")).expanduser() / "openvino"


@functools.cache
def _core():
    import openvino as ov

    return ov.Core()


def native_bf16() -> bool:
    """Whether this CPU computes in bf16 natively (AVX512-BF16, AMX), where OpenVINO's bf16 is about twice as fast."""
    return "BF16" in _core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def _config(bf16: bool) -> dict:
    return {"INFERENCE_PRECISION_HINT": "bf16" if bf16 else "f32"}


class OpenVINONetwork(PageNetwork):
    """The first stage: (B, H, W, 3) uint8 pages -> (B, H, W) float32 log-odds, compiled for each size it meets."""

    def __init__(self, model, bf16: bool):
        self.model, self.bf16 = model, bf16
        self.compiled: dict[tuple[int, ...], object] = {}

    def __call__(self, pages: np.ndarray) -> np.ndarray:
        compiled = self.compiled.pop(pages.shape, None)
        if compiled is None:
            model = self.model.clone()
            model.reshape(list(pages.shape))
            compiled = _core().compile_model(model, "CPU", _config(self.bf16))
        self.compiled[pages.shape] = compiled  # the latest last
        while len(self.compiled) > COMPILED_SIZES:
            del self.compiled[next(iter(self.compiled))]
        return np.asarray(compiled(np.ascontiguousarray(pages))[0], dtype=np.float32)


class OpenVINOSpotNetwork(SpotNetwork):
    """The second stage: (B, 3, S, S) float32 windows -> (B,) float32 log-odds, S the window its model was
    converted for."""

    def __init__(self, model, bf16: bool):
        self.window = int(model.input(0).get_partial_shape()[-1].get_length())
        self.compiled = _core().compile_model(model, "CPU", _config(bf16))

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        return np.asarray(self.compiled(np.ascontiguousarray(windows, dtype=np.float32))[0], dtype=np.float32).reshape(
            -1
        )


def _page_model(net):
    """A PyTorch first stage as an OpenVINO model of uint8 pages: its cheaper exact graph (models/fast_graph.py),
    the log-odds alone, and the page's conversion to float in [0, 1], channels first, inside the model."""
    import openvino as ov
    import torch
    from openvino.preprocess import PrePostProcessor

    from waldo_pl.models.fast_graph import LogOddsGraph

    graph = LogOddsGraph(net.cpu().float().eval()).eval().to(memory_format=torch.contiguous_format)
    model = ov.convert_model(graph, example_input=torch.rand(1, 3, 64, 64), input=[-1, 3, -1, -1])
    steps = PrePostProcessor(model)
    steps.input().tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC"))
    steps.input().model().set_layout(ov.Layout("NCHW"))
    steps.input().preprocess().convert_element_type(ov.Type.f32).scale(255.0)
    return steps.build()


def _spot_model(net):
    import openvino as ov
    import torch

    from waldo_pl.inference.networks import window_of

    side = window_of(net)
    return ov.convert_model(
        net.cpu().float().eval(), example_input=torch.rand(1, 3, side, side), input=[-1, 3, side, side]
    )


def _save(model, path: Path) -> None:
    import openvino as ov

    ov.save_model(model, path, compress_to_fp16=False)


def compile_network(net, bf16: bool) -> OpenVINONetwork:
    """A PyTorch first stage in memory (a training run's, for mining), converted here; a run's weights are
    searched with once, so they are not cached."""
    return OpenVINONetwork(_page_model(net), bf16)


def load_checkpoint(
    path, bf16: bool, second_stage: bool = True, setting: str | None = "ckpt"
) -> tuple[OpenVINONetwork, SecondStage | None]:
    """Both stages of a checkpoint file (a train.py .ckpt or a waldo-export file), from the cache when it holds
    them; otherwise read as data (models/checkpoint.py), converted and cached first."""
    digest = hashlib.sha256(f"{FORMAT}:".encode())
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        key = digest.hexdigest()[:24]
    except OSError:
        key = None  # read_checkpoint says what is wrong with it
    folder = cache_folder() / f"model-{key}"
    if key is None or not (folder / "model.json").is_file():
        _convert_checkpoint(path, setting, folder)
        _prune(keep=folder)
    else:
        try:
            os.utime(folder)  # used now: the last to be pruned
        except OSError:
            pass
    saved = json.loads((folder / "model.json").read_text())
    net = OpenVINONetwork(_core().read_model(folder / "first.xml"), bf16)
    stage = saved["second_stage"]
    if not second_stage or stage is None:
        return net, None
    scorer = OpenVINOSpotNetwork(_core().read_model(folder / "second.xml"), bf16)
    return net, SecondStage.from_settings(scorer, stage, str(folder / "model.json"))


def _prune(keep: Path) -> None:
    """Remove all but the KEPT_MODELS most recently used conversions, `keep` among them."""

    def used(entry: Path) -> float:
        try:
            return entry.stat().st_mtime
        except OSError:  # removed meanwhile by another process
            return 0.0

    others = sorted((e for e in cache_folder().glob("model-*") if e != keep), key=used, reverse=True)
    for entry in others[KEPT_MODELS - 1 :]:
        shutil.rmtree(entry, ignore_errors=True)


def _convert_checkpoint(path, setting: str | None, folder: Path) -> None:
    """Write `folder` whole: first.xml, second.xml where there is a second stage, and model.json."""
    from waldo_pl.models.checkpoint import network_from, read_checkpoint, second_stage_from

    checkpoint = read_checkpoint(path, setting)
    where = f"{setting}={path}" if setting else str(path)
    net, stage = network_from(checkpoint, where), second_stage_from(checkpoint, where)
    tmp = folder.with_name(f".{folder.name}.{os.getpid()}")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    except OSError as err:
        raise UserError(
            f"cannot write the OpenVINO cache {folder.parent} ({err.strerror}); set WALDO_PL_CACHE to a "
            "writable folder, or use backend=torch"
        ) from None
    _save(_page_model(net), tmp / "first.xml")
    saved = {"format": FORMAT, "source": str(path), "second_stage": None}
    if stage is not None:
        _save(_spot_model(stage.net), tmp / "second.xml")
        saved["second_stage"] = stage.settings()
    (tmp / "model.json").write_text(json.dumps(saved, indent=1))
    try:
        os.replace(tmp, folder)
    except OSError:  # another process cached it first
        shutil.rmtree(tmp, ignore_errors=True)
