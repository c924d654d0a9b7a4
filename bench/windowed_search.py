"""The windowed search (predict.py's windows=N) against the whole search, page by page, in one process: the share of
pages whose answer is the same spot, the pages found each way where they are labelled, and the time each way.

    python bench/windowed_search.py FOLDER [FOLDER ...] [--model waldo_pl/weights/waldo.pt] [--windows 5 8]

The model's own training pages say how alike the two searches answer, not how often either finds Waldo on pages it
never saw: for that, search the held-out pages of a cross-validation both ways (waldo-crossval --scales 1 1.25
--flip [--windows N]).
"""

import argparse
import dataclasses
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from waldo_pl.data.formats import load_pages  # noqa: E402
from waldo_pl.inference.answer import distance_to_boxes  # noqa: E402
from waldo_pl.inference.device import described, load_for_search  # noqa: E402
from waldo_pl.inference.search import PREDICT, search  # noqa: E402
from waldo_pl.weights import bundled_model  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", type=Path, nargs="+")
    parser.add_argument("--model", type=Path, default=bundled_model())
    parser.add_argument("--windows", type=int, nargs="+", default=[5, 8])
    args = parser.parse_args()
    net, stage, bf16 = load_for_search(args.model)
    print(f"{args.model}: {described(net, bf16)}")
    print("| folder | search | pages | same answer as whole | found | top-5 | seconds a page |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for folder in args.folders:
        pages = load_pages(folder)
        answers, seconds = {}, {}
        for windows in (0, *args.windows):
            settings = dataclasses.replace(PREDICT, bf16=bf16, windows=windows)
            search(net, pages[0].image, settings, stage)  # compiled for the first page's sizes before the clock
            start = time.perf_counter()
            answers[windows] = [search(net, page.image, settings, stage)[1] for page in pages]
            seconds[windows] = (time.perf_counter() - start) / len(pages)
        for windows, spots in answers.items():
            same = sum((s[0].x, s[0].y) == (w[0].x, w[0].y) for s, w in zip(spots, answers[0]))
            found = sum(distance_to_boxes(s[0].x, s[0].y, p.waldo_boxes) == 0 for s, p in zip(spots, pages))
            top5 = sum(
                any(distance_to_boxes(x.x, x.y, p.waldo_boxes) == 0 for x in s[:5]) for s, p in zip(spots, pages)
            )
            label = "whole page, every pass" if not windows else f"windows={windows}"
            print(
                f"| {folder.name} | {label} | {len(pages)} | {same}/{len(pages)} | {found} | {top5} | "
                f"{seconds[windows]:.2f} ({seconds[windows] / seconds[0]:.2f}x) |",
                flush=True,
            )


if __name__ == "__main__":
    main()
