"""Pages found by a second stage at other test-time settings, read off the scores that bench/second_stage_folds.py
kept (--out), without training again: for each number of candidates re-ranked and each margin (log-odds given to the
first stage's best), the pages found, scans and photos.

    python bench/rerank_grid.py answers.json [more.json ...] [--variant recipe] [--candidates 2 3 4 5] [--margins 0 1 2 3 4]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from waldo_pl.inference.rerank import reranked_order


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("answers", type=Path, nargs="+", help="files written by bench/second_stage_folds.py --out")
    parser.add_argument("--variant", default="recipe")
    parser.add_argument("--candidates", type=int, nargs="+", default=[2, 3, 4, 5])
    parser.add_argument("--margins", type=float, nargs="+", default=[0, 1, 2, 3, 4])
    args = parser.parse_args()
    rows = [row for path in args.answers for row in json.loads(path.read_text())]
    print(f"{len(rows)} pages; each cell: all (scans + photos)\n")
    print("| candidates | " + " | ".join(f"margin {m:g}" for m in args.margins) + " |")
    print("| --- |" + " --- |" * len(args.margins))
    for k in args.candidates:
        cells = []
        for m in args.margins:
            found = {"scans": 0, "photos": 0}
            for r in rows:
                answer = reranked_order(r["answers"][args.variant]["scores"], k, m)[0]
                found["photos" if r["collection"] == "waldo-photos" else "scans"] += r["hits"][answer]
            cells.append(f"{found['scans'] + found['photos']} ({found['scans']} + {found['photos']})")
        print(f"| {k} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
