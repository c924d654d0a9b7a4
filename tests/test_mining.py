import itertools

import numpy as np
import pytest

from waldo_pl.callbacks.mining import window_peaks
from waldo_pl.data.crops import CropStream
from waldo_pl.data.datamodule import WaldoDataModule
from waldo_pl.data.page import Page

PANEL = 64
LOOK_ALIKE = (180, 180, 200, 200)  # x1, y1, x2, y2


def where_crops_land(stream, n=300):
    """Top-left corners of the crops: the page's red channel is x and its green channel y."""
    corners = []
    for crop, _ in itertools.islice(iter(stream), n):
        pixels = (crop * 255).round()
        corners.append((int(pixels[1].min()), int(pixels[0].min())))
    return np.array(corners)


def showing_look_alike(corners):
    """Share of crops with some of the look-alike in them."""
    x1, y1, x2, y2 = LOOK_ALIKE
    ys, xs = corners[:, 0], corners[:, 1]
    return float(((ys < y2) & (ys + PANEL > y1) & (xs < x2) & (xs + PANEL > x1)).mean())


@pytest.fixture
def coordinate_page():
    y, x = np.mgrid[0:256, 0:256]
    image = np.stack([x, y, np.zeros_like(x)], axis=-1).astype(np.uint8)
    return Page("p", image, [(10, 10, 30, 30)])


def test_hardness_draws_waldo_free_crops_where_the_network_is_wrong(coordinate_page):
    stream = CropStream([coordinate_page], panel=PANEL, prop=0.0, seed=0)
    uniform = showing_look_alike(where_crops_land(stream))
    heat = np.full((256, 256), -8.0, np.float32)  # log-odds: sure there is no Waldo
    x1, y1, x2, y2 = LOOK_ALIKE
    heat[y1:y2, x1:x2] = 2.2  # a look-alike the network falls for (probability 0.9)
    stream.set_hardness({w: [window_peaks(heat, w)] for w in stream.free_windows}, boost=100.0)
    mined = where_crops_land(stream)
    assert showing_look_alike(mined) > max(0.8, 3 * uniform)
    # still never on Waldo
    assert not any((ys < 30 and ys + PANEL > 10) and (xs < 30 and xs + PANEL > 10) for ys, xs in mined)


def test_mined_weights_travel_in_the_datamodule_state(page_folder):
    def fresh():
        dm = WaldoDataModule(root=str(page_folder), panel=64, batch_size=2, steps_per_epoch=1, val_fraction=0)
        dm.setup("fit")
        return dm

    dm = fresh()
    stream = dm.crop_stream
    grids = {
        w: [
            np.random.default_rng(i)
            .random(window_peaks(np.zeros((p.height, p.width), np.float32), w).shape)
            .astype(np.float16)
            for i, p in enumerate(stream.pages)
        ]
        for w in stream.free_windows
    }
    stream.set_hardness(grids, boost=5.0)
    state = dm.state_dict()
    restored = fresh()
    restored.load_state_dict(state)
    for w in stream.free_windows:
        assert all(np.array_equal(a, b) for a, b in zip(stream.corner_cdfs[w], restored.crop_stream.corner_cdfs[w]))


def test_mining_runs_inside_training_and_logs_the_look_alike_peak(page_folder, tmp_path):
    from hydra import compose, initialize_config_dir

    from waldo_pl import CONF_DIR
    from waldo_pl.training import train

    overrides = [
        f"data.root={page_folder}",
        "data.panel=64",
        "data.batch_size=2",
        "data.steps_per_epoch=1",
        "data.val_pages=[b.jpg]",
        "trainer.max_epochs=2",
        "trainer.accelerator=cpu",
        "logger=none",
        "callbacks=mining",
        "callbacks.hard_negative_mining.every_n_epochs=1",
        f"paths.output_dir={tmp_path}",
        "~second_stage",
    ]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        metrics = train(compose("train", overrides=overrides))
    assert 0.0 <= metrics["train/look_alike_peak"] <= 1.0
    import torch

    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert "hardness" in state["WaldoDataModule"]  # a resumed run keeps drawing the mined negatives
