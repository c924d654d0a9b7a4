"""predict.py's work: pages in; Waldo's position, box, pictures and an optional score out.

A bad page is reported and skipped; the others are finished. Every file is written whole or not at all.
"""

from __future__ import annotations

import dataclasses
import glob
import logging
import sys
import time
from pathlib import Path

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from waldo_pl.data.formats import read_labels
from waldo_pl.data.page import read_image
from waldo_pl.errors import UserError
from waldo_pl.inference.device import described, load_for_search
from waldo_pl.inference.report import PageAnswer, score, write_answer, write_pictures, write_report
from waldo_pl.inference.rerank import SecondStage
from waldo_pl.inference.search import PREDICT, SearchSettings, search
from waldo_pl.weights import bundled_model

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


@dataclasses.dataclass
class PredictConfig:
    """predict.py's settings, typed: OmegaConf refuses a value of the wrong type while composing (conf/predict.yaml).
    typing's Optional and List, which OmegaConf reads on every Python this project supports."""

    img: str = MISSING  # a page, a folder of pages or a glob
    ckpt: str | None = None  # a train.py checkpoint or a waldo-export file; None: the bundled model
    output_dir: str = "predictions"
    labels: str | None = None  # annotations.csv or a folder of VOC .xml: also write report.csv and report.md
    accelerator: str = "auto"  # auto | cpu | gpu
    precision: str = "auto"  # auto | 32 | bf16
    backend: str = "auto"  # auto (OpenVINO on a CPU where it is installed) | torch | openvino
    # the search's settings, defaulting to the search's own (SearchSettings: what each does); a value set here or on
    # the command line replaces it
    threshold: float = PREDICT.threshold
    scales: list[float] = dataclasses.field(default_factory=lambda: list(PREDICT.scales))
    flip: bool = PREDICT.flip
    merge: str = PREDICT.merge
    candidates: int = PREDICT.candidates
    tile: int = PREDICT.tile
    batch_size: int = PREDICT.batch_size
    max_whole_pixels: int = PREDICT.max_whole_pixels
    windows: int = PREDICT.windows
    full: bool = False  # also the tutorial's page-size PNG pictures
    second_stage: bool = True  # re-rank the best spots with the model's second stage, where it has one


ConfigStore.instance().store(name="predict_schema", node=PredictConfig)


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
        raise UserError(
            f"img={spec}: no such file, no images in that folder, or nothing matches; give a page, a folder or a glob"
        )
    return found


def stems(images: list[Path]) -> list[str]:
    """Output names: the file's stem, or its whole name where two pages share a stem."""
    counts: dict[str, int] = {}
    for p in images:
        counts[p.stem] = counts.get(p.stem, 0) + 1
    return [p.stem if counts[p.stem] == 1 else p.name for p in images]


def answer_page(
    net,
    image: Path,
    settings: SearchSettings,
    out_dir: Path,
    stem: str,
    full: bool = False,
    stage: SecondStage | None = None,
) -> PageAnswer:
    """Search one page file and write its pictures and JSON."""
    start = time.perf_counter()
    page = read_image(image)
    log_odds, spots = search(net, page, settings, stage)
    write_pictures(out_dir, stem, page, log_odds, spots, full)
    calibration = None if stage is None else stage.calibration
    answer = PageAnswer(image, page.shape[1], page.shape[0], spots, time.perf_counter() - start, calibration)
    write_answer(out_dir, stem, answer)
    return answer


def predict(
    img: str,
    ckpt: str | None = None,
    output_dir: str = "predictions",
    labels: str | None = None,
    accelerator: str = "auto",
    precision: str = "auto",
    backend: str = "auto",
    full: bool = False,
    second_stage: bool = True,
    **settings,
) -> list[PageAnswer]:
    """Find Waldo on every page of `img`; print a line each, write the files, and score against `labels`."""
    if ckpt is None:
        ckpt = bundled_model()
        if not ckpt.is_file():
            raise UserError("this install has no bundled model; give ckpt= a checkpoint written by train.py")
    images = list_images(img)
    truth = read_labels(labels) if labels else None
    search_settings = SearchSettings(**settings)  # a bad setting is said before the model is loaded
    net, stage, bf16 = load_for_search(ckpt, accelerator, precision, backend, "ckpt", second_stage)
    search_settings = dataclasses.replace(search_settings, bf16=bf16)
    log.info("search: %s", described(net, bf16, precision))
    if stage is not None:
        log.info(
            "second stage: re-ranking the best %d spots, the first stage's answer kept unless another scores %g "
            "log-odds higher; confidence calibrated by %s",
            stage.candidates,
            stage.margin,
            stage.calibration,
        )
    out_dir = Path(output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    answers, failed = [], []
    for image, stem in zip(images, stems(images)):
        try:
            answer = answer_page(net, image, search_settings, out_dir, stem, full, stage)
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
        print(
            f"hit rate {totals['hit_rate']:.1%}, top-5 hit rate {totals['top5_hit_rate']:.1%} "
            f"on {totals['pages']} labelled pages"
        )
    if failed:
        print(f"{len(failed)} of {len(images)} page(s) failed:", *failed, sep="\n  ", file=sys.stderr)
    if not answers:
        raise UserError(f"no page could be read from img={img}; see the lines above")
    return answers
