"""What predict.py writes: each page's answer as JSON and pictures, and for labelled pages a score report.

Every file is written whole or not at all."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import statistics
from pathlib import Path

import numpy as np
from PIL import Image

from waldo_pl.errors import UserError
from waldo_pl.files import write_atomically, write_text_atomically
from waldo_pl.inference.answer import Spot, page_outcome
from waldo_pl.inference.pictures import colour_heatmap, heatmap_overlay, result_picture, tutorial_figure


@dataclasses.dataclass(frozen=True)
class PageAnswer:
    image: Path
    width: int
    height: int
    spots: list[Spot]
    seconds: float  # the page's whole cost: reading, search, pictures
    calibration: str | None = None  # how the confidence was calibrated, where the model says

    def as_dict(self) -> dict:
        best = self.spots[0]
        answer = {
            "image": str(self.image),
            "width": self.width,
            "height": self.height,
            **best.as_dict(),
            "candidates": [s.as_dict() for s in self.spots[1:]],
        }
        return answer if self.calibration is None else {**answer, "confidence_calibration": self.calibration}


def save_png(path: Path, pixels: np.ndarray) -> None:
    write_atomically(path, lambda f: Image.fromarray(pixels).save(f, format="PNG", compress_level=1))


def save_jpeg(path: Path, pixels: np.ndarray) -> None:
    write_atomically(path, lambda f: Image.fromarray(pixels).save(f, format="JPEG", quality=88))


def write_pictures(
    out_dir: Path, stem: str, page: np.ndarray, log_odds: np.ndarray, spots: list[Spot], full: bool = False
) -> None:
    """`<stem>_result.jpg` (the answer, Waldo zoomed, the candidates) and `<stem>_heatmap.jpg` (the probability over
    the page), screen-sized; with `full`, also the tutorial's page-size `<stem>_result.png` and `<stem>_heatmap.png`."""
    save_jpeg(out_dir / f"{stem}_result.jpg", result_picture(page, spots))
    save_jpeg(out_dir / f"{stem}_heatmap.jpg", heatmap_overlay(page, log_odds))
    if full:
        save_png(out_dir / f"{stem}_heatmap.png", colour_heatmap(log_odds))
        save_png(out_dir / f"{stem}_result.png", tutorial_figure(page, spots[0]))


def write_answer(out_dir: Path, stem: str, answer: PageAnswer) -> None:
    write_text_atomically(out_dir / f"{stem}.json", json.dumps(answer.as_dict(), indent=2) + "\n")


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
    totals = {
        "pages": len(rows),
        "hit_rate": sum(r["hit"] for r in rows) / len(rows),
        "top5_hit_rate": sum(r["top5_hit"] for r in rows) / len(rows),
        "median_seconds": statistics.median(r["seconds"] for r in rows),
    }
    return rows, totals


CONFIDENCE_BANDS = (0.0, 0.5, 0.8, 0.9, 0.95, 0.99, 1.0)


def reliability_table(pages: list[dict]) -> str:
    """What the confidence means on labelled pages: per confidence band, how many answers were right, beside
    the band's mean confidence (calibrated, the two agree); then the mean confidence of hits and of misses."""
    lines = ["| confidence | pages | right | share right | mean confidence |", "| --- | --- | --- | --- | --- |"]
    for low, high in zip(CONFIDENCE_BANDS, CONFIDENCE_BANDS[1:]):
        band = [p for p in pages if low <= p["confidence"] < high or high == 1.0 and p["confidence"] == 1.0]
        if band:
            right = sum(p["hit"] for p in band)
            mean = sum(p["confidence"] for p in band) / len(band)
            lines.append(f"| {low:.0%} to {high:.0%} | {len(band)} | {right} | {right / len(band):.0%} | {mean:.1%} |")
    hits, misses = [p["confidence"] for p in pages if p["hit"]], [p["confidence"] for p in pages if not p["hit"]]
    mean = lambda values: f"{sum(values) / len(values):.1%}" if values else "-"
    lines += [
        "",
        f"Mean confidence of hits {mean(hits)} ({len(hits)} pages), of misses {mean(misses)} ({len(misses)} pages).",
    ]
    return "\n".join(lines)


def write_report(out_dir: Path, rows: list[dict], totals: dict) -> None:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomically(out_dir / "report.csv", text.getvalue())
    lines = [
        "# Waldo found?",
        "",
        f"{totals['pages']} labelled pages: hit rate {totals['hit_rate']:.1%}, top-5 hit rate "
        f"{totals['top5_hit_rate']:.1%}, median {totals['median_seconds']:.2f} s a page.",
        "",
        "| page | hit | top-5 hit | distance (px) | confidence | seconds |",
        "| --- | --- | --- | --- | --- | --- |",
        *(
            f"| {r['image']} | {'yes' if r['hit'] else 'no'} | {'yes' if r['top5_hit'] else 'no'} | {r['distance']} | "
            f"{r['confidence']:.2%} | {r['seconds']} |"
            for r in rows
        ),
        "",
        "## What the confidence means",
        "",
        reliability_table(rows),
    ]
    write_text_atomically(out_dir / "report.md", "\n".join(lines) + "\n")
