"""Test-time options of the two-stage search, tried on the pages a model was not trained on, with no training:

- the photo stretched to its 1st..99th percentile per channel (contrast and white balance) before the search
  (both stages, or the first alone);
- the second stage's score averaged over the window and its mirror image, or over windows cut 0.8 and 1.25
  times as wide;
- the answer ranked by the second stage's log-odds + lambda x the first stage's;
- the first stage's answer kept unless the second stage's log-odds for another spot are higher by a margin;
- the second stage re-ranking the first stage's best 3, 5 or 10 spots;
- and how well two confidences of predict.py's answer tell hits from misses: the second stage's score of the
  answer, or the answer's share of the candidates' odds (a softmax of their scores; what predict.py calibrates);
  with several --scores files (a cross-validation's folds), each also Platt-scaled out of sample: each file's
  answers by a fit on the other files' answers, as a reliability table; --calibrate fits the share on every answer.

    python bench/rerank_options.py [--model waldo_pl/weights/waldo.pt] [--record waldo_pl/weights/waldo.json] [--scales 1 1.25]
    python bench/rerank_options.py --runs outputs/photo_folds/fold0 outputs/photo_folds/fold1 ... [--keep scores.json]
    python bench/rerank_options.py --scores scores.json [more.json ...]   # the kept scores ranked again, pooled

The held-out pages are the record's `training.data.val_pages` (the bundled model's 19), or with `--runs` each
run's own (its metrics.json), searched by its last checkpoint, pooled over the runs. Prints the pages found
per collection for each option.
"""

import argparse
import json
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf
from scipy.special import expit

from waldo_pl.crossval.calibrate import cross_fitted_calibration, write_calibration
from waldo_pl.crossval.runs import run_config
from waldo_pl.data.formats import load_collections
from waldo_pl.data.page import distance_to_boxes
from waldo_pl.data.spot_windows import WINDOW, cut_window, window_side
from waldo_pl.inference.answer import find_spots
from waldo_pl.inference.device import load_for_search
from waldo_pl.inference.heatmap import log_odds_at_scales
from waldo_pl.inference.rerank import share_log_odds
from waldo_pl.inference.search import PREDICT

REPO = Path(__file__).resolve().parents[1]
STAGE = OmegaConf.load(REPO / "conf" / "second_stage" / "default.yaml")
SPOTS = 10


def with_margin(margin: float):
    """The second stage's scores, the first stage's best spot given `margin` log-odds (second_stage.margin)."""
    return lambda p: p["second"] + margin * (np.arange(len(p["second"])) == 0)


def stretched(image: np.ndarray) -> np.ndarray:
    """Each channel's 1st..99th percentile stretched to 0..255."""
    low, high = np.percentile(image, [1, 99], axis=(0, 1))
    return np.clip((image - low) / np.maximum(high - low, 1) * 255, 0, 255).astype(np.uint8)


def scored(net, stage, bf16: bool, scales: tuple, image: np.ndarray, boxes: np.ndarray, variants: bool = True) -> dict:
    """The first stage's best spots on a page, whether each hits, and each one's first- and second-stage scores
    (with `variants`, also over mirrored, narrower and wider windows)."""
    log_odds = log_odds_at_scales(net, image, scales, False, PREDICT.merge, bf16, **PREDICT.tiling)
    spots = find_spots(log_odds, PREDICT.threshold, count=SPOTS)

    def second(scale: float = 1.0, mirror: bool = False) -> np.ndarray:
        windows = np.stack([cut_window(image, s.x, s.y, round(window_side(s.box) * scale), WINDOW) for s in spots])
        return stage.net(np.ascontiguousarray(windows[..., ::-1]) if mirror else windows)

    found = {
        "hit": np.array([distance_to_boxes(s.x, s.y, boxes) == 0 for s in spots]),
        "first": np.array([log_odds[s.y, s.x] for s in spots]),
        "second": second(),
    }
    if variants:
        found.update(mirror=second(mirror=True), narrow=second(0.8), wide=second(1.25))
    return found


def found(pages: list[dict], score, k: int = 5) -> int:
    """Pages whose best spot by `score` among the first stage's k best hits Waldo."""
    return sum(bool(p["hit"][:k][int(np.argmax(score(p)[:k]))]) for p in pages)


def answer(page: dict) -> int:
    """predict.py's answer among the spots: the best of the first `candidates` by score, the first given `margin`."""
    return int(np.argmax(with_margin(STAGE.margin)(page)[: STAGE.candidates]))


def separation(pages: list[dict], confidence) -> str:
    """How often a hit's confidence is above a miss's, over every (hit, miss) pair of answers (ties count half)."""
    hits = np.array([bool(p["hit"][answer(p)]) for p in pages])
    values = np.array([confidence(p) for p in pages])
    if hits.all() or not hits.any():
        return "-"
    above = (values[hits][:, None] > values[~hits][None, :]).mean() + 0.5 * (
        values[hits][:, None] == values[~hits][None, :]
    ).mean()
    return f"{above:.2f}"


def share_of_odds(page: dict) -> float:
    """The answer's share of the candidates' odds: its chance of being Waldo if he is one of them."""
    return float(expit(share_log_odds(page["second"], STAGE.candidates)[answer(page)]))


def searched(args) -> tuple[dict, dict]:
    """Each held-out page's spots scored as they are and on the page stretched, per kind of page."""
    if args.runs:
        models = [
            (
                run / "checkpoints" / "last.ckpt",
                list(run_config(run).data.root),
                {p["page"] for p in json.loads((run / "metrics.json").read_text())["pages"]},
            )
            for run in args.runs
        ]
    else:
        training = json.loads(args.record.read_text())["training"]
        models = [(args.model, training["data"]["root"], set(training["data"]["val_pages"]))]
    plain, photo_stretched, collections = {}, {}, {}
    for model, root, held_out in models:
        net, stage, bf16 = load_for_search(model, setting=None)
        if stage is None:
            raise SystemExit(f"{model}: has no second stage")
        if tuple(root) not in collections:
            collections[tuple(root)] = load_collections(root)
        for page in (p for p in collections[tuple(root)] if p.name in held_out):
            kind = "photos" if page.name.startswith("webcam") else "scans"
            plain.setdefault(kind, []).append(
                scored(net, stage, bf16, tuple(args.scales), page.image, page.waldo_boxes)
            )
            photo_stretched.setdefault(kind, []).append(
                scored(net, stage, bf16, tuple(args.scales), stretched(page.image), page.waldo_boxes, variants=False)
            )
    return plain, photo_stretched


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=REPO / "waldo_pl" / "weights" / "waldo.pt")
    parser.add_argument("--record", type=Path, default=REPO / "waldo_pl" / "weights" / "waldo.json")
    parser.add_argument(
        "--scales",
        type=float,
        nargs="+",
        default=list(PREDICT.scales),
        help="the scales searched (predict.py's default scales)",
    )
    parser.add_argument(
        "--runs", type=Path, nargs="+", help="run folders of a cross-validation, in place of --model and --record"
    )
    parser.add_argument(
        "--keep", type=Path, help="write every held-out spot's scores here (JSON), to try other rankings on"
    )
    parser.add_argument(
        "--scores", type=Path, nargs="+", help="--keep files to pool and rank again, in place of searching"
    )
    parser.add_argument(
        "--calibrate",
        type=Path,
        metavar="OUT.json",
        help="fit Platt scaling of the answers' share of the candidates' odds on every answer, for waldo-export",
    )
    args = parser.parse_args()
    if args.scores:
        plain, photo_stretched = {}, {}
        for group, path in enumerate(args.scores):
            kept = json.loads(path.read_text())
            for rows, name in ((plain, "plain"), (photo_stretched, "stretched")):
                for kind, pages in kept[name].items():
                    rows.setdefault(kind, []).extend(
                        {**{key: np.array(value) for key, value in page.items()}, "group": group} for page in pages
                    )
    else:
        plain, photo_stretched = searched(args)
    if args.keep:
        args.keep.write_text(
            json.dumps(
                {
                    name: {
                        kind: [{key: value.tolist() for key, value in page.items()} for page in pages]
                        for kind, pages in rows.items()
                    }
                    for name, rows in (("plain", plain), ("stretched", photo_stretched))
                }
            )
        )

    options = {
        "first stage alone": (plain, lambda p: p["first"], SPOTS),
        "re-ranking 5": (plain, lambda p: p["second"], 5),
        "re-ranking 3, no margin": (plain, lambda p: p["second"], 3),
        f"re-ranking {STAGE.candidates}, margin {STAGE.margin:g} (predict.py's default)": (
            plain,
            with_margin(STAGE.margin),
            STAGE.candidates,
        ),
        "re-ranking 10": (plain, lambda p: p["second"], 10),
        "pages stretched to percentiles 1..99": (photo_stretched, lambda p: p["second"], 5),
        "pages stretched, first stage alone": (photo_stretched, lambda p: p["first"], SPOTS),
        f"pages stretched, re-ranking {STAGE.candidates}, margin {STAGE.margin:g}": (
            photo_stretched,
            with_margin(STAGE.margin),
            STAGE.candidates,
        ),
        "pages stretched, Waldo among the first stage's 5 best": (
            photo_stretched,
            lambda p: p["hit"].astype(float),
            5,
        ),  # a hit scores best
        "second stage averaged with its mirror": (plain, lambda p: p["second"] + p["mirror"], 5),
        "second stage averaged over windows x0.8, x1, x1.25": (
            plain,
            lambda p: p["second"] + p["narrow"] + p["wide"],
            5,
        ),
        **{
            f"second + {lam} x first stage's log-odds": (plain, lambda p, lam=lam: p["second"] + lam * p["first"], 5)
            for lam in (0.1, 0.25, 0.5, 1.0, 2.0, 4.0)
        },
        **{
            f"the first stage's answer unless the second is surer of another by {margin}, re-ranking 5": (
                plain,
                with_margin(margin),
                5,
            )
            for margin in (1, 2, 3)
        },
    }
    kinds = sorted(plain)
    print("| option | " + " | ".join(f"{kind} ({len(plain[kind])})" for kind in kinds) + " | all |")
    print("| --- |" + " --- |" * (len(kinds) + 1))
    for name, (rows, score, k) in options.items():
        counts = [found(rows[kind], score, k) for kind in kinds]
        print(f"| {name} | " + " | ".join(map(str, counts)) + f" | {sum(counts)} |")
    among = [sum(bool(p["hit"][:5].any()) for p in plain[kind]) for kind in kinds]
    print("| Waldo among the first stage's 5 best | " + " | ".join(map(str, among)) + f" | {sum(among)} |")
    print(
        "\nHow often a right answer's confidence is above a wrong one's (pairs of answers at predict.py's default):\n"
    )
    print("| confidence | " + " | ".join(kinds) + " | all |")
    print("| --- |" + " --- |" * (len(kinds) + 1))
    # each confidence, and the same as log-odds (what a Platt scaling maps)
    share = lambda p: float(share_log_odds(p["second"], STAGE.candidates)[answer(p)])
    confidences = {
        "the answer's second-stage score": (score_of_answer, score_of_answer),
        "the answer's share of the candidates' odds (predict.py's, before calibration)": (share_of_odds, share),
    }
    pooled = [p for kind in kinds for p in plain[kind]]
    for name, (confidence, _) in confidences.items():
        print(
            f"| {name} | "
            + " | ".join(separation(plain[kind], confidence) for kind in kinds)
            + f" | {separation(pooled, confidence)} |"
        )
    if args.scores and len(args.scores) > 1:
        for name, (
            _,
            log_odds,
        ) in confidences.items():  # each file a run, its answers calibrated by a fit on the others'
            answers = [
                {"page": i, "hit": bool(p["hit"][answer(p)]), "log_odds": log_odds(p), "group": p["group"]}
                for i, p in enumerate(pooled)
            ]
            runs = [(None, None, [a for a in answers if a["group"] == group]) for group in range(len(args.scores))]
            print(f"\n{name}, Platt-scaled. {cross_fitted_calibration(runs)}")
    if (
        args.calibrate
    ):  # for waldo-export --confidence share --calibration, written as waldo-crossval --calibrate writes it
        answers = [{"hit": bool(p["hit"][answer(p)]), "log_odds": share(p)} for p in pooled]
        runs = ", ".join(str(path) for path in args.scores or args.runs)
        print("\nThe share, " + write_calibration(args.calibrate, answers, runs, "share"))


def score_of_answer(page: dict) -> float:
    return float(page["second"][answer(page)])


if __name__ == "__main__":
    main()
