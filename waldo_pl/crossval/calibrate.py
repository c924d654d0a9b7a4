"""Calibrating the confidence on held-out answers: Platt scaling fitted on a cross-validation's answers (--calibrate,
for waldo-export --calibration), how it does on pages it was not fitted on, and a fit applied to other runs."""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import DictConfig

from waldo_pl.calibration import calibrated, fit_platt
from waldo_pl.errors import UserError
from waldo_pl.files import write_text_atomically
from waldo_pl.inference.report import reliability_table


def calibrated_number(pages: list[dict], folder: Path) -> str | None:
    """What the held-out answers' confidences are made from, as the search that gave them recorded (confidence_of:
    the second stage's share or score, or the first stage's own), which a calibration fitted on them maps; None for
    records from before the field. Answers made from different numbers are refused."""
    numbers = {p.get("confidence_of") for p in pages}
    if len(numbers) > 1:
        named = sorted(str(n) if n else "not recorded" for n in numbers)
        raise UserError(
            f"{folder}: its runs' confidences are made from different numbers ({', '.join(named)}); "
            "calibrate each kind of run on its own, or search them again alike (--scales 1 1.25 --confidence share)"
        )
    return numbers.pop() if numbers else None


def check_answers(pages: list[dict], folder: Path, with_first_stage: bool, why: str = "") -> None:
    """The answers hold what a calibration needs: their log-odds, and `with_first_stage` the first stage's too."""
    if any("log_odds" not in p for p in pages):
        raise UserError(f"{folder}: these runs' records hold no log-odds; search them again with --scales 1 1.25")
    if with_first_stage and any("first_stage_log_odds" not in p for p in pages):
        raise UserError(
            f"{folder}: these runs' records hold no first-stage log-odds{why}; search them again with --scales 1 1.25"
        )


def fitted_platt(pages: list[dict], folder: Path, with_first_stage: bool = False) -> tuple[float, ...]:
    """Platt scaling of the answers' log-odds (a, b), and with `with_first_stage` of the first stage's log-odds at
    each answer too (a, b, c)."""
    check_answers(pages, folder, with_first_stage)
    first = [p["first_stage_log_odds"] for p in pages] if with_first_stage else None
    return fit_platt([p["log_odds"] for p in pages], [bool(p["hit"]) for p in pages], first_stage=first)


def calibrated_pages(pages: list[dict], platt: tuple[float, ...]) -> list[dict]:
    """The answers with their confidences calibrated by `platt` (a third number weighs the first stage's log-odds)."""
    first = [p.get("first_stage_log_odds") for p in pages] if len(platt) == 3 else None
    return [
        {**p, "confidence": float(c)} for p, c in zip(pages, calibrated([p["log_odds"] for p in pages], platt, first))
    ]


def platt_words(platt: tuple[float, ...]) -> str:
    return ", ".join(f"{name}={value:.3f}" for name, value in zip("abc", platt))


def write_calibration(
    path: Path,
    pages: list[dict],
    folder: Path,
    confidence: str | None = None,
    searched: dict | None = None,
    with_first_stage: bool = False,
) -> str:
    """Platt scaling fitted on the held-out answers' log-odds (and, `with_first_stage`, the first stage's log-odds at
    each answer), written for waldo-export --calibration; `confidence` (calibrated_number's) names what they were made
    from, so that export maps the same number with it, and `searched` how the pages were searched (scales, flip),
    which the model's record then says."""
    if len({p["hit"] for p in pages}) < 2:
        raise UserError(
            f"{folder}: every held-out answer is {'right' if pages[0]['hit'] else 'wrong'}; calibration needs both"
        )
    platt = fitted_platt(pages, folder, with_first_stage)
    record = {
        "method": "platt",
        **dict(zip("abc", platt)),
        "pages": len(pages),
        "hits": sum(p["hit"] for p in pages),
        "runs": str(folder),
        **({"confidence": confidence} if confidence else {}),
        **({"search": searched} if searched else {}),
    }
    write_text_atomically(path, json.dumps(record, indent=2) + "\n")
    return "\n".join(
        [
            f"Platt scaling fitted on these {len(pages)} answers ({platt_words(platt)}), written to {path}; "
            "on the same answers (in-sample) it gives:",
            "",
            reliability_table(calibrated_pages(pages, platt)),
        ]
    )


def cross_fitted_calibration(
    scored: list[tuple[Path, DictConfig | None, list[dict]]], with_first_stage: bool = False
) -> str:
    """The reliability table of every run's answers calibrated by a Platt scaling fitted on the answers of the other
    pages (leaving out the run's own pages at every seed): how --calibrate's fit would do on pages it never saw."""
    pages = [page for _, _, run_pages in scored for page in run_pages]
    out = []
    for run, _, run_pages in scored:
        own = {p["page"] for p in run_pages}
        others = [p for p in pages if p["page"] not in own]
        if len({p["hit"] for p in others}) < 2:
            return "Too few answers to fit the calibration without each run's own pages."
        out += calibrated_pages(run_pages, fitted_platt(others, run, with_first_stage))
    return "\n".join(
        [
            "Out of sample: each run's answers calibrated by the same fit on the other pages' answers only, together:",
            "",
            reliability_table(out),
        ]
    )


def apply_calibration(path: Path, pages: list[dict], folder: Path) -> str:
    """The reliability table of the held-out answers calibrated by a Platt scaling fitted on other runs' answers
    (written by --calibrate): whether that calibration holds on pages it was not fitted on."""
    try:
        fitted = json.loads(path.read_text())
        platt = (float(fitted["a"]), float(fitted["b"]), *([float(fitted["c"])] if "c" in fitted else []))
    except (OSError, ValueError, TypeError, KeyError):
        raise UserError(
            f"--calibrated-by {path}: not a readable file written by waldo-crossval --calibrate (needs a and b)"
        ) from None
    check_answers(pages, folder, len(platt) == 3, f", which {path} weighs")
    return "\n".join(
        [
            f"Calibrated by {path} ({platt_words(platt)}, fitted on other answers), these {len(pages)} answers give:",
            "",
            reliability_table(calibrated_pages(pages, platt)),
        ]
    )
