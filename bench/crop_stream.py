"""Crops a second that one DataLoader worker makes from the shared pages.

python bench/crop_stream.py [--root ../shared/data/waldo] [--crops 2000]
"""

import argparse
import itertools
import time
from pathlib import Path

import torch

from waldo_pl.data.crops import CropStream
from waldo_pl.data.formats import load_pages


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "waldo")
    parser.add_argument("--crops", type=int, default=2000)
    parser.add_argument("--panel", type=int, default=224)
    parser.add_argument("--zooms", type=float, nargs="+", default=[1.0])
    parser.add_argument("--colour-jitter", type=float, default=0.0)
    parser.add_argument("--photo-look", type=float, default=0.0)
    args = parser.parse_args()
    torch.set_num_threads(1)  # as in a DataLoader worker

    start = time.perf_counter()
    pages = load_pages(args.root)
    loaded = time.perf_counter()
    stream = CropStream(
        pages,
        panel=args.panel,
        prop=0.34,
        seed=0,
        zooms=args.zooms,
        colour_jitter=args.colour_jitter,
        photo_look=args.photo_look,
    )
    ready = time.perf_counter()
    crops = iter(stream)
    next(crops)
    t0 = time.perf_counter()
    for _ in itertools.islice(crops, args.crops):
        pass
    rate = args.crops / (time.perf_counter() - t0)
    print(f"pages: {len(pages)}  boxes: {sum(len(p.waldo_boxes) for p in pages)}")
    print(f"load pages: {loaded - start:.2f} s   build stream: {ready - loaded:.2f} s")
    print(
        f"crops/s, one worker, {args.panel}x{args.panel}, zooms {args.zooms}, colour jitter {args.colour_jitter}, "
        f"photo look {args.photo_look}: {rate:.0f}"
    )


if __name__ == "__main__":
    main()
