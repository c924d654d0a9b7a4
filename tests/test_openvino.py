"""The OpenVINO backend: the same log-odds and answers as PyTorch, converted once per set of weights."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import draw_page
from PIL import Image

from waldo_pl.inference import openvino_backend
from waldo_pl.inference.networks import TorchPageNetwork
from waldo_pl.inference.predict import predict
from waldo_pl.models.checkpoint import load_network
from waldo_pl.weights import bundled_model

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    not openvino_backend.available(), reason="OpenVINO is not installed (pip install openvino)"
)


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("WALDO_PL_CACHE", str(tmp_path / "cache"))


@pytest.mark.parametrize("bf16, tolerance", [(False, 1e-4), (True, 2e-2)])
def test_the_compiled_network_gives_pytorchs_log_odds(bf16, tolerance):
    net = load_network(bundled_model())
    compiled = openvino_backend.compile_network(net, bf16)
    pages = np.random.default_rng(0).integers(0, 256, (2, 96, 160, 3), dtype=np.uint8)
    plain, fast = TorchPageNetwork(net)(pages), compiled(pages)
    scale = float(np.abs(plain).max())
    assert fast.shape == plain.shape == (2, 96, 160) and scale > 1
    assert float(np.abs(fast - plain).max()) < tolerance * scale
    other = compiled(pages[:1, :64, :80])  # another size is compiled for, and the first is kept
    assert other.shape == (1, 64, 80) and len(compiled.compiled) == 2


def test_predict_with_openvino_answers_as_with_pytorch(trained_checkpoint, tmp_path):
    for i, box in enumerate([(30, 40, 46, 60), (100, 20, 116, 40)]):
        Image.fromarray(draw_page(112, 144, [box], seed=20 + i)).save(tmp_path / f"v{i}.png")
    answers = {}
    for backend in ("torch", "openvino"):
        predict(
            img=str(tmp_path / "*.png"),
            ckpt=str(trained_checkpoint),
            output_dir=str(tmp_path / backend),
            precision="32",
            backend=backend,
        )
        answers[backend] = [json.loads((tmp_path / backend / f"v{i}.json").read_text()) for i in range(2)]
    assert [(a["x"], a["y"]) for a in answers["torch"]] == [(a["x"], a["y"]) for a in answers["openvino"]]
    assert all(abs(a["confidence"] - b["confidence"]) < 1e-3 for a, b in zip(answers["torch"], answers["openvino"]))


def noisy_copy(ckpt, out, seed: int):
    """The checkpoint with its network's weights nudged: another model in a file of the same kind."""
    checkpoint = torch.load(ckpt, weights_only=True)
    generator = torch.Generator().manual_seed(seed)
    checkpoint["state_dict"] = {
        k: v + 0.05 * torch.randn(v.shape, generator=generator) if v.is_floating_point() else v
        for k, v in checkpoint["state_dict"].items()
    }
    torch.save(checkpoint, out)
    return out


def test_a_checkpoint_is_converted_once_and_then_predicted_from_the_cache_without_pytorch(trained_checkpoint, tmp_path):
    page = tmp_path / "p.png"
    Image.fromarray(draw_page(112, 144, [(30, 40, 46, 60)], seed=3)).save(page)
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(trained_checkpoint.read_bytes())
    first = predict(img=str(page), ckpt=str(ckpt), output_dir=str(tmp_path / "a"), backend="openvino")[0]
    (entry,) = openvino_backend.cache_folder().glob("model-*")
    stamp = (entry / "model.json").stat().st_mtime_ns
    script = (
        f"import sys; from waldo_pl.inference.predict import predict; "
        f"predict(img={str(page)!r}, ckpt={str(ckpt)!r}, output_dir={str(tmp_path / 'b')!r}, accelerator='cpu'); "
        "print(sorted(m for m in ('torch', 'scipy', 'skimage', 'lightning') if m in sys.modules))"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().splitlines()[-1] == "[]"
    assert json.loads((tmp_path / "b" / "p.json").read_text())["x"] == first.spots[0].x
    assert [
        (e.name, (e / "model.json").stat().st_mtime_ns) for e in openvino_backend.cache_folder().glob("model-*")
    ] == [(entry.name, stamp)]


def test_a_checkpoint_overwritten_in_place_is_converted_again(trained_checkpoint, tmp_path):
    pages = tmp_path / "pages"
    pages.mkdir()
    for i in range(3):
        Image.fromarray(draw_page(112, 144, [(30 + 30 * i, 40, 46 + 30 * i, 60)], seed=30 + i)).save(
            pages / f"p{i}.png"
        )
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(trained_checkpoint.read_bytes())
    predict(img=str(pages), ckpt=str(ckpt), output_dir=str(tmp_path / "before"), backend="openvino", precision="32")
    noisy_copy(trained_checkpoint, ckpt, seed=1)
    now = predict(
        img=str(pages), ckpt=str(ckpt), output_dir=str(tmp_path / "after"), backend="openvino", precision="32"
    )
    reference = predict(
        img=str(pages), ckpt=str(ckpt), output_dir=str(tmp_path / "torch"), backend="torch", precision="32"
    )
    assert len(list(openvino_backend.cache_folder().glob("model-*"))) == 2
    assert [[(s.x, s.y) for s in a.spots] for a in now] == [[(s.x, s.y) for s in a.spots] for a in reference]


def test_the_cache_keeps_the_most_recently_used_conversions(trained_checkpoint, tmp_path):
    page = tmp_path / "p.png"
    Image.fromarray(draw_page(112, 144, [(30, 40, 46, 60)], seed=3)).save(page)
    old = []
    for i in range(openvino_backend.KEPT_MODELS + 1):  # earlier conversions, the first the longest unused
        entry = openvino_backend.cache_folder() / f"model-old{i}"
        entry.mkdir(parents=True)
        (entry / "model.json").write_text("{}")
        os.utime(entry, (1000 + i, 1000 + i))
        old.append(entry)
    predict(img=str(page), ckpt=str(trained_checkpoint), output_dir=str(tmp_path / "a"), backend="openvino")
    entries = set(openvino_backend.cache_folder().glob("model-*"))
    (new,) = entries - set(old)
    assert (
        len(entries) == openvino_backend.KEPT_MODELS and not old[0].exists() and not old[1].exists() and old[2].exists()
    )
    os.utime(new, (500, 500))
    predict(img=str(page), ckpt=str(trained_checkpoint), output_dir=str(tmp_path / "b"), backend="openvino")
    assert new.stat().st_mtime > 1000 + len(old)  # loading it from the cache counts as a use


def test_an_unwritable_cache_is_one_line_naming_the_setting(trained_checkpoint, tmp_path, monkeypatch):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("WALDO_PL_CACHE", str(blocker))
    page = tmp_path / "p.png"
    Image.fromarray(draw_page(64, 64, [(10, 10, 26, 30)])).save(page)
    run = subprocess.run(
        [
            sys.executable,
            "predict.py",
            f"img={page}",
            f"ckpt={trained_checkpoint}",
            f"output_dir={tmp_path / 'out'}",
            "backend=openvino",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 2 and "WALDO_PL_CACHE" in run.stderr and "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and not (tmp_path / "out" / "p.json").exists()
