"""Inference: heatmaps, the answer, pictures, scoring, and predict.py on good and bad input."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import draw_page, write_csv
from PIL import Image
from scipy.special import logit
from torch import nn

from waldo_pl.data.formats import read_labels
from waldo_pl.errors import UserError
from waldo_pl.inference.answer import find_spots
from waldo_pl.inference.heatmap import log_odds_at_scales, merge_maps, page_log_odds
from waldo_pl.inference.networks import PageNetwork, TorchPageNetwork
from waldo_pl.inference.predict import answer_page
from waldo_pl.inference.report import score
from waldo_pl.inference.search import PREDICT, SearchSettings
from waldo_pl.models.tutorial_net import TutorialNet

REPO = Path(__file__).resolve().parents[1]


def heatmap(net, page, scales, flip=False, merge="mean"):
    """The log-odds map at `scales`, tiled as predict.py tiles."""
    return log_odds_at_scales(net, page, scales, flip, merge, False, **PREDICT.tiling)


class RedFinder(nn.Module):
    """A stand-in network whose Waldo logit is how much redder than the rest a pixel is."""

    def __init__(self):
        super().__init__()
        self.gain = nn.Parameter(torch.tensor(20.0))

    def forward(self, x):
        redness = x[:, :1] - x[:, 1:].mean(1, keepdim=True)
        return torch.cat([torch.zeros_like(redness), self.gain * (redness - 0.5)], dim=1)


def test_whole_page_and_tiles_agree():
    torch.manual_seed(0)
    net = TutorialNet().eval()
    page = np.random.default_rng(1).integers(0, 256, (333, 517, 3), dtype=np.uint8)
    whole = page_log_odds(net, page, **PREDICT.tiling)
    tiled = page_log_odds(net, page, tile=256, batch_size=3, max_whole_pixels=0)
    assert whole.shape == tiled.shape == (333, 517)
    assert np.abs(whole - tiled).max() < 1e-5
    # the same peak (the last 2x upsampling makes 2x2 plateaus, so compare values, and places to a pixel)
    yw, xw = np.unravel_index(whole.argmax(), whole.shape)
    yt, xt = np.unravel_index(tiled.argmax(), tiled.shape)
    assert abs(whole.max() - tiled.max()) < 1e-5 and abs(int(yw) - int(yt)) <= 1 and abs(int(xw) - int(xt)) <= 1


@pytest.mark.parametrize("scales", [(1.0,), (0.75, 1.0)])
def test_flip_makes_the_answer_the_same_for_a_mirrored_page(scales):
    torch.manual_seed(0)
    net = TutorialNet().eval()
    page = np.random.default_rng(2).integers(0, 256, (96, 160, 3), dtype=np.uint8)
    mirror = np.ascontiguousarray(page[:, ::-1])
    plain, plain_of_mirror = (heatmap(net, p, scales) for p in (page, mirror))
    assert np.abs(plain_of_mirror[:, ::-1] - plain).max() > 1e-3  # an untrained network sees the two differently
    flipped, flipped_of_mirror = (heatmap(net, p, scales, flip=True) for p in (page, mirror))
    assert np.abs(flipped_of_mirror[:, ::-1] - flipped).max() < 1e-5
    if scales == (1.0,):
        assert np.allclose(flipped, (plain + plain_of_mirror[:, ::-1]) / 2, atol=1e-6)


def test_the_scales_maps_merge_by_their_mean_so_a_spot_seen_at_one_scale_counts_less():
    """A network that sees Waldo only at one scale of two: by the mean his log-odds are the mean of the two maps', by
    max the better one's; a single scale is itself either way."""
    torch.manual_seed(0)
    net = TutorialNet().eval()
    page = np.random.default_rng(3).integers(0, 256, (96, 160, 3), dtype=np.uint8)
    at = {s: heatmap(net, page, (s,)) for s in (1.0, 2.0)}
    assert np.abs(at[1.0] - at[2.0]).max() > 1e-2  # an untrained network sees the two sizes differently
    assert np.allclose(heatmap(net, page, (1.0, 2.0)), (at[1.0] + at[2.0]) / 2, atol=1e-5)
    assert np.allclose(heatmap(net, page, (1.0, 2.0), merge="max"), np.maximum(at[1.0], at[2.0]), atol=1e-5)
    assert np.array_equal(heatmap(net, page, (1.0,), merge="max"), at[1.0])
    # the same merge over maps already made (the benches' way of trying sets of scales without searching again)
    assert np.array_equal(merge_maps(iter([at[1.0], at[2.0]]), "mean"), (at[1.0] + at[2.0]) / 2)
    assert np.array_equal(merge_maps([at[1.0], at[2.0]], "max"), np.maximum(at[1.0], at[2.0]))
    assert SearchSettings().merge == "mean"


@pytest.mark.parametrize("scales", [(1.0,), (0.5,), (1.5,), (0.5, 1.0, 2.0)])
def test_coordinates_are_in_the_pages_own_pixels(scales):
    page = np.full((101, 203, 3), 128, np.uint8)
    page[60:80, 150:170] = [255, 0, 0]  # the only red: Waldo stands at x 150-169, y 60-79
    heat = log_odds_at_scales(
        RedFinder(), page, scales, False, "mean", False, tile=256, batch_size=4, max_whole_pixels=1 << 30
    )
    assert heat.shape == (101, 203)
    (spot,) = find_spots(heat, 0.8, count=1)
    assert 149 <= spot.x <= 170 and 59 <= spot.y <= 80
    x1, y1, x2, y2 = spot.box
    assert abs(x1 - 150) <= 2 and abs(y1 - 60) <= 2 and abs(x2 - 170) <= 2 and abs(y2 - 80) <= 2


def test_the_box_is_the_peaks_own_region_not_every_pixel_above_the_threshold():
    heat = np.full((200, 300), 0.01, np.float32)
    heat[20:40, 30:50] = 0.9
    heat[30, 40] = 0.97  # the answer's blob
    heat[150:190, 200:290] = 0.85  # a look-alike elsewhere
    best, second, *_ = find_spots(logit(heat), threshold=0.8, count=5)
    assert (best.x, best.y, best.box) == (40, 30, (30, 20, 50, 40))
    assert best.confidence == pytest.approx(0.97)
    assert second.box == (200, 150, 290, 190) and second.confidence == pytest.approx(0.85)
    # below the threshold there is a peak but no box
    (low,) = find_spots(logit(heat * 0.5), threshold=0.8, count=1)
    assert (low.x, low.y, low.box) == (40, 30, None)


@pytest.mark.parametrize("density", [0.3, 0.55, 0.7, 0.95])
def test_the_region_box_is_that_of_the_connected_region_joined_at_edges_and_corners(density):
    from skimage.segmentation import flood

    from waldo_pl.inference.answer import region_box

    rng = np.random.default_rng(int(density * 100))
    for size in [(1, 1), (1, 9), (7, 1), (12, 17), (40, 33)] * 20 + [(300, 400)]:  # the last has thousands of runs
        heat = rng.random(size).astype(np.float32)
        y, x = (int(rng.integers(n)) for n in size)
        level = 1 - density
        box = region_box(heat, y, x, level)
        if heat[y, x] < level:
            assert box is None
            continue
        region = flood((heat >= level).view(np.uint8), (y, x), connectivity=2)
        rows, cols = np.flatnonzero(region.any(axis=1)), np.flatnonzero(region.any(axis=0))
        assert box == (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)


def test_numpy_resizing_and_pooling_match_pytorchs():
    import torch.nn.functional as F

    from waldo_pl.inference.heatmap import resize_bilinear
    from waldo_pl.inference.pictures import max_pooled

    rng = np.random.default_rng(0)
    for _ in range(40):
        h, w = (int(n) for n in rng.integers(2, 50, 2))
        image = rng.normal(size=(h, w)).astype(np.float32)
        for out in [(int(rng.integers(1, 80)), int(rng.integers(1, 80))), (h, w)]:
            expected = F.interpolate(
                torch.from_numpy(image)[None, None], size=out, mode="bilinear", align_corners=False
            )[0, 0]
            assert (
                np.abs(resize_bilinear(image, *out) - expected.numpy()).max() < 1e-4
            )  # float32 rounding of the sample points
        small = (int(rng.integers(1, h + 1)), int(rng.integers(1, w + 1)))
        assert np.array_equal(
            max_pooled(image, *small), F.adaptive_max_pool2d(torch.from_numpy(image)[None, None], small)[0, 0].numpy()
        )


def test_log_odds_and_probability_round_trip_without_overflow():
    from scipy.special import expit as scipy_expit

    from waldo_pl.odds import expit
    from waldo_pl.odds import logit as our_logit

    x = np.array([-1000.0, -40.0, -3.0, 0.0, 2.5, 40.0, 1000.0])
    with np.errstate(over="raise"):
        assert np.allclose(expit(x), scipy_expit(x), rtol=1e-12, atol=0)
    assert expit(np.float32(3)).dtype == np.float32
    p = np.array([1e-12, 0.2, 0.5, 0.9, 1 - 1e-12])
    assert np.allclose(our_logit(p), logit(p)) and np.allclose(expit(our_logit(p)), p)


def test_the_answer_is_ranked_by_log_odds_where_the_probability_saturates():
    log_odds = np.full((200, 300), -5.0, np.float32)
    log_odds[10:40, 10:60] = 20.0  # a look-alike the network is sure of, first in reading order
    log_odds[150:170, 250:265] = 26.0  # Waldo, surer still
    probabilities = torch.from_numpy(log_odds).sigmoid().numpy()
    assert probabilities.max() == 1.0 and np.unravel_index(probabilities.argmax(), log_odds.shape) == (10, 10)
    best, second, *_ = find_spots(log_odds, threshold=0.8, count=5)
    assert (
        (best.x, best.y, best.box) == (250, 150, (250, 150, 265, 170))
        and best.log_odds == 26.0
        and best.confidence > 1 - 1e-11
    )
    assert second.box == (10, 10, 60, 40)


def test_an_answers_log_odds_are_the_first_stages_own_where_its_probability_rounds_to_one():
    """A held-out answer's log-odds feed the calibration: for a first-stage answer they are the heatmap's number,
    not the logit of a probability that float rounding has pushed to (or next to) 1."""
    from waldo_pl.inference.answer import page_outcome

    for peak in (9.488, 12.0, 16.0, 20.0):
        log_odds = np.full((64, 64), -5.0, np.float32)
        log_odds[20:30, 20:30] = peak
        outcome = page_outcome(find_spots(log_odds, 0.8, count=2), np.array([[20, 20, 30, 30]]))
        assert outcome["hit"] == 1 and outcome["log_odds"] == outcome["first_stage_log_odds"] == round(
            float(np.float32(peak)), 3
        )


def test_a_page_gets_json_a_readable_result_and_with_full_the_tutorials_figures(tmp_path):
    page = draw_page(150, 190, [(120, 30, 134, 50)])
    Image.fromarray(page).save(tmp_path / "page.png")
    answer = answer_page(RedFinder(), tmp_path / "page.png", SearchSettings(candidates=2), tmp_path, "page", full=True)
    data = json.loads((tmp_path / "page.json").read_text())
    assert set(data) == {"image", "width", "height", "x", "y", "confidence", "box", "candidates"}
    assert (data["width"], data["height"]) == (190, 150) and 0 <= data["confidence"] <= 1
    assert 120 <= data["x"] < 134 and 30 <= data["y"] < 50
    assert isinstance(data["box"], list) and len(data["box"]) == 4
    assert all(set(c) == {"x", "y", "confidence", "box"} for c in data["candidates"]) and len(data["candidates"]) <= 2
    for name in ("page_heatmap.png", "page_result.png"):
        with Image.open(tmp_path / name) as picture:
            assert picture.size == (190, 150) and picture.mode == "RGB"
    result = np.asarray(Image.open(tmp_path / "page_result.png")).astype(int)
    x1, y1, x2, y2 = data["box"]
    assert (result[y1:y2, x1:x2] == page[y1:y2, x1:x2]).all()  # Waldo left bright
    assert result[140, 5].sum() < page[140, 5].astype(int).sum() * 0.6  # the rest dimmed
    assert result[y1 - 1, (x1 + x2) // 2].tolist() == [255, 0, 0]  # a red line around him
    assert answer.spots[0].x == data["x"] and not list(tmp_path.glob(".*.tmp"))


def test_the_result_picture_shows_waldo_zoomed_beside_the_page_with_the_candidates(tmp_path):
    from waldo_pl.inference.pictures import INSET, PANEL, PREVIEW_SIDE

    page = draw_page(1800, 2400, [(1500, 300, 1514, 320)], seed=3)
    page[1200:1215, 400:412] = [200, 60, 60]  # a redder patch than the paper: a look-alike
    Image.fromarray(page).save(tmp_path / "big.png")
    answer_page(RedFinder(), tmp_path / "big.png", SearchSettings(candidates=4), tmp_path, "big")
    assert not (tmp_path / "big_result.png").exists()  # no page-size picture unless asked
    result = np.asarray(Image.open(tmp_path / "big_result.jpg")).astype(int)
    assert result.shape[1] == PREVIEW_SIDE + PANEL and result.shape[0] >= PREVIEW_SIDE * 1800 // 2400
    inset = result[
        40 + INSET // 2 - 20 : 40 + INSET // 2 + 20, PREVIEW_SIDE + PANEL // 2 - 20 : PREVIEW_SIDE + PANEL // 2 + 20
    ]
    red, white = (
        (np.abs(inset - [220, 20, 30]).sum(-1) < 90).mean(),
        (np.abs(inset - [250, 250, 250]).sum(-1) < 60).mean(),
    )
    assert red > 0.2 and white > 0.1  # Waldo's stripes fill the middle of the zoomed window
    strip = result[40 + INSET + 40 :, PREVIEW_SIDE:]
    assert (np.abs(strip - [255, 160, 0]).sum(-1) < 80).sum() > 200  # the candidates, outlined and labelled in orange
    overlay = np.asarray(Image.open(tmp_path / "big_heatmap.jpg")).astype(int)
    assert overlay.shape[:2] == (PREVIEW_SIDE * 1800 // 2400, PREVIEW_SIDE)
    y, x = 310 * PREVIEW_SIDE // 2400, 1507 * PREVIEW_SIDE // 2400
    spot = overlay[y - 1 : y + 2, x - 1 : x + 2].mean((0, 1))
    assert (
        spot[0] > 190 and spot[0] - spot[2] > 40
    )  # the probability in warm colour over Waldo, the page grey elsewhere
    assert np.abs(overlay[900, 300] - overlay[900, 300].mean()).max() < 12


def test_scoring_counts_hits_top5_and_distance(tmp_path):
    rows, answers = [], []
    for i, (box, labelled) in enumerate([((20, 20, 36, 40), (20, 20, 36, 40)), ((20, 20, 36, 40), (90, 60, 100, 70))]):
        Image.fromarray(draw_page(100, 120, [box], seed=i)).save(tmp_path / f"p{i}.png")
        rows.append((f"p{i}.png", 120, 100, "waldo", *labelled))
        answers.append(answer_page(RedFinder(), tmp_path / f"p{i}.png", SearchSettings(), tmp_path, f"p{i}"))
    write_csv(tmp_path / "labels.csv", rows)
    report, totals = score(answers, read_labels(tmp_path / "labels.csv"))
    assert [r["hit"] for r in report] == [1, 0] and report[0]["distance"] == 0 and report[1]["distance"] > 20
    assert totals["hit_rate"] == 0.5 and totals["pages"] == 2 and totals["median_seconds"] >= 0


def run_predict(*args, timeout=300):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "predict.py", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env
    )


def test_predict_py_on_a_mixed_folder_finishes_the_good_pages_and_lists_the_bad(trained_checkpoint, tmp_path):
    pages = tmp_path / "pages"
    pages.mkdir()
    rgb = Image.fromarray(draw_page(96, 128, [(40, 30, 56, 50)]))
    rgb.save(pages / "rgb.jpg")
    rgb.convert("L").save(pages / "grey.png")
    rgb.convert("RGBA").save(pages / "alpha.png")
    rgb.convert("CMYK").save(pages / "cmyk.jpg")
    Image.fromarray(np.asarray(rgb.convert("L"), np.uint16) * 257).save(pages / "deep.png")
    (pages / "text.jpg").write_text("no pixels here")
    whole = (pages / "rgb.jpg").read_bytes()
    (pages / "cut.jpg").write_bytes(whole[: len(whole) // 2])
    Image.fromarray(draw_page(10, 40, [])).save(pages / "tiny.png")
    write_csv(
        tmp_path / "labels.csv", [(n, 128, 96, "waldo", 40, 30, 56, 50) for n in ("rgb.jpg", "grey.png", "alpha.png")]
    )

    out = tmp_path / "out"
    result = run_predict(
        f"img={pages}", f"ckpt={trained_checkpoint}", f"output_dir={out}", f"labels={tmp_path / 'labels.csv'}"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    good = ["alpha", "cmyk", "deep", "grey", "rgb"]
    assert sorted(p.stem for p in out.glob("*.json")) == good
    for stem in good:
        assert f"{stem}." in result.stdout and "%" in result.stdout
        with Image.open(out / f"{stem}_result.jpg") as picture:  # the small page enlarged beside the panel
            width, height = picture.size
            assert width - 360 == round(128 * height / 96) and height > 96
    summary = result.stderr[result.stderr.index("3 of 8 page(s) failed") :]
    for bad in ("text.jpg", "cut.jpg", "tiny.png"):
        assert bad in summary
    assert "16 px" in summary
    report = (out / "report.csv").read_text().splitlines()
    assert report[0].startswith("image,hit,top5_hit,distance") and len(report) == 4
    report_md = (out / "report.md").read_text()
    assert (
        "hit rate" in report_md
        and "## What the confidence means" in report_md
        and "Mean confidence of hits" in report_md
    )


def test_predict_py_takes_a_glob(trained_checkpoint, tmp_path):
    for name in ("one.png", "two.png", "skip.jpg"):
        Image.fromarray(draw_page(64, 80, [(10, 10, 24, 30)])).save(tmp_path / name)
    result = run_predict(
        f"img={tmp_path}/*.png", f"ckpt={trained_checkpoint}", f"output_dir={tmp_path / 'out'}", "precision=32"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "out").glob("*.json")) == ["one.json", "two.json"]
    assert len([line for line in result.stdout.splitlines() if line.endswith("%")]) == 2


def different_architecture(tmp_path):
    path = tmp_path / "other.ckpt"
    torch.save(
        {
            "state_dict": {"net.conv.weight": torch.zeros(4, 3, 3, 3)},
            "config": {"model": {"net": {"_target_": "waldo_pl.models.tutorial_net.TutorialNet"}}},
        },
        path,
    )
    return path


@pytest.mark.parametrize(
    "make_args, message",
    [
        (lambda t, c: ["img=/no/such/page.jpg", f"ckpt={c}"], "img=/no/such/page.jpg"),
        (lambda t, c: [f"img={t / 'p.png'}", "ckpt=/no/such.ckpt"], "ckpt=/no/such.ckpt: no such checkpoint"),
        (lambda t, c: [f"img={t / 'p.png'}", f"ckpt={t / 'p.png'}"], "not a checkpoint written by train.py"),
        (lambda t, c: [f"img={t / 'p.png'}", f"ckpt={different_architecture(t)}"], "holds another architecture"),
        (lambda t, c: [f"img={t / 'bad.jpg'}", f"ckpt={c}"], "no page could be read"),
        (lambda t, c: [f"img={t / 'p.png'}", f"ckpt={c}", "accelerator=gpu"], "no CUDA GPU"),
        (lambda t, c: [f"ckpt={c}"], "img= is required"),
        (
            lambda t, c: [f"img={t / 'p.png'}", f"ckpt={c}", "flip=maybe"],
            "flip=maybe: Value 'maybe' is not a valid bool",
        ),
        (lambda t, c: [f"img={t / 'p.png'}", f"ckpt={c}", "backend=nope"], "backend=nope: use auto, torch or openvino"),
        (lambda t, c: [f"img={t / 'p.png'}", f"ckpt={c}", "threshold=80"], "threshold=80.0: must be a probability"),
        (lambda t, c: [f"img={t / 'p.png'}", f"ckpt={c}", "scales=[0]"], "scales=[0.0]: give one or more positive"),
        (
            lambda t, c: [f"img={t / 'p.png'}", f"ckpt={c}", "scales=[big]"],
            "scales=[big]: Value 'big' of type 'str' could not be converted to Float",
        ),
    ],
)
def test_predict_py_fails_in_one_line_with_exit_2(trained_checkpoint, tmp_path, make_args, message):
    Image.fromarray(draw_page(64, 64, [])).save(tmp_path / "p.png")
    (tmp_path / "bad.jpg").write_text("nope")
    if message == "no CUDA GPU" and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = run_predict(*make_args(tmp_path, trained_checkpoint), f"output_dir={tmp_path / 'out'}")
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(errors) == 1 and message in errors[0] and "Traceback" not in result.stderr
    assert not list((tmp_path / "out").glob("*.json")) if (tmp_path / "out").exists() else True


@pytest.mark.parametrize(
    "setting, value, message",
    [
        ("scales", (), "scales=[]: give one or more positive sizes"),
        ("scales", (1.0, -2.0), "scales=[1.0, -2.0]"),
        ("tile", 100, "tile=100: must be a multiple of 16"),
        ("tile", 1000, "tile=1000: must be a multiple of 16"),
        ("batch_size", 0, "batch_size=0: must be 1 or more"),
        ("max_whole_pixels", -1, "max_whole_pixels=-1"),
        ("merge", "median", "merge=median: mean or max"),
    ],
)
def test_the_search_refuses_a_setting_it_cannot_search_with(setting, value, message):
    with pytest.raises(UserError, match=re.escape(message)):
        SearchSettings(**{setting: value})


def test_a_huge_page_runs_in_tiles_within_4_gb(tmp_path):
    script = f"""
import resource, sys
import numpy as np
sys.path.insert(0, {str(Path(__file__).parent)!r})
from test_predict import RedFinder
from waldo_pl.inference.predict import answer_page
from waldo_pl.inference.search import ONE_PASS, with_settings
from pathlib import Path
from PIL import Image
page = np.full((10000, 10000, 3), 128, np.uint8)
page[7000:7040, 3000:3030] = [255, 0, 0]
Image.fromarray(page).save({str(tmp_path / "huge.png")!r}, compress_level=1)
del page
settings = with_settings(ONE_PASS, tile=2048, batch_size=2)
answer = answer_page(RedFinder(), Path({str(tmp_path / "huge.png")!r}), settings, Path({str(tmp_path)!r}), "huge")
print(answer.spots[0].x, answer.spots[0].y, answer.spots[0].box)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    spot, peak_kb = result.stdout.splitlines()[-2:]
    x, y = (int(v) for v in spot.split()[:2])
    assert 3000 <= x < 3030 and 7000 <= y < 7040
    assert int(peak_kb) < 4 * 1024 * 1024, f"peak memory {int(peak_kb) / 1e6:.2f} GB"
    with Image.open(tmp_path / "huge_result.jpg") as picture:
        assert picture.size[0] == 1400 + 360


def test_predict_says_once_which_backend_and_precision_it_searches_with(trained_checkpoint, tmp_path, caplog):
    import logging

    from waldo_pl.inference import openvino_backend
    from waldo_pl.inference.predict import predict

    Image.fromarray(draw_page(96, 112, [(30, 40, 46, 60)])).save(tmp_path / "page.png")
    said = {}
    for backend in ("torch", "auto"):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="waldo_pl.inference.predict"):
            predict(
                str(tmp_path / "page.png"),
                str(trained_checkpoint),
                str(tmp_path / backend),
                backend=backend,
                accelerator="cpu",
                precision="32",
                scales=[1.0],
                flip=False,
            )
        said[backend] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("search: ")]
    assert said["torch"] == ["search: PyTorch on the cpu, float32"]
    # OpenVINO is installed with the project: a CPU search runs it unless told not to
    expected = (
        "search: OpenVINO on the cpu, float32"
        if openvino_backend.available()
        else "search: PyTorch on the cpu, float32"
    )
    assert said["auto"] == [expected]


class PixelCounter(PageNetwork):
    """A PageNetwork around RedFinder that counts the pixels it is given."""

    def __init__(self):
        self.net, self.pixels = TorchPageNetwork(RedFinder()), 0

    def __call__(self, pages):
        self.pixels += pages.shape[0] * pages.shape[1] * pages.shape[2]
        return self.net(pages)


def test_the_windowed_search_finds_the_spots_of_the_whole_search_for_fewer_pixels():
    """windows=N: the page once at scale 1, the other scale and the mirror image only around that pass's N best
    spots. With a network that looks at each pixel alone, its spots and their log-odds are the whole search's."""
    from waldo_pl.inference.search import search, with_settings

    rng = np.random.default_rng(3)
    page = rng.integers(60, 120, (1024, 1280, 3), dtype=np.uint8)
    for i, (y, x) in enumerate([(100, 200), (500, 900), (800, 300), (40, 1200), (1000, 640), (600, 20)]):
        page[y : y + 20, x : x + 14] = [150 + 15 * i, 40, 40]  # red patches, some at the page's edges
    found = {}
    for windows in (0, 5):
        net = PixelCounter()
        heat, spots = search(net, page, with_settings(PREDICT, windows=windows))
        found[windows] = (spots, net.pixels)
    whole, windowed = found[0][0], found[5][0]
    assert [(s.x, s.y) for s in windowed] == [(s.x, s.y) for s in whole] and len(whole) == PREDICT.candidates + 1
    assert [s.log_odds for s in windowed] == pytest.approx([s.log_odds for s in whole], abs=1e-3)
    assert found[5][1] < 0.7 * found[0][1]  # fewer pixels through the network
    with pytest.raises(UserError, match="windows=2: .*with 1.0 among the scales"):
        with_settings(PREDICT, windows=2, scales=(1.25,))


def test_a_windows_log_odds_are_the_whole_searchs_away_from_the_pages_edges():
    """Each pass cuts its windows from the page as that pass sees it (resized, mirrored) on the network's grid, with
    its reach around them: the tutorial's network gives there what it gives over the whole page."""
    from waldo_pl.inference.heatmap import log_odds_in_windows

    torch.manual_seed(0)
    net = TutorialNet().eval()
    page = np.random.default_rng(2).integers(0, 256, (330, 410, 3), dtype=np.uint8)
    tiling = {"tile": 1024, "batch_size": 4, "max_whole_pixels": 1 << 30}
    whole = log_odds_at_scales(net, page, (1.0, 1.25), True, "mean", False, **tiling)
    first = log_odds_at_scales(net, page, (1.0,), False, "mean", False, **tiling)
    windowed, inside = log_odds_in_windows(net, page, first, [(150, 200), (60, 350)], (1.0, 1.25), True, "mean", False)
    away = inside.copy()
    away[:48], away[-48:], away[:, :48], away[:, -48:] = False, False, False, False
    assert away.sum() > 20_000 and np.abs(windowed - whole)[away].max() < 1e-4
    assert np.array_equal(windowed[~inside], first[~inside])  # outside the windows: the first pass
