"""Train the second stage of finished cross-validation runs again, at other seeds and mined counts, leaving each
first stage as it is: a second-stage setting's effect told apart from the noise of retraining the stage.

    python bench/stage_seeds.py --runs outputs/photo_folds/* [--mined 9 15] [--seeds 1 2] [--out rows.json] [--candidates 3]
    python bench/stage_seeds.py --runs outputs/photo_folds/* --out-of-fold [--seeds 0 1 2] [--mined 9] --out oof.json
    python bench/stage_seeds.py --runs outputs/photo_folds/* --context 5 [--seeds 0 1 2] [--mined 9] --out context5.json
    python bench/stage_seeds.py --rows rows.json [more.json ...] [--candidates 5]   # kept rows summarised again
    python bench/stage_seeds.py --rows rows.json --setting "mined 15, seed 0" [--folds fold4 fold5] \
        --calibrate calibration.json | --calibrated-by calibration.json   # a setting's held-out confidence

For each run, its first stage's best spots on its training pages are mined once (at the most `--mined`, kept in
the run's folder as mined_spots.json; the first N of them are what mining N gives, the search being greedy), and its
held-out pages are searched once (predict.py's scales, the first stage's 5 best spots). Then for each seed
and mined count a second stage is fitted with the run's own settings (`waldo-second-stage`'s) and re-ranks the held-out
spots. The run's stored stage re-ranks them too, as a check against `waldo-crossval --candidates`. Prints the pages
found per kind of page (photos: the pages named webcam_*) for each setting, per fold and in all, and for each mined
count fitted at several seeds, what their mean log-odds find (an ensemble of those stages).

--out-of-fold: each training page that another run holds out is mined by that run's first stage, which never trained
on it (its held-out pages' best spots, kept as held_spots.json), the others as above. So the second stage learns
from false spots, and Waldo regions, as a first stage makes them on a page it never saw, as on the held-out pages.
(That other first stage did train on this run's held-out pages; the second stage sees none of their pixels.)
"""

import argparse
import json
import re
import time
from pathlib import Path

import numpy as np
from hydra.utils import instantiate
from omegaconf import OmegaConf

from waldo_pl import CONF_DIR
from waldo_pl.crossval.calibrate import apply_calibration, write_calibration
from waldo_pl.crossval.runs import run_config
from waldo_pl.data import spot_windows
from waldo_pl.data.page import distance_to_boxes
from waldo_pl.inference.device import load_for_search
from waldo_pl.inference.rerank import spot_scores
from waldo_pl.inference.search import SearchSettings, search
from waldo_pl.models.checkpoint import network_from, read_checkpoint
from waldo_pl.precision import is_bf16
from waldo_pl.second_stage.training import fit_second_stage, mine_training_spots, run_settings

SPOTS = 5  # the first stage's spots kept for each held-out page
CANDIDATES = OmegaConf.load(CONF_DIR / "second_stage" / "default.yaml").candidates


def answer(page: dict, k: int, margin: float = 0.0) -> int:
    """The spot answered among the first k: the best by the second stage's score, the first stage's best
    spot given `margin` log-odds more (the second stage's `margin`, conf/second_stage)."""
    scores = np.array(page["score"][:k], dtype=np.float64)
    scores[0] += margin
    return int(np.argmax(scores))


def found(pages: list[dict], k: int, margin: float = 0.0) -> dict:
    """Per kind of page, whether the answer among the first k spots hits Waldo."""
    out = {}
    for p in pages:
        out.setdefault(p["kind"], []).append(p["hit"][answer(p, k, margin)])
    return out


def kind(page) -> str:
    return "photos" if page.name.startswith("webcam") else "scans"


def stale(kept: dict, count: int, scales: tuple) -> bool:
    """Whether kept spots are too few or were mined at other scales (files from before scales were kept say none)."""
    return kept.get("mined", 0) < count or kept.get("scales", list(scales)) != list(scales)


def held_out_spots(run: Path, count: int, scales: tuple) -> dict[str, list[dict]]:
    """The run's first stage's best `count` spots on each of its held-out pages, by page name (cached beside it)."""
    cache = run / "held_spots.json"
    kept = json.loads(cache.read_text()) if cache.is_file() else {}
    if stale(kept, count, scales):
        cfg = run_config(run)
        datamodule = instantiate(cfg.data)
        datamodule.setup("fit")
        ckpt = run / "checkpoints" / "last.ckpt"
        spots = mine_training_spots(
            network_from(read_checkpoint(ckpt, None), str(ckpt)),
            datamodule.val_pages,
            count,
            scales,
            is_bf16(cfg.trainer.get("precision", "auto")),
        )
        kept = {
            "mined": count,
            "scales": list(scales),
            "spots": {page.name: s for page, s in zip(datamodule.val_pages, spots)},
        }
        cache.write_text(json.dumps(kept))
    return {name: spots[:count] for name, spots in kept["spots"].items()}


def fold_rows(
    run: Path, mined: list[int], seeds: list[int], scales: tuple, elsewhere: dict[str, list[dict]] | None = None
) -> list[dict]:
    """One row per setting (stored stage, then each seed x mined): which held-out pages it found. With `elsewhere`
    (spots by page name, mined by first stages that held those pages out), training pages found there learn from
    those spots instead of this run's."""
    cfg = run_config(run)
    settings = run_settings(cfg)
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    ckpt = run / "checkpoints" / "last.ckpt"
    bf16 = is_bf16(cfg.trainer.get("precision", "auto"))
    cache = run / "mined_spots.json"
    kept = json.loads(cache.read_text()) if cache.is_file() else {}
    if stale(kept, max(mined), scales):
        started = time.perf_counter()
        spots = mine_training_spots(
            network_from(read_checkpoint(ckpt, None), str(ckpt)), datamodule.train_pages, max(mined), scales, bf16
        )
        kept = {"mined": max(mined), "scales": list(scales), "spots": spots}
        cache.write_text(json.dumps(kept))
        print(f"{run}: mined {len(spots)} pages in {time.perf_counter() - started:.0f} s", flush=True)
    # the held-out pages as waldo-crossval searches them: the PyTorch graph, the first stage's SPOTS best spots
    net, stage, bf16 = load_for_search(ckpt, "auto", "auto", "torch", None)
    held = []
    for page in datamodule.val_pages:
        _, spots = search(net, page.image, SearchSettings(scales=scales, flip=False, candidates=SPOTS - 1, bf16=bf16))
        held.append((page, spots, [int(distance_to_boxes(s.x, s.y, page.waldo_boxes) == 0) for s in spots]))

    def row(name: str, stage_net) -> dict:
        pages = [
            {
                "page": page.name,
                "kind": kind(page),
                "hit": hits,
                "score": spot_scores(stage_net, page.image, spots, bf16).tolist(),
            }
            for page, spots, hits in held
        ]
        return {"run": str(run), "setting": name, "pages": pages}

    rows = [row("stored stage", stage.net)]
    fit = {key: settings[key] for key in ("steps", "batch_size", "lr", "photo_look", "width")}
    train_spots, prefix = kept["spots"], ""
    if elsewhere is not None:
        train_spots = [elsewhere.get(page.name, own) for page, own in zip(datamodule.train_pages, kept["spots"])]
        prefix = "out-of-fold, "
        print(
            f"{run}: {sum(page.name in elsewhere for page in datamodule.train_pages)} training pages mined out of fold",
            flush=True,
        )
    for seed in seeds:
        for count in mined:
            started = time.perf_counter()
            stage_net = fit_second_stage(datamodule.train_pages, [s[:count] for s in train_spots], seed=seed, **fit)
            rows.append(row(f"{prefix}mined {count}, seed {seed}", stage_net))
            print(
                f"{run}: mined {count}, seed {seed}: {found(rows[-1]['pages'], CANDIDATES)} ({time.perf_counter() - started:.0f} s)",
                flush=True,
            )
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, nargs="+", help="train.py run folders of a cross-validation")
    parser.add_argument("--mined", type=int, nargs="+", default=[9, 15])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 1.25])
    parser.add_argument("--candidates", type=int, default=CANDIDATES, help="spots re-ranked (conf/second_stage's)")
    parser.add_argument(
        "--margin", type=float, default=0.0, help="log-odds given to the first stage's best spot (second_stage.margin)"
    )
    parser.add_argument(
        "--out-of-fold",
        action="store_true",
        help="training pages another run holds out learn from that run's spots on them",
    )
    parser.add_argument(
        "--context",
        type=float,
        help="windows this many times the spot region's side (the recipe's "
        f"{spot_windows.CONTEXT:g}), the largest window as much larger, to train and re-rank; rows named so",
    )
    parser.add_argument("--out", type=Path, help="write every row here (JSON), run by run")
    parser.add_argument("--rows", type=Path, nargs="+", help="--out files to summarise again, in place of training")
    parser.add_argument("--folds", nargs="+", help="with --rows: only these runs (their folder names)")
    parser.add_argument(
        "--setting", help="with --rows: the setting whose held-out answers --calibrate fits or --calibrated-by checks"
    )
    parser.add_argument(
        "--calibrate",
        type=Path,
        metavar="OUT.json",
        help="Platt scaling fitted on them, for waldo-export --calibration",
    )
    parser.add_argument(
        "--calibrated-by", type=Path, metavar="CALIBRATION.json", help="their reliability under another fit"
    )
    args = parser.parse_args()
    if args.rows:
        rows = with_ensembles([r for path in args.rows for r in json.loads(path.read_text())])
        if args.folds:
            rows = [r for r in rows if Path(r["run"]).name in args.folds]
        if args.setting:  # the chosen setting's held-out answers: their confidence calibrated here or by other answers
            chosen = [
                (p, answer(p, args.candidates, args.margin))
                for r in rows
                if r["setting"] == args.setting
                for p in r["pages"]
            ]
            answers = [{"log_odds": p["score"][i], "hit": p["hit"][i]} for p, i in chosen]
            if not answers:
                parser.error(f"--setting {args.setting!r}: not among {sorted({r['setting'] for r in rows})}")
            where = Path(f"{args.setting} through {', '.join(sorted({Path(r['run']).name for r in rows}))}")
            if args.calibrate:
                print(write_calibration(args.calibrate, answers, where))
            if args.calibrated_by:
                print(apply_calibration(args.calibrated_by, answers, where))
        return summary(rows, args.candidates, args.margin)
    if not args.runs:
        parser.error("give --runs (or --rows)")
    if args.context is not None and args.context <= 0:
        parser.error(f"--context {args.context}: must be positive")
    if args.context:
        spot_windows.MAX_SIDE = round(spot_windows.MAX_SIDE * args.context / spot_windows.CONTEXT)
        spot_windows.CONTEXT = args.context
    held = (
        {run: held_out_spots(run, max(args.mined), tuple(args.scales)) for run in args.runs} if args.out_of_fold else {}
    )
    rows = []
    for run in args.runs:
        elsewhere = {name: s for other, spots in held.items() if other != run for name, s in spots.items()}
        found_rows = fold_rows(run, args.mined, args.seeds, tuple(args.scales), elsewhere if args.out_of_fold else None)
        if args.context:  # the stored stage was trained with the recipe's windows: its row would mislead
            found_rows = [
                {**r, "setting": f"context {args.context:g}, {r['setting']}"}
                for r in found_rows
                if r["setting"] != "stored stage"
            ]
        rows += found_rows
        if args.out:
            args.out.write_text(json.dumps(rows))
    summary(with_ensembles(rows), args.candidates, args.margin)


def with_ensembles(rows: list[dict]) -> list[dict]:
    """The rows, and for each mined count fitted at several seeds on every run, their mean score as one more
    setting (what an ensemble of those stages answers)."""
    fitted = {}
    for r in rows:
        match = re.fullmatch(r"mined (\d+), seed (\d+)", r["setting"])
        if match:
            fitted.setdefault(int(match[1]), {}).setdefault(int(match[2]), {})[r["run"]] = r
    runs = list(dict.fromkeys(r["run"] for r in rows))
    for count, seeds in fitted.items():
        seeds = {seed: by_run for seed, by_run in seeds.items() if all(run in by_run for run in runs)}
        if len(seeds) < 2:
            continue
        name = f"mined {count}, mean of seeds {', '.join(map(str, sorted(seeds)))}"
        for run in runs:
            members = [seeds[seed][run]["pages"] for seed in sorted(seeds)]
            pages = [
                {**same[0], "score": np.mean([p["score"] for p in same], axis=0).tolist()} for same in zip(*members)
            ]
            rows.append({"run": run, "setting": name, "pages": pages})
    return rows


def summary(rows: list[dict], k: int, margin: float = 0.0) -> None:
    """The pages found re-ranking k spots (with `margin`), per setting: per fold and in all, per kind of page."""
    kinds = sorted({p["kind"] for r in rows for p in r["pages"]})
    runs = list(dict.fromkeys(r["run"] for r in rows))
    print(f"\nre-ranking {k}, margin {margin:g}; per fold ({', '.join(Path(r).name for r in runs)}), then in all\n")
    print("| setting | per fold | " + " | ".join(kinds) + " | all |\n| --- | --- |" + " --- |" * (len(kinds) + 1))
    for name in dict.fromkeys(r["setting"] for r in rows):
        mine = [r for r in rows if r["setting"] == name]
        folds = " ".join(str(sum(sum(v) for v in found(r["pages"], k, margin).values())) for r in mine)
        counts = [[n for r in mine for n in found(r["pages"], k, margin).get(kind, [])] for kind in kinds]
        print(
            f"| {name} | {folds} | "
            + " | ".join(f"{sum(c)}/{len(c)}" for c in counts)
            + f" | {sum(map(sum, counts))}/{sum(map(len, counts))} |"
        )


if __name__ == "__main__":
    main()
