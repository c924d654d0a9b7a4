"""Cross-validate the second stage over pages a fixed first stage never saw.

    python bench/second_stage_cv.py --model waldo_pl/weights/waldo.pt --test ../shared/data/waldo-dm ../shared/data/waldo-photos \
        --train ../shared/data/waldo [--folds 5 --seed 0 --steps 1000 --candidates 3 5 10] [--side 64]

The first stage's spots on every page (predict.py's scales, the 10 best) are mined once and kept in
--cache. The `--test` pages are split into folds by scene (a photo's spread and its scan together, from
waldo-photos/scenes.csv); for each fold a second stage is trained on the `--train` pages and the other
folds, and re-ranks the held-out pages. Honest only where the first stage did not train on the `--test`
pages. `--held-out RECORD` instead holds out one fold: the validation pages of the run that trained the first
stage (its record, `waldo_pl/weights/waldo.json` for the bundled model), so that the `--test` pages it trained on
train the second stage too. Prints, per collection, the first stage's hits, the hits after re-ranking the best K spots, how
often Waldo was among them, and what the second stage's own confidence means on the held-out answers.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np

from waldo_pl.calibration import fit_platt
from waldo_pl.data import spot_stream, spot_windows
from waldo_pl.data.formats import load_pages, read_groups
from waldo_pl.data.page import distance_to_boxes
from waldo_pl.inference.answer import Spot
from waldo_pl.inference.device import load_for_search
from waldo_pl.inference.report import reliability_table
from waldo_pl.inference.rerank import spot_scores
from waldo_pl.inference.search import SearchSettings
from waldo_pl.second_stage.training import fit_second_stage, mine_spots

MINED = 10


def scene_groups(pages: dict) -> dict:
    """(collection, page) -> group: a photo's spread, with the scan of that spread; else the page itself."""
    groups = {key: key for key in pages}
    for folder in {Path(k[0]) for k in pages}:
        if (folder / "scenes.csv").is_file():
            scenes = read_groups(folder / "scenes.csv")
            groups.update({key: scenes[key[1]] for key in pages if key[1] in scenes})
    return groups


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument(
        "--test", type=Path, nargs="+", required=True, help="labelled folders the first stage never saw"
    )
    parser.add_argument(
        "--train", type=Path, nargs="*", default=[], help="labelled folders that always train the second stage"
    )
    parser.add_argument("--cache", type=Path, default=Path("second_stage_spots.json"))
    split = parser.add_mutually_exclusive_group()
    split.add_argument("--folds", type=int, default=5)
    split.add_argument(
        "--held-out", type=Path, help="a run's record (JSON): hold out its training.data.val_pages, one fold"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--photo-look", type=float, default=0.25)
    parser.add_argument("--width", type=int, default=16, help="channels of SpotNet's first layer")
    parser.add_argument(
        "--side", type=int, help="cut every window this many page px wide, instead of 3 times the spot's region"
    )
    parser.add_argument("--candidates", type=int, nargs="+", default=[3, 5, 10])
    parser.add_argument("--out", type=Path, help="also write each held-out page's spots, hits and scores here (JSON)")
    args = parser.parse_args()
    if args.side:  # one window side for every spot, in training (true Waldos, mined and random spots) and scoring
        spot_windows.MIN_SIDE = spot_windows.MAX_SIDE = spot_windows.DEFAULT_SIDE = args.side
        spot_stream.MIN_SIDE, spot_stream.MAX_SIDE = args.side, 2 * args.side

    pages = {(str(root), p.name): p for root in [*args.train, *args.test] for p in load_pages(root)}
    cache = json.loads(args.cache.read_text()) if args.cache.is_file() else {}
    todo = [k for k in pages if "/".join(k) not in cache]
    if todo:
        net, _, bf16 = load_for_search(args.model, second_stage=False)
        started = time.perf_counter()
        for key, spots in zip(
            todo,
            mine_spots(
                net,
                [pages[k] for k in todo],
                SearchSettings(scales=(1.0, 1.25), flip=False, candidates=MINED - 1, bf16=bf16),
            ),
        ):
            cache["/".join(key)] = spots
        args.cache.write_text(json.dumps(cache))
        print(f"mined {len(todo)} pages in {time.perf_counter() - started:.0f} s")
    spots = {k: cache["/".join(k)] for k in pages}

    groups = scene_groups(pages)
    test_groups = sorted({groups[k] for k in pages if Path(k[0]) in args.test}, key=str)
    np.random.default_rng(args.seed).shuffle(test_groups)
    fold_of = {g: i % args.folds for i, g in enumerate(test_groups)}
    if args.held_out:
        val_pages = set(json.loads(args.held_out.read_text())["training"]["data"]["val_pages"])
        args.folds = 1
        fold_of = {g: 0 if any(groups[k] == g and k[1] in val_pages for k in pages) else -1 for g in test_groups}
    results = []
    for fold in range(args.folds):
        # a held-out photo's scan leaves training too, but only --test pages are scored
        held_out = [k for k in pages if Path(k[0]) in args.test and fold_of[groups[k]] == fold]
        training = [k for k in pages if groups[k] not in {groups[h] for h in held_out}]
        started = time.perf_counter()
        net = fit_second_stage(
            [pages[k] for k in training],
            [spots[k] for k in training],
            steps=args.steps,
            photo_look=args.photo_look,
            width=args.width,
            seed=args.seed,
        )
        for key in held_out:
            page, found = pages[key], [Spot(s["x"], s["y"], s["confidence"], s["box"]) for s in spots[key]]
            results.append(
                {
                    "collection": Path(key[0]).name,
                    "page": key[1],
                    "hit": [distance_to_boxes(s.x, s.y, page.waldo_boxes) == 0 for s in found],
                    "score": spot_scores(net, page.image, found, bf16=True).tolist(),
                }
            )
        print(
            f"fold {fold}: trained on {len(training)} pages, {len(held_out)} held out, {time.perf_counter() - started:.0f} s",
            flush=True,
        )

    if args.out:
        args.out.write_text(json.dumps(results))
    for collection in sorted({r["collection"] for r in results}):
        rows = [r for r in results if r["collection"] == collection]
        line = f"{collection}: {len(rows)} pages; first stage {sum(r['hit'][0] for r in rows)}"
        for k in args.candidates:
            line += f"; re-ranking {k}: {sum(r['hit'][int(np.argmax(r['score'][:k]))] for r in rows)} (Waldo among them on {sum(any(r['hit'][:k]) for r in rows)})"
        print(line)
    for k in args.candidates:
        answers = [(max(r["score"][:k]), r["hit"][int(np.argmax(r["score"][:k]))]) for r in results]
        scores, right = [a[0] for a in answers], [a[1] for a in answers]
        pages_k = [{"hit": int(h), "confidence": float(1 / (1 + np.exp(-s)))} for s, h in answers]
        a, b = fit_platt(scores, right)
        print(
            f"\nre-ranking {k}, the second stage's own confidence on the held-out answers (Platt fit there: a={a:.3f}, b={b:.3f}):\n"
        )
        print(reliability_table(pages_k))


if __name__ == "__main__":
    main()
