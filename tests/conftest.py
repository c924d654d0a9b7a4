"""Small generated pages, so that most tests need neither the shared pages nor much time."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SHARED_PAGES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "waldo"


def draw_page(height: int, width: int, boxes, seed: int = 0) -> np.ndarray:
    """A noisy page with a red-and-white striped 'Waldo' filling each box."""
    rng = np.random.default_rng(seed)
    image = rng.integers(40, 200, size=(height, width, 3), dtype=np.uint8)
    image[..., 0] //= 2  # little red outside Waldo
    for x1, y1, x2, y2 in boxes:
        rows = np.arange(y1, y2)
        stripe = ((rows - y1) // 3) % 2 == 0
        image[y1:y2, x1:x2] = np.where(stripe[:, None, None], [220, 20, 30], [250, 250, 250]).astype(np.uint8)
    return image


def write_csv(path: Path, rows) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["filename", "width", "height", "class", "xmin", "ymin", "xmax", "ymax"])
        writer.writerows(rows)
    return path


def write_labelled_pages(folder: Path, specs: dict) -> Path:
    """{name: ((height, width), [boxes])} as generated pages in folder/images and folder/annotations.csv."""
    (folder / "images").mkdir(parents=True)
    rows = []
    for i, (name, ((h, w), boxes)) in enumerate(specs.items()):
        Image.fromarray(draw_page(h, w, boxes, seed=i)).save(folder / "images" / name, quality=95)
        rows += [(name, w, h, "waldo", *box) for box in boxes]
    write_csv(folder / "annotations.csv", rows)
    return folder


@pytest.fixture
def page_folder(tmp_path) -> Path:
    """Three pages (one smaller than a 64 panel) with four boxes, as annotations.csv + images/."""
    specs = {
        "a.png": ((120, 160), [(20, 30, 36, 50), (100, 70, 116, 90)]),
        "b.jpg": ((96, 128), [(60, 10, 76, 30)]),
        "c.png": ((48, 56), [(10, 10, 26, 30)]),
    }
    return write_labelled_pages(tmp_path, specs)


def shared_pages_or_skip() -> Path:
    if not (SHARED_PAGES / "annotations.csv").is_file():
        pytest.skip(f"{SHARED_PAGES} is absent")
    return SHARED_PAGES


@pytest.fixture(scope="session")
def trained_checkpoint(tmp_path_factory) -> Path:
    """A checkpoint written by a one-step training run on generated pages."""
    from hydra import compose, initialize_config_dir

    from waldo_pl import CONF_DIR
    from waldo_pl.training import train

    root = tmp_path_factory.mktemp("ckpt")
    (root / "images").mkdir()
    box = (30, 40, 46, 60)
    Image.fromarray(draw_page(128, 160, [box])).save(root / "images" / "p.png")
    write_csv(root / "annotations.csv", [("p.png", 160, 128, "waldo", *box)])
    overrides = [
        f"data.root={root}",
        "data.panel=64",
        "data.batch_size=2",
        "data.steps_per_epoch=1",
        "data.val_fraction=0",
        "trainer.max_epochs=1",
        "trainer.accelerator=cpu",
        "logger=none",
        f"paths.output_dir={root / 'run'}",
        "~second_stage",
    ]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        train(compose("train", overrides=overrides))
    return root / "run" / "checkpoints" / "last.ckpt"
