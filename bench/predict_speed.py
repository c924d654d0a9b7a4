"""Seconds for one 2800x1760 page: the whole predict.py path, the bare network, and the tutorial's way.

    python bench/predict_speed.py [--page ../shared/data/waldo/images/8.jpg] [--ckpt model.ckpt] [--repeat 3] [--scales 1.0]

The predict.py path searches the page at --scales, by default predict.py's own (conf/predict.yaml).

The tutorial's way: stretch the page to 2800x1760, stretch again to a multiple of 224, cut it into
224 panels, run them in batches of 32 and stitch the panels back. Weights do not change the
times, so without --ckpt the network keeps its initial weights.
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from PIL import Image

from waldo_pl.inference.finder import Finder, load_network, use_bf16
from waldo_pl.inference.heatmap import heatmap, waldo_probability
from waldo_pl.models.seed_net import SeedNet

PANEL = 224
REPO = Path(__file__).resolve().parents[1]


def tutorial_way(net, page: np.ndarray, bf16: bool) -> np.ndarray:
    image = Image.fromarray(page).resize((2800, 1760), Image.NEAREST)
    w, h = (-(-s // PANEL) * PANEL for s in image.size)
    image = np.asarray(image.resize((w, h), Image.BILINEAR), dtype=np.float32) / 255
    rows, cols = h // PANEL, w // PANEL
    panels = image.reshape(rows, PANEL, cols, PANEL, 3).transpose(0, 2, 4, 1, 3).reshape(-1, 3, PANEL, PANEL)
    out = []
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        for i in range(0, len(panels), 32):
            batch = torch.from_numpy(np.ascontiguousarray(panels[i : i + 32])).contiguous(memory_format=torch.channels_last)
            out.append(waldo_probability(net(batch)).numpy())
    return np.concatenate(out).reshape(rows, cols, PANEL, PANEL).transpose(0, 2, 1, 3).reshape(h, w)


def timed(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--page", type=Path, default=REPO.parent / "shared/data/waldo/images/8.jpg")
    parser.add_argument("--ckpt", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--scales", type=float, nargs="+", default=list(OmegaConf.load(REPO / "conf/predict.yaml").scales))
    args = parser.parse_args()
    device = torch.device("cpu")
    net = load_network(args.ckpt, device) if args.ckpt else SeedNet().eval().to(memory_format=torch.channels_last)
    page = np.asarray(Image.open(args.page).convert("RGB").resize((2800, 1760), Image.BILINEAR))
    page_file = Path(tempfile.mkdtemp()) / "page.jpg"
    Image.fromarray(page).save(page_file, quality=95)
    print(f"page: {args.page.name} as 2800x1760, scales: {args.scales}, threads: {torch.get_num_threads()}, median of {args.repeat}")
    searched = sum(s * s for s in args.scales)  # pages' worth of pixels the scales add up to
    for bf16 in (False, True) if use_bf16("auto", device) else (False,):
        label = "bf16" if bf16 else "fp32"
        finder = Finder(net, scales=tuple(args.scales), bf16=bf16)
        heatmap(net, page[:256, :256], bf16=bf16)  # warm up
        full = timed(lambda: finder.answer(page_file, page_file.parent, "page"), args.repeat)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            x = torch.from_numpy(page.copy()).permute(2, 0, 1)[None].float().div(255).contiguous(memory_format=torch.channels_last)
            bare = timed(lambda: net(x), args.repeat)
        tutorial = timed(lambda: tutorial_way(net, page, bf16), args.repeat)
        print(f"[{label}] predict.py path (read, heatmap, answer, pictures, JSON): {full:6.2f} s   (at scales {args.scales})")
        print(f"[{label}] bare network on the page:                          {bare:6.2f} s   (overhead {100 * (full / (bare * searched) - 1):+.0f}% for {searched:.2f} pages' pixels)")
        print(f"[{label}] tutorial's way (stretch, 224 panels, stitch):       {tutorial:6.2f} s")


if __name__ == "__main__":
    main()
