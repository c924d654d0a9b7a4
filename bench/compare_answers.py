"""Held-out answers kept by `waldo-crossval --keep`, compared way by way: pages found per fold (scans and photos), pooled,
and the share of pages whose answer is the same spot as the first way's.

    python bench/compare_answers.py whole='bench/folds/quick_s1_f*.whole.json' windows5='bench/folds/quick_s1_f*.win5.json'

Each argument is NAME=GLOB; a page is a photo when its name starts with `webcam` (../waldo-photos), else a scan.
"""

import argparse
import glob
import json
from collections import defaultdict

SAME_SPOT_PX = 16  # answers this close are the same spot


def answers(pattern: str) -> dict[tuple[str, str, str], dict]:
    """(fold, seed, page) -> the kept answer, over every file the glob matches."""
    kept = {}
    for path in sorted(glob.glob(pattern)):
        for row in json.load(open(path)):
            kept[(str(row["fold"]), str(row["seed"]), row["page"])] = row
    if not kept:
        raise SystemExit(f"error: {pattern}: no kept answers")
    return kept


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ways", nargs="+", metavar="NAME=GLOB")
    args = parser.parse_args()
    ways = {name: answers(pattern) for name, _, pattern in (w.partition("=") for w in args.ways)}
    first_name, first = next(iter(ways.items()))
    folds = sorted({(fold, seed) for fold, seed, _ in first})
    print(
        f"| way | {' | '.join(f'fold {f} (seed {s})' for f, s in folds)} | scans | photos | all | same spot as {first_name} |"
    )
    print("| --- |" + " --- |" * (len(folds) + 4))
    for name, kept in ways.items():
        if set(kept) != set(first):
            raise SystemExit(f"error: {name}: not the same pages as {first_name}")
        per_fold, found = defaultdict(int), defaultdict(lambda: [0, 0])
        same = 0
        for key, row in kept.items():
            per_fold[key[:2]] += row["hit"]
            kind = "photos" if key[2].startswith("webcam") else "scans"
            found[kind][0] += row["hit"]
            found[kind][1] += 1
            other = first[key]
            same += abs(row["x"] - other["x"]) <= SAME_SPOT_PX and abs(row["y"] - other["y"]) <= SAME_SPOT_PX
        cells = [f"{per_fold[f]}" for f in folds]
        scans, photos = found["scans"], found["photos"]
        print(
            f"| {name} | {' | '.join(cells)} | {scans[0]}/{scans[1]} | {photos[0]}/{photos[1]} | "
            f"{scans[0] + photos[0]}/{len(kept)} | {same}/{len(kept)} |"
        )


if __name__ == "__main__":
    main()
