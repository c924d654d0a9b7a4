"""The second stage's fit with its windows made in the training process or in worker processes, timed in one run
(interleaved, best of --repeat), on the shared pages with random spots standing in for the first stage's.

    python bench/second_stage_speed.py [--steps 300] [--repeat 2] [--workers 0 1]

Prints seconds for --steps SpotNet steps (batch 64, a quarter of the windows photo-like, as the recipe) and each
against the first; `waldo_pl.second_stage.training.WINDOW_WORKERS` is what a fold uses.
"""

import argparse
import time
from pathlib import Path

import numpy as np

from waldo_pl.data.formats import load_pages
from waldo_pl.second_stage import training

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "waldo"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1])
    args = parser.parse_args()
    pages = load_pages(SHARED)
    rng = np.random.default_rng(0)
    spots = [
        [{"x": float(rng.uniform(0, p.width)), "y": float(rng.uniform(0, p.height)), "box": None} for _ in range(9)]
        for p in pages
    ]
    best = {}
    for _ in range(args.repeat):
        for workers in args.workers:
            training.WINDOW_WORKERS = workers
            start = time.perf_counter()
            training.fit_second_stage(pages, spots, steps=args.steps, photo_look=0.25)
            best[workers] = min(best.get(workers, float("inf")), time.perf_counter() - start)
    first = best[args.workers[0]]
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    print(f"{cpu}, {len(pages)} pages, {args.steps} steps, best of {args.repeat}:")
    for workers, seconds in best.items():
        print(f"  windows made in {workers} worker(s): {seconds:.1f} s ({first / seconds:.2f}x)")


if __name__ == "__main__":
    main()
