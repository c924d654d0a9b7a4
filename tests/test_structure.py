"""The shape of the package: training code never imports prediction code, and every caller shares one search."""

import ast
import dataclasses
import json
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from conftest import draw_page, write_csv, write_labelled_pages
from PIL import Image
from torch.utils.data import DataLoader

from waldo_pl.callbacks import PageValidation, page_validation
from waldo_pl.crossval.rescore import Rescoring, rescored_pages
from waldo_pl.data.datamodule import collate_pages
from waldo_pl.data.formats import load_pages
from waldo_pl.inference.device import use_bf16
from waldo_pl.inference.networks import SpotNetwork
from waldo_pl.inference.predict import predict
from waldo_pl.inference.rerank import confidence_of
from waldo_pl.models.checkpoint import load_network
from waldo_pl.models.module import WaldoSegmenter
from waldo_pl.second_stage.spec import SecondStage

PACKAGE = Path(__file__).resolve().parents[1] / "waldo_pl"


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_one_way(path):
    imports = imported_modules(path)
    assert not {"train", "predict"} & imports, "the package never imports an entry script"
    if path.parent.name == "models":
        assert not [
            m for m in imports if m.startswith(("waldo_pl.inference", "waldo_pl.callbacks", "waldo_pl.training"))
        ]
    if path.parent.name == "inference":
        assert not [
            m
            for m in imports
            if m.startswith(("lightning", "waldo_pl.callbacks", "waldo_pl.training", "waldo_pl.models.module"))
        ]
    if path.parent.name == "data":  # pages and crops come first: they know nothing of the networks or the search
        assert not [
            m
            for m in imports
            if m.startswith("waldo_pl.") and not m.startswith(("waldo_pl.data", "waldo_pl.errors", "waldo_pl.files"))
        ]


def package_imports() -> dict[str, set[str]]:
    """Each module of the package and the package's modules it imports (at the top or inside a function)."""
    files = {
        ".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__"): p
        for p in PACKAGE.rglob("*.py")
    }
    return {name: (imported_modules(path) & set(files)) - {name} for name, path in files.items()}


def test_no_modules_import_each_other_even_through_others():
    graph = package_imports()
    for start in graph:
        reached, todo = set(), list(graph[start])
        while todo:
            module = todo.pop()
            if module not in reached:
                reached.add(module)
                todo += graph[module]
        assert start not in reached, f"{start} imports itself through {sorted(m for m in reached if start in graph[m])}"


def test_predict_validation_and_crossval_give_the_same_answer(trained_checkpoint, tmp_path):
    """The three search each page through the same network (OpenVINO on a CPU where installed): in bf16, PyTorch and
    OpenVINO round differently, and on a CPU with native bf16 a near tie went one way in one and the other in the
    other."""
    (tmp_path / "images").mkdir()
    rows = []
    for i, box in enumerate([(30, 40, 46, 60), (90, 20, 106, 40)]):
        Image.fromarray(draw_page(112, 144, [box], seed=10 + i)).save(tmp_path / "images" / f"q{i}.png")
        rows.append((f"q{i}.png", 144, 112, "waldo", *box))
    write_csv(tmp_path / "annotations.csv", rows)
    pages = load_pages(tmp_path)

    predicted = predict(
        img=str(tmp_path / "images"),
        ckpt=str(trained_checkpoint),
        output_dir=str(tmp_path / "out"),
        scales=[1.0],
        flip=False,
    )
    by_predict = {a.image.name: (a.spots[0].x, a.spots[0].y) for a in predicted}

    validation = PageValidation(pictures=False)
    module = WaldoSegmenter(load_network(trained_checkpoint), optimizer=torch.optim.Adam, class_weights=[1, 3])
    bf16 = use_bf16("auto", torch.device("cpu"))
    L.Trainer(
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        callbacks=[validation],
        precision="bf16-mixed" if bf16 else 32,
    ).validate(module, DataLoader(pages, batch_size=1, collate_fn=collate_pages), verbose=False)
    by_validation = {r["page"]: (r["x"], r["y"]) for r in validation.page_results}

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(trained_checkpoint.read_bytes())
    record = {"pages": [{"page": p.name} for p in pages]}
    rescored = rescored_pages(run, record, None, Rescoring.searching([1.0]), tmp_path)
    by_crossval = {r["page"]: (r["x"], r["y"]) for r in rescored}

    assert by_predict == by_validation == by_crossval and len(by_predict) == 2


def test_importing_predict_loads_neither_lightning_nor_pytorch_nor_scipy():
    """They are loaded where used: PyTorch only where the search runs a PyTorch network (tests/test_openvino.py
    predicts a page with none of them)."""
    import subprocess
    import sys

    heavy = "{'lightning', 'torchvision', 'torch', 'scipy', 'skimage'}"
    script = f"import sys, waldo_pl.inference.predict; print(sorted({heavy} & set(sys.modules)))"
    loaded = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    assert loaded.strip() == "[]"


def test_the_python_api_and_predict_py_search_alike_when_given_no_settings(trained_checkpoint, tmp_path):
    """One home for the search's defaults (SearchSettings): `predict()` from Python and `python predict.py` search the
    same scales, mirrored alike, and give the same answer, candidates and all."""
    import subprocess
    import sys

    from waldo_pl.inference.predict import PredictConfig
    from waldo_pl.inference.search import PREDICT

    page = tmp_path / "page.png"
    Image.fromarray(draw_page(176, 208, [(120, 60, 136, 80)], seed=5)).save(page)
    predict(img=str(page), ckpt=str(trained_checkpoint), output_dir=str(tmp_path / "api"))
    result = subprocess.run(
        [sys.executable, "predict.py", f"img={page}", f"ckpt={trained_checkpoint}", f"output_dir={tmp_path / 'cli'}"],
        cwd=PACKAGE.parent,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    api, cli = (json.loads((tmp_path / side / "page.json").read_text()) for side in ("api", "cli"))
    assert api == cli and len(api["candidates"]) == PREDICT.candidates
    # predict.py's typed config repeats every setting of the search but the precision, at the search's defaults
    config, settings = PredictConfig(), dataclasses.asdict(PREDICT)
    del settings["bf16"]
    assert {name: getattr(config, name) for name in settings} == {**settings, "scales": list(PREDICT.scales)}


class LastFirst(SpotNetwork):
    """A stand-in second stage that prefers the first stage's lowest-ranked spot."""

    def __call__(self, windows):
        return np.arange(len(windows), dtype=np.float32)


def test_a_validation_with_the_same_weights_re_ranks_the_pages_first_search_without_searching_again(
    trained_checkpoint, tmp_path, monkeypatch
):
    """The run's final validation re-ranks with the second stage the pages the first stage's last validation searched:
    the same answers as searching them anew, each page searched once while the weights stay, again once they change."""
    pages = load_pages(
        write_labelled_pages(
            tmp_path, {"r0.png": ((112, 144), [(30, 40, 46, 60)]), "r1.png": ((112, 144), [(90, 20, 106, 40)])}
        )
    )
    loader = DataLoader(pages, batch_size=1, collate_fn=collate_pages)
    searched = []
    real = page_validation.first_stage_search
    monkeypatch.setattr(page_validation, "first_stage_search", lambda *a: searched.append(a[3]) or real(*a))
    module = WaldoSegmenter(load_network(trained_checkpoint), optimizer=torch.optim.Adam, class_weights=[1, 3])
    stage = SecondStage(LastFirst(), candidates=3, calibration="test")

    def validate(validation, second_stage=None):
        trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, callbacks=[validation])
        with validation.reranking_with(second_stage):
            trainer.validate(module, loader, verbose=False)
        return [dict(r) for r in validation.page_results]

    validation = PageValidation(pictures=False)
    first_stage_alone = validate(validation)
    assert len(searched) == 2
    both_stages = validate(validation, stage)
    assert len(searched) == 2  # not searched again
    assert (
        [r["confidence_of"] for r in both_stages]
        == [confidence_of(stage)] * 2
        != [r["confidence_of"] for r in first_stage_alone]
    )
    assert both_stages == validate(PageValidation(pictures=False), stage)  # as a search anew answers
    assert len(searched) == 4
    with torch.no_grad():
        next(module.net.parameters()).add_(0.01)
    validate(validation, stage)
    assert len(searched) == 6  # new weights: searched again
