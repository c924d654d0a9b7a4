"""The OpenVINO backend: the same log-odds and answers as PyTorch, converted once per set of weights."""

import json

import pytest
import torch
from PIL import Image

from conftest import draw_page
from waldo_pl.export import bundled_model
from waldo_pl.inference import openvino_backend
from waldo_pl.inference.predict import predict
from waldo_pl.models.checkpoint import load_network
from waldo_pl.models.outputs import waldo_log_odds

pytestmark = pytest.mark.skipif(not openvino_backend.available(), reason="OpenVINO is not installed (pip install -e '.[openvino]')")


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("WALDO_PL_CACHE", str(tmp_path / "cache"))


@pytest.mark.parametrize("bf16, tolerance", [(False, 1e-4), (True, 2e-2)])
def test_the_compiled_network_gives_pytorchs_log_odds(bf16, tolerance):
    net = load_network(bundled_model())
    compiled = openvino_backend.compile_network(net, bf16)
    x = torch.rand(2, 3, 96, 160, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        plain, fast = waldo_log_odds(net(x)), waldo_log_odds(compiled(x))
    scale = float(plain.abs().max())
    assert fast.shape == plain.shape and scale > 1
    assert float((fast - plain).abs().max()) < tolerance * scale


def test_the_network_is_converted_once_and_then_loaded_from_the_cache():
    net = load_network(bundled_model())
    openvino_backend.compile_network(net, bf16=False)
    (saved,) = openvino_backend.cache_folder().glob("*.xml")
    stamp = saved.stat().st_mtime_ns
    openvino_backend.compile_network(net, bf16=True)
    assert [p.stat().st_mtime_ns for p in openvino_backend.cache_folder().glob("*.xml")] == [stamp]


def test_predict_with_openvino_answers_as_with_pytorch(trained_checkpoint, tmp_path):
    for i, box in enumerate([(30, 40, 46, 60), (100, 20, 116, 40)]):
        Image.fromarray(draw_page(112, 144, [box], seed=20 + i)).save(tmp_path / f"v{i}.png")
    answers = {}
    for backend in ("torch", "openvino"):
        predict(img=str(tmp_path / "*.png"), ckpt=str(trained_checkpoint), output_dir=str(tmp_path / backend), precision="32", backend=backend)
        answers[backend] = [json.loads((tmp_path / backend / f"v{i}.json").read_text()) for i in range(2)]
    assert [(a["x"], a["y"]) for a in answers["torch"]] == [(a["x"], a["y"]) for a in answers["openvino"]]
    assert all(abs(a["confidence"] - b["confidence"]) < 1e-3 for a, b in zip(answers["torch"], answers["openvino"]))
