"""waldo-crossval's table: one row a run, and each seed pooled when a sweep ran several (seed also draws the folds)."""

import json

import pytest
from omegaconf import OmegaConf

from waldo_pl.crossval.calibrate import write_calibration
from waldo_pl.crossval.rescore import Rescoring
from waldo_pl.crossval.table import fold_table
from waldo_pl.errors import UserError


def fake_run(folder, fold, seed, hits):
    (folder / ".hydra").mkdir(parents=True)
    OmegaConf.save(
        OmegaConf.create({"seed": seed, "data": {"folds": 5, "fold": fold}}), folder / ".hydra" / "config.yaml"
    )
    pages = [
        {"page": f"p{i}.jpg", "hit": hit, "top5_hit": True, "distance": 0 if hit else 100} for i, hit in enumerate(hits)
    ]
    (folder / "metrics.json").write_text(json.dumps({"steps": 10, "fit_seconds": 60, "pages": pages}))


def test_rows_name_fold_and_seed_and_each_seed_is_pooled(tmp_path):
    fake_run(tmp_path / "0", 0, 0, [True, False])
    fake_run(tmp_path / "1", 1, 0, [True, True])
    fake_run(tmp_path / "2", 0, 1, [False, False])
    lines = fold_table(tmp_path).splitlines()
    assert lines[2].startswith("| 0 | 0 | 0 | p0.jpg, p1.jpg (miss) | 1/2 = 50% | 2/2 = 100% |")
    assert lines[4].startswith("| 2 | 0 | 1 |")
    assert "| seed 0 | | 0 | 4 pages | 3/4 = 75% | 4/4 = 100% | | | |" in lines
    assert "| seed 1 | | 1 | 2 pages | 0/2 = 0% | 2/2 = 100% | | | |" in lines
    assert lines[-1].startswith("| **all** | | | 6 pages | **3/6 = 50%** | 6/6 = 100% |")


def test_one_seed_has_no_seed_rows_and_a_run_without_hydra_config_is_marked(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "metrics.json").write_text(
        json.dumps({"steps": 1, "pages": [{"page": "q.jpg", "hit": False, "top5_hit": False, "distance": 9}]})
    )
    lines = fold_table(tmp_path).splitlines()
    assert lines[2] == "| b | ? | ? | q.jpg (miss) | 0/1 = 0% | 0/1 = 0% | 9 | 1 | ? |"
    assert len(lines) == 4 and lines[-1].startswith("| **all** | | | 1 pages | **0/1 = 0%**")


def test_rescoring_a_run_without_saved_config_asks_for_the_pages(tmp_path):
    fake_run(tmp_path / "r", 0, 0, [True])
    (tmp_path / "r" / ".hydra" / "config.yaml").unlink()
    (tmp_path / "r" / "checkpoints").mkdir()
    (tmp_path / "r" / "checkpoints" / "last.ckpt").write_bytes(b"")
    with pytest.raises(UserError, match="no .hydra/config.yaml to read data.root from; give the pages with --data"):
        fold_table(tmp_path, Rescoring.searching([1.0]))


def test_the_table_says_what_the_confidence_means_on_the_held_out_pages(tmp_path):
    from waldo_pl.inference.report import reliability_table

    pages = [
        {"hit": 1, "confidence": 0.97},
        {"hit": 0, "confidence": 0.96},
        {"hit": 1, "confidence": 1.0},
        {"hit": 0, "confidence": 0.3},
        {"hit": 1, "confidence": 0.85},
    ]
    table = reliability_table(pages).splitlines()
    assert "| 0% to 50% | 1 | 0 | 0% | 30.0% |" in table
    assert "| 95% to 99% | 2 | 1 | 50% | 96.5% |" in table and "| 99% to 100% | 1 | 1 | 100% | 100.0% |" in table
    assert table[-1] == "Mean confidence of hits 94.0% (3 pages), of misses 63.0% (2 pages)."
    fake_run(tmp_path / "0", 0, 0, [True, False])
    assert "What the confidence means" not in fold_table(tmp_path)  # runs that did not record it
    record = json.loads((tmp_path / "0" / "metrics.json").read_text())
    for page, confidence in zip(record["pages"], (0.9, 0.4)):
        page["confidence"] = confidence
    (tmp_path / "0" / "metrics.json").write_text(json.dumps(record))
    assert "| 90% to 95% | 1 | 1 | 100% | 90.0% |" in fold_table(tmp_path)


def test_calibrate_writes_platt_scaling_that_export_stores_with_the_second_stage(tmp_path):
    """Overconfident answers (log-odds 8 on every page, right on half) come out near 50% once calibrated."""
    import numpy as np
    import torch

    from waldo_pl.export import export
    from waldo_pl.models.checkpoint import read_checkpoint, second_stage_entry, second_stage_from
    from waldo_pl.models.spot_net import SpotNet
    from waldo_pl.models.tutorial_net import TutorialNet
    from waldo_pl.second_stage.spec import SecondStage

    fake_run(tmp_path / "runs" / "0", 0, 0, [True, False] * 10)
    record = json.loads((tmp_path / "runs" / "0" / "metrics.json").read_text())
    for i, page in enumerate(record["pages"]):
        page["log_odds"], page["confidence"] = 8.0 + 0.1 * (i % 3), 0.9997
    (tmp_path / "runs" / "0" / "metrics.json").write_text(json.dumps(record))
    table = fold_table(tmp_path / "runs", calibrate=tmp_path / "calibration.json")
    fitted = json.loads((tmp_path / "calibration.json").read_text())
    assert fitted["pages"] == 20 and fitted["hits"] == 10 and "in-sample" in table
    assert abs(1 / (1 + np.exp(-(fitted["a"] * 8.1 + fitted["b"]))) - 0.5) < 0.1
    assert "search" not in fitted  # answers as each run validated, and the run does not say how it searched
    searched_again = {"scales": [1.0, 1.25], "flip": True}  # what --scales 1 1.25 --flip gives it to write
    write_calibration(tmp_path / "flipped.json", record["pages"], tmp_path / "runs", "share", searched_again)
    assert json.loads((tmp_path / "flipped.json").read_text())["search"] == searched_again

    ckpt = tmp_path / "two.ckpt"
    stage = second_stage_entry(SecondStage(SpotNet(4), 3, (1.0, 0.0), "none", 0.0, "share"))
    torch.save(
        {
            "state_dict": {f"net.{k}": v for k, v in TutorialNet().state_dict().items()},
            "second_stage": stage,
            "config": {"model": {"net": {"_target_": "waldo_pl.models.tutorial_net.TutorialNet"}}},
        },
        ckpt,
    )
    out = export(ckpt, tmp_path / "small.pt", calibration=fitted)
    loaded = second_stage_from(read_checkpoint(out), str(out))
    assert loaded.platt == pytest.approx((fitted["a"], fitted["b"])) and "20 held-out answers" in loaded.calibration
    with pytest.raises(
        UserError, match="needs a, b, pages, hits"
    ):  # another JSON given as the calibration: nothing written
        export(ckpt, tmp_path / "other.pt", calibration={"a": 1.0, "b": "zero"})
    assert not (tmp_path / "other.pt").exists()
    # that calibration on other answers (log-odds 8, right on 3 of 4): an out-of-sample reliability table
    fake_run(tmp_path / "others" / "0", 0, 0, [True, True, True, False])
    others = json.loads((tmp_path / "others" / "0" / "metrics.json").read_text())
    for page in others["pages"]:
        page["log_odds"], page["confidence"] = 8.0, 0.9997
    (tmp_path / "others" / "0" / "metrics.json").write_text(json.dumps(others))
    table = fold_table(tmp_path / "others", calibrated_by=tmp_path / "calibration.json")
    calibrated_part = table.split("fitted on other answers")[1]  # 99.97% said, about 50% once calibrated
    assert "| 0% to 50% | 4 | 3 | 75% |" in calibrated_part and "99% to 100%" not in calibrated_part
    with pytest.raises(UserError, match="--calibrated-by .*needs a and b"):
        fold_table(tmp_path / "others", calibrated_by=tmp_path / "others" / "0" / "metrics.json")
    with pytest.raises(UserError, match="every held-out answer is right"):
        fake_run(tmp_path / "all_right" / "0", 0, 0, [True, True])
        fold_table(tmp_path / "all_right", calibrate=tmp_path / "c2.json")


def test_the_table_pools_each_collection_of_the_runs_pages(tmp_path):
    """Pages from several folders (data.root a list): a row per folder, read from the labels alone."""
    header = "filename,width,height,class,xmin,ymin,xmax,ymax\n"
    for folder, names in {"scans": ["s1.jpg", "same.jpg"], "photos": ["p1.jpg", "p2.jpg", "same.jpg"]}.items():
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "annotations.csv").write_text(header + "".join(f"{n},9,9,waldo,1,1,4,4\n" for n in names))
    roots = [str(tmp_path / "scans"), str(tmp_path / "photos")]
    held = {
        "0": [("s1.jpg", True), ("p1.jpg", False)],
        "1": [("scans/same.jpg", True), ("photos/same.jpg", True), ("p2.jpg", True)],
    }
    for run, pages in held.items():
        (tmp_path / "runs" / run / ".hydra").mkdir(parents=True)
        OmegaConf.save(
            OmegaConf.create({"seed": 0, "data": {"folds": 2, "fold": int(run), "root": roots}}),
            tmp_path / "runs" / run / ".hydra" / "config.yaml",
        )
        records = [{"page": name, "hit": hit, "top5_hit": True, "distance": 0} for name, hit in pages]
        (tmp_path / "runs" / run / "metrics.json").write_text(json.dumps({"steps": 1, "pages": records}))
    lines = fold_table(tmp_path / "runs").splitlines()
    assert "| photos | | | 3 pages | 2/3 = 67% | 3/3 = 100% | | | |" in lines
    assert "| scans | | | 2 pages | 2/2 = 100% | 2/2 = 100% | | | |" in lines
    for run in held:  # one folder only: no rows per folder
        config = tmp_path / "runs" / run / ".hydra" / "config.yaml"
        OmegaConf.save(OmegaConf.merge(OmegaConf.load(config), {"data": {"root": roots[0]}}), config)
    assert "| scans |" not in fold_table(tmp_path / "runs")


def test_calibrate_also_says_how_the_fit_does_on_pages_it_never_saw(tmp_path):
    """Two runs whose log-odds tell hits from misses and one where they say the opposite: fitted on all answers the
    hits look surer than the misses, but the reversed run, calibrated by a fit on the other two, is sure of its misses;
    and each run is calibrated without its own pages, at every seed."""
    import re

    for run, (seed, names, hits, log_odds) in {
        "0": (0, ["a", "b", "c", "d"], [1, 0, 1, 0], [4, -4, 3, -3]),
        "1": (0, ["e", "f", "g", "h"], [1, 0, 1, 0], [4, -4, 3, -3]),
        "2": (0, ["i", "j"], [0, 1], [4, -4]),
        "3": (1, ["i", "j"], [0, 1], [4, -4]),  # pages i and j again, at another seed
    }.items():
        (tmp_path / run / ".hydra").mkdir(parents=True)
        OmegaConf.save(
            OmegaConf.create({"seed": seed, "data": {"folds": 3, "fold": 0}}), tmp_path / run / ".hydra" / "config.yaml"
        )
        pages = [
            {"page": n, "hit": h, "top5_hit": 1, "distance": 0, "confidence": 0.5, "log_odds": z}
            for n, h, z in zip(names, hits, log_odds)
        ]
        (tmp_path / run / "metrics.json").write_text(json.dumps({"steps": 1, "pages": pages}))
    table = fold_table(tmp_path, calibrate=tmp_path / "calibration.json")
    in_sample, out_of_sample = table.split("Out of sample")
    means = [
        [float(x) for x in re.findall(r"hits ([\d.]+)%.*misses ([\d.]+)%", part)[-1]]
        for part in (in_sample, out_of_sample)
    ]
    assert means[0][0] > means[0][1]  # fitted on every answer: hits surer than misses
    assert means[1][0] < means[1][1]  # run 2's answers, fitted without i and j (not even run 3's), turn it round
    import shutil

    for run in ("2", "3"):  # the same two pages at two seeds: nothing is left to fit on without them
        shutil.copytree(tmp_path / run, tmp_path / "same_pages" / run)
    assert "Too few answers" in fold_table(tmp_path / "same_pages", calibrate=tmp_path / "other.json")


def test_calibrate_names_the_number_it_was_fitted_on_and_will_not_pool_two(tmp_path):
    """Answers whose confidence is the share, the score, or the first stage's own (as the search recorded it): a fit
    says which it maps, so that export applies it to that number only, and answers of two kinds are not fitted
    together."""

    def run(folder, name: str, confidence_of: str | None) -> None:
        (folder / name / ".hydra").mkdir(parents=True)
        OmegaConf.save(
            OmegaConf.create({"seed": 0, "data": {"folds": 2, "fold": int(name)}}),
            folder / name / ".hydra" / "config.yaml",
        )
        pages = [
            {
                "page": f"{name}{i}",
                "hit": i % 2,
                "top5_hit": 1,
                "distance": 0,
                "confidence": 0.5,
                "log_odds": i % 2 - 0.5,
                **({"confidence_of": confidence_of} if confidence_of else {}),
            }
            for i in range(6)
        ]
        (folder / name / "metrics.json").write_text(json.dumps({"steps": 1, "pages": pages}))

    for number in ("share", "score", "first stage", None):
        for fold in ("0", "1"):
            run(tmp_path / str(number), fold, number)
        fold_table(tmp_path / str(number), calibrate=tmp_path / f"{number}.json")
        assert json.loads((tmp_path / f"{number}.json").read_text()).get("confidence") == number
    run(tmp_path / "share", "2", "score")  # a run whose answers were made from the score among the share's
    run(tmp_path / "None", "2", "share")  # a record from before the field among ones that name it
    for folder, named in (("share", "score, share"), ("None", "not recorded, share")):
        with pytest.raises(UserError, match=f"confidences are made from different numbers \\({named}\\)"):
            fold_table(tmp_path / folder, calibrate=tmp_path / "mixed.json")
    assert not (tmp_path / "mixed.json").exists()


def test_calibrate_with_first_stage_weighs_the_first_stages_log_odds_too(tmp_path):
    """Answers whose own log-odds say nothing (the same on every page) but whose first-stage log-odds tell hits from
    misses: the share alone calibrates every answer alike, the fit with the first stage tells them apart, out of
    sample too; export stores its third number, and a calibration that weighs it needs answers that record it."""
    import re

    import numpy as np

    for fold in (0, 1):
        (tmp_path / str(fold) / ".hydra").mkdir(parents=True)
        OmegaConf.save(
            OmegaConf.create({"seed": 0, "data": {"folds": 2, "fold": fold}}),
            tmp_path / str(fold) / ".hydra" / "config.yaml",
        )
        pages = [
            {
                "page": f"{fold}-{i}",
                "hit": i % 3 != 0,
                "top5_hit": 1,
                "distance": 0,
                "confidence": 0.6,
                "log_odds": 0.4,
                "first_stage_log_odds": 12.0 + (4 if i % 3 else 0) + 0.1 * i,
            }
            for i in range(12)
        ]
        (tmp_path / str(fold) / "metrics.json").write_text(json.dumps({"steps": 1, "pages": pages}))
    gap = lambda text: np.subtract(*[float(x) for x in re.findall(r"hits ([\d.]+)%.*misses ([\d.]+)%", text)[-1]])
    alone = fold_table(tmp_path, calibrate=tmp_path / "alone.json")
    both = fold_table(tmp_path, calibrate=tmp_path / "both.json", with_first_stage=True)
    assert "c" not in json.loads((tmp_path / "alone.json").read_text()) and gap(alone.split("Out of sample")[1]) == 0
    fitted = json.loads((tmp_path / "both.json").read_text())
    assert fitted["c"] > 0 and gap(both.split("Out of sample")[1]) > 30  # fitted without each fold's pages
    applied = fold_table(tmp_path, calibrated_by=tmp_path / "both.json")
    assert "c=" in applied and gap(applied.split("fitted on other answers")[1]) > 30
    for fold in (0, 1):  # records from before the first stage's log-odds were kept
        record = json.loads((tmp_path / str(fold) / "metrics.json").read_text())
        record["pages"] = [{k: v for k, v in page.items() if k != "first_stage_log_odds"} for page in record["pages"]]
        (tmp_path / str(fold) / "metrics.json").write_text(json.dumps(record))
    with pytest.raises(UserError, match="no first-stage log-odds"):
        fold_table(tmp_path, calibrate=tmp_path / "none.json", with_first_stage=True)
    with pytest.raises(UserError, match="no first-stage log-odds, which .*both.json weighs"):
        fold_table(tmp_path, calibrated_by=tmp_path / "both.json")


def test_a_calibration_of_answers_as_validated_says_the_search_when_every_run_validated_alike(tmp_path):
    """Validated as predict.py searches (page_validation's scales and flip), the answers need no search again."""
    for run in ("0", "1"):
        fake_run(tmp_path / run, int(run), 0, [True, False, True])
        config = tmp_path / run / ".hydra" / "config.yaml"
        validation = {"scales": [1.0, 1.25], "flip": True}
        OmegaConf.save(OmegaConf.merge(OmegaConf.load(config), {"callbacks": {"page_validation": validation}}), config)
        record = json.loads((tmp_path / run / "metrics.json").read_text())
        for i, page in enumerate(record["pages"]):
            page["log_odds"] = 1.0 + i
        (tmp_path / run / "metrics.json").write_text(json.dumps(record))
    fold_table(tmp_path, calibrate=tmp_path / "alike.json")  # configs from before page_validation.merge: the best kept
    assert json.loads((tmp_path / "alike.json").read_text())["search"] == {
        "scales": [1.0, 1.25],
        "flip": True,
        "merge": "max",
    }
    for run in ("0", "1"):
        config = tmp_path / run / ".hydra" / "config.yaml"
        OmegaConf.save(
            OmegaConf.merge(OmegaConf.load(config), {"callbacks": {"page_validation": {"merge": "mean"}}}), config
        )
    fold_table(tmp_path, calibrate=tmp_path / "alike.json")
    assert json.loads((tmp_path / "alike.json").read_text())["search"] == {
        "scales": [1.0, 1.25],
        "flip": True,
        "merge": "mean",
    }
    config = tmp_path / "1" / ".hydra" / "config.yaml"  # one run validated without the mirror: no search to name
    OmegaConf.save(OmegaConf.merge(OmegaConf.load(config), {"callbacks": {"page_validation": {"flip": False}}}), config)
    fold_table(tmp_path, calibrate=tmp_path / "unlike.json")
    assert "search" not in json.loads((tmp_path / "unlike.json").read_text())
    for run in ("0", "1"):  # a setting left null: the training-time preset's, as the run validated
        config = tmp_path / run / ".hydra" / "config.yaml"
        preset = {"page_validation": {"scales": None, "flip": None, "merge": None}}
        OmegaConf.save(OmegaConf.merge(OmegaConf.load(config), {"callbacks": preset}), config)
    fold_table(tmp_path, calibrate=tmp_path / "preset.json")
    assert json.loads((tmp_path / "preset.json").read_text())["search"] == {
        "scales": [1.0],
        "flip": False,
        "merge": "mean",
    }


def test_compare_answers_counts_each_ways_pages_by_fold_and_kind_and_the_same_spots(tmp_path):
    """bench/compare_answers.py over answers kept by `waldo-crossval --keep`: found pages per fold, scans and photos
    apart, and how many answers are the first way's spot."""
    import subprocess
    import sys
    from pathlib import Path

    row = lambda fold, page, hit, x: {"fold": fold, "seed": "1", "page": page, "hit": hit, "x": x, "y": 50}
    whole = [row("0", "1.jpg", 1, 100), row("0", "webcam_1.jpg", 0, 300), row("1", "2.jpg", 1, 500)]
    windows = [row("0", "1.jpg", 1, 110), row("0", "webcam_1.jpg", 1, 900), row("1", "2.jpg", 0, 800)]
    for name, rows in (("whole", whole), ("windows", windows)):
        (tmp_path / f"{name}.json").write_text(json.dumps(rows))
    script = Path(__file__).resolve().parents[1] / "bench" / "compare_answers.py"
    run = lambda *ways: subprocess.run([sys.executable, str(script), *ways], capture_output=True, text=True)
    out = run(f"whole={tmp_path / 'whole.json'}", f"windows={tmp_path / 'windows.json'}").stdout.splitlines()
    assert out[2] == "| whole | 1 | 1 | 2/2 | 0/1 | 2/3 | 3/3 |"
    assert out[3] == "| windows | 2 | 0 | 1/2 | 1/1 | 2/3 | 1/3 |"  # 10 px away is the same spot, 600 px is not
    missing = run(f"whole={tmp_path / 'none*.json'}")
    assert missing.returncode != 0 and "no kept answers" in missing.stderr
