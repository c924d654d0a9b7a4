"""Which scales to search, tried on a cross-validation's held-out pages with no training: each page is searched
once at every scale asked for (with --flip, each scale's map the mean of the page's and its mirror's, as the search
does), and each set of scales combines those maps per pixel by the best log-odds (merge=max) or, a set written
"mean: 1 1.25", by their mean (merge=mean, the search's default), so a set costs no search of its own. For each set: the pages found by the first stage alone, by the
two stages as predict.py answers (the run's second stage re-ranking `--candidates` spots with `--margin`, the
conf's unless given), and
Waldo among the first stage's 5 best, per kind of page (photos: the pages named webcam_*), per fold and in all.

    python bench/scale_sets.py --runs outputs/photo_folds/<the six folds> --sets "1 1.25" "0.8 1 1.25" "0.67 1 1.25" [--candidates 3 --margin 2]
    python bench/scale_sets.py --runs <folds> --flip --sets "1 1.25" "mean: 1 1.25"
"""

import argparse
import dataclasses
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import OmegaConf

from waldo_pl import CONF_DIR
from waldo_pl.crossval.runs import run_config
from waldo_pl.data.page import distance_to_boxes
from waldo_pl.inference.answer import find_spots
from waldo_pl.inference.device import load_for_search
from waldo_pl.inference.heatmap import MERGES, log_odds_at_scales, merge_maps
from waldo_pl.inference.rerank import rerank
from waldo_pl.inference.search import PREDICT

STAGE = OmegaConf.load(CONF_DIR / "second_stage" / "default.yaml")
TOP = 5


def label(merged: tuple[str, tuple[float, ...]]) -> str:
    merge, scales = merged
    return ("" if merge == "max" else f"{merge}: ") + " ".join(map(str, scales))


def kind(name: str) -> str:
    return "photos" if name.startswith("webcam") else "scans"


def parse_set(text: str) -> tuple[str, tuple[float, ...]]:
    """'1 1.25' -> ('max', (1.0, 1.25)); 'mean: 1 1.25' -> ('mean', (1.0, 1.25))."""
    merge, _, scales = text.rpartition(":")
    return merge.strip() or "max", tuple(float(x) for x in scales.split())


def fold_found(
    run: Path, sets: list[tuple[str, tuple[float, ...]]], candidates: int, margin: float, flip: bool = False
) -> dict:
    """{set: {"first" | "both" | "top5": [(page name, hit)]}} for the run's held-out pages."""
    cfg = run_config(run)
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    net, stage, bf16 = load_for_search(run / "checkpoints" / "last.ckpt", "auto", "auto", "torch", None)
    stage = dataclasses.replace(stage, candidates=candidates, margin=margin)
    threshold = PREDICT.threshold
    out = {s: {"first": [], "both": [], "top5": []} for s in sets}
    for page in datamodule.val_pages:
        maps = {
            scale: log_odds_at_scales(net, page.image, (scale,), flip, PREDICT.merge, bf16, **PREDICT.tiling)
            for scale in sorted({x for _, s in sets for x in s})
        }

        def hit(spot, page=page) -> bool:
            return bool(distance_to_boxes(spot.x, spot.y, page.waldo_boxes) == 0)

        for merge, scales in sets:
            log_odds = merge_maps((maps[scale] for scale in scales), merge)
            spots = find_spots(log_odds, threshold, count=max(TOP, stage.candidates))
            out[merge, scales]["first"].append((page.name, hit(spots[0])))
            out[merge, scales]["both"].append((page.name, hit(rerank(stage, page.image, spots, bf16)[0])))
            out[merge, scales]["top5"].append((page.name, any(hit(s) for s in spots[:TOP])))
        print(
            f"{run.name} {page.name}: " + ", ".join(f"{label(s)}: {out[s]['both'][-1][1]:d}" for s in sets), flush=True
        )
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--runs", type=Path, nargs="+", required=True, help="train.py run folders of a cross-validation"
    )
    parser.add_argument("--sets", nargs="+", default=["1 1.25"], help="sets of scales, each one quoted string")
    parser.add_argument(
        "--flip", action="store_true", help="search each scale mirrored as well, as predict.py's flip=true"
    )
    parser.add_argument(
        "--candidates", type=int, default=STAGE.candidates, help="spots the second stage re-ranks (conf/second_stage's)"
    )
    parser.add_argument(
        "--margin", type=float, default=STAGE.margin, help="the second stage's margin (conf/second_stage's)"
    )
    args = parser.parse_args()
    try:
        sets = [parse_set(s) for s in args.sets]
    except ValueError:
        parser.error(f'--sets {args.sets}: each set is numbers, e.g. "0.8 1 1.25", or "mean: 1 1.25"')
    if args.candidates < 1 or args.margin < 0:
        parser.error(f"--candidates {args.candidates} --margin {args.margin:g}: 1 or more spots, a margin of 0 or more")
    if any(not s or min(s) <= 0 or merge not in MERGES for merge, s in sets):
        parser.error(f'--sets {args.sets}: each set needs scales above 0, merged by max (no prefix) or "mean:"')
    folds = [fold_found(run, sets, args.candidates, args.margin, args.flip) for run in args.runs]
    print(
        f"\nre-ranking {args.candidates}, margin {args.margin:g}; per fold ({', '.join(r.name for r in args.runs)}), then in all\n"
    )
    print("| scales | answered by | per fold | photos | scans | all |\n| --- | --- | --- | --- | --- | --- |")
    for merged in sets:
        for how, answered in (
            ("first", "first stage alone"),
            ("both", "both stages"),
            ("top5", f"among the first stage's {TOP} best"),
        ):
            per_fold = " ".join(str(sum(hit for _, hit in fold[merged][how])) for fold in folds)
            pages = [found for fold in folds for found in fold[merged][how]]
            counts = {k: [hit for name, hit in pages if kind(name) == k] for k in ("photos", "scans")}
            print(
                f"| {label(merged)} | {answered} | {per_fold} | "
                + " | ".join(f"{sum(c)}/{len(c)}" for c in counts.values())
                + f" | {sum(hit for _, hit in pages)}/{len(pages)} |"
            )


if __name__ == "__main__":
    main()
