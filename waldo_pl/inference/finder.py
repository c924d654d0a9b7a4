"""predict.py's work: pages in, Waldo's position, box, pictures and an optional score out.

A bad page is reported and skipped; the others are finished. Every file is written whole or not at all.
"""

from __future__ import annotations

import csv
import dataclasses
import glob
import io
import json
import logging
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate
from PIL import Image
from torch import nn

from waldo_pl.data.formats import read_labels
from waldo_pl.data.page import read_image
from waldo_pl.errors import UserError
from waldo_pl.export import bundled_model
from waldo_pl.files import write_atomically, write_text_atomically
from waldo_pl.inference.answer import Spot, check_threshold, find_spots, page_outcome
from waldo_pl.inference.heatmap import MULTIPLE, check_scales, check_tile, heatmap_at_scales
from waldo_pl.inference.pictures import colour_heatmap, result_picture
from waldo_pl.models.seed_net import SeedNet

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


@dataclasses.dataclass
class PageAnswer:
    image: Path
    width: int
    height: int
    spots: list[Spot]
    seconds: float

    def as_dict(self) -> dict:
        best = self.spots[0]
        return {"image": str(self.image), "width": self.width, "height": self.height,
                **best.as_dict(), "candidates": [s.as_dict() for s in self.spots[1:]]}


def choose_device(accelerator: str) -> torch.device:
    if accelerator in ("gpu", "cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"accelerator={accelerator}: no CUDA GPU on this machine; use accelerator=cpu or auto")
        return torch.device("cuda")
    if accelerator == "cpu":
        return torch.device("cpu")
    if accelerator == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    raise UserError(f"accelerator={accelerator}: use auto, cpu or gpu")


def use_bf16(precision: str, device: torch.device) -> bool:
    """bf16 on a GPU, or on a CPU with native bf16 arithmetic (about twice as fast there); else float32."""
    if str(precision) == "auto":
        return device.type == "cuda" or torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    if str(precision) in ("32", "bf16"):
        return str(precision) == "bf16"
    raise UserError(f"precision={precision}: use auto, 32 or bf16")


def load_network(ckpt: str | Path, device: torch.device) -> nn.Module:
    """The network of a checkpoint written by train.py, in eval mode on `device`."""
    ckpt = Path(ckpt)
    if not ckpt.is_file():
        raise UserError(f"ckpt={ckpt}: no such checkpoint; give a .ckpt written by train.py")
    try:
        checkpoint = torch.load(ckpt, map_location="cpu", weights_only=True)
        state = checkpoint["state_dict"]
    except Exception as err:  # torch.load fails in many ways on a file that is not a checkpoint
        raise UserError(f"ckpt={ckpt}: not a checkpoint written by train.py ({type(err).__name__}); give a .ckpt from a training run") from None
    net_config = checkpoint.get("config", {}).get("model", {}).get("net")
    net = instantiate(net_config) if net_config else SeedNet()
    # float32 whatever the file holds (the bundled model is stored in half precision)
    weights = {k.removeprefix("net."): v.float() if v.is_floating_point() else v for k, v in state.items() if k.startswith("net.")}
    try:
        net.load_state_dict(weights)
    except RuntimeError:
        raise UserError(f"ckpt={ckpt}: holds another architecture than {type(net).__name__}; give a checkpoint of this project's network") from None
    return net.eval().to(device, memory_format=torch.channels_last)


def list_images(spec: str) -> list[Path]:
    """A file, a folder (its images) or a glob."""
    path = Path(spec)
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    elif path.exists():
        found = [path]
    else:
        found = sorted(Path(p) for p in glob.glob(spec) if Path(p).is_file())
    if not found:
        raise UserError(f"img={spec}: no such file, no images in that folder, or nothing matches; give a page, a folder or a glob")
    return found


def save_png(path: Path, pixels: np.ndarray) -> None:
    write_atomically(path, lambda f: Image.fromarray(pixels).save(f, format="PNG", compress_level=1))


@dataclasses.dataclass
class Finder:
    """Finds Waldo on pages with one network and one set of settings."""

    net: nn.Module
    threshold: float = 0.8
    scales: tuple[float, ...] = (1.0,)
    flip: bool = False
    candidates: int = 5
    tile: int = 1024
    batch_size: int = 4
    max_whole_pixels: int = 8_000_000
    bf16: bool = False

    def __post_init__(self):
        check_threshold("threshold", self.threshold)
        if self.candidates < 0:
            raise UserError(f"candidates={self.candidates}: must be 0 or more")
        try:  # the search's own checks, said as settings
            check_scales(self.scales)
            check_tile(self.tile)
        except ValueError as err:
            raise UserError(str(err)) from None
        if self.batch_size < 1:
            raise UserError(f"batch_size={self.batch_size}: must be 1 or more")
        if self.max_whole_pixels < 0:
            raise UserError(f"max_whole_pixels={self.max_whole_pixels}: must be 0 (always tile) or more")

    def find(self, page: np.ndarray) -> tuple[np.ndarray, list[Spot]]:
        h, w = page.shape[:2]
        if min(h, w) < MULTIPLE:
            raise UserError(f"page is {w}x{h} px; it needs at least {MULTIPLE} px a side")
        heat = heatmap_at_scales(self.net, page, self.scales, self.flip, tile=self.tile, batch_size=self.batch_size,
                                 max_whole_pixels=self.max_whole_pixels, bf16=self.bf16)
        return heat, find_spots(heat, self.threshold, count=1 + self.candidates)

    def answer(self, image: Path, out_dir: Path, stem: str) -> PageAnswer:
        start = time.perf_counter()
        page = read_image(image)
        heat, spots = self.find(page)
        answer = PageAnswer(image, page.shape[1], page.shape[0], spots, 0.0)
        save_png(out_dir / f"{stem}_heatmap.png", colour_heatmap(heat))
        save_png(out_dir / f"{stem}_result.png", result_picture(page, spots[0]))
        answer.seconds = time.perf_counter() - start  # the page's whole cost: reading, search, pictures
        write_text_atomically(out_dir / f"{stem}.json", json.dumps(answer.as_dict(), indent=2) + "\n")
        return answer


def stems(images: list[Path]) -> list[str]:
    """Output names: the file's stem, or its whole name where two pages share a stem."""
    counts: dict[str, int] = {}
    for p in images:
        counts[p.stem] = counts.get(p.stem, 0) + 1
    return [p.stem if counts[p.stem] == 1 else p.name for p in images]


def score(answers: list[PageAnswer], labels: dict[str, np.ndarray]) -> tuple[list[dict], dict]:
    """Per labelled page: hit (argmax in a box), top-5 hit, distance, time; and the totals."""
    rows = []
    for a in answers:
        boxes = labels.get(a.image.name)
        if boxes is None:
            continue
        rows.append({"image": a.image.name, **page_outcome(a.spots, boxes), "seconds": round(a.seconds, 2)})
    if not rows:
        raise UserError("labels=: none of the pages is labelled there; check the file names")
    totals = {"pages": len(rows), "hit_rate": sum(r["hit"] for r in rows) / len(rows),
              "top5_hit_rate": sum(r["top5_hit"] for r in rows) / len(rows),
              "median_seconds": statistics.median(r["seconds"] for r in rows)}
    return rows, totals


def write_report(out_dir: Path, rows: list[dict], totals: dict) -> None:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomically(out_dir / "report.csv", text.getvalue())
    lines = [
        "# Waldo found?", "",
        f"{totals['pages']} labelled pages: hit rate {totals['hit_rate']:.1%}, top-5 hit rate "
        f"{totals['top5_hit_rate']:.1%}, median {totals['median_seconds']:.2f} s a page.", "",
        "| page | hit | top-5 hit | distance (px) | confidence | seconds |", "| --- | --- | --- | --- | --- | --- |",
        *(f"| {r['image']} | {'yes' if r['hit'] else 'no'} | {'yes' if r['top5_hit'] else 'no'} | {r['distance']} | "
          f"{r['confidence']:.2%} | {r['seconds']} |" for r in rows),
    ]
    write_text_atomically(out_dir / "report.md", "\n".join(lines) + "\n")


def predict(img: str, ckpt: str | None, output_dir: str, labels: str | None = None, accelerator: str = "auto",
            precision: str = "auto", **settings) -> list[PageAnswer]:
    """Find Waldo on every page of `img`; print a line each, write the files, and score against `labels`."""
    if ckpt is None:
        ckpt = bundled_model()
        if not ckpt.is_file():
            raise UserError("this install has no bundled model; give ckpt= a checkpoint written by train.py")
    images = list_images(img)
    truth = read_labels(labels) if labels else None
    device = choose_device(accelerator)
    finder = Finder(load_network(ckpt, device), bf16=use_bf16(precision, device), **settings)
    out_dir = Path(output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    answers, failed = [], []
    for image, stem in zip(images, stems(images)):
        try:
            answer = finder.answer(image, out_dir, stem)
        except UserError as err:
            failed.append(str(err) if str(image) in str(err) else f"{image}: {err}")
            log.error("%s", failed[-1])
            continue
        best = answer.spots[0]
        print(f"{image}: ({best.x}, {best.y}) {100 * best.confidence:.2f}%", flush=True)
        answers.append(answer)
    if truth is not None and answers:
        rows, totals = score(answers, truth)
        write_report(out_dir, rows, totals)
        print(f"hit rate {totals['hit_rate']:.1%}, top-5 hit rate {totals['top5_hit_rate']:.1%} on {totals['pages']} labelled pages")
    if failed:
        print(f"{len(failed)} of {len(images)} page(s) failed:", *failed, sep="\n  ", file=sys.stderr)
    if not answers:
        raise UserError(f"no page could be read from img={img}; see the lines above")
    return answers
