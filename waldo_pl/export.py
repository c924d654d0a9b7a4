"""Make a small model file from a train.py checkpoint: the network's weights in half precision, its config
and a record of how it was made (also written beside it as .json).

    waldo-export outputs/long/<run>/checkpoints/last.ckpt waldo_pl/weights/waldo.pt [--record notes.json]
        [--calibration calibration.json] [--candidates N] [--margin M] [--confidence share|score]

predict.py reads such a file through ckpt= like a checkpoint; the package bundles one as its default model.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from waldo_pl.errors import UserError, exits_cleanly
from waldo_pl.files import write_atomically, write_text_atomically
from waldo_pl.inference.rerank import check_confidence, check_margin
from waldo_pl.models.checkpoint import network_from, network_spec, read_checkpoint, second_stage_from
from waldo_pl.odds import CONFIDENCES, UNCALIBRATED


def half(weights: dict) -> dict:
    return {k: v.half() if v.is_floating_point() else v for k, v in weights.items()}


def searched_as(calibration: dict) -> str:
    """How the calibration's pages were searched, in words for the model's record ('' where it does not say)."""
    searched = calibration.get("search")
    if searched is None:
        return ""
    try:
        scales, flip = [float(s) for s in searched["scales"]], searched["flip"]
    except (TypeError, KeyError, ValueError):
        scales, flip = [], None
    if not scales or not isinstance(flip, bool):
        raise UserError("--calibration: its search is not one waldo-crossval --calibrate writes (needs scales and flip)")
    merged = {"mean": " (their mean)", "max": " (their best)"}.get(searched.get("merge")) if len(scales) > 1 else None
    return f", searched at scales {', '.join(f'{s:g}' for s in scales)}{merged or ''}{' and mirrored' if flip else ''}"


def export(ckpt: Path, out: Path, record: dict | None = None, calibration: dict | None = None,
           candidates: int | None = None, margin: float | None = None, confidence: str | None = None) -> Path:
    """A small model file from a train.py checkpoint; `calibration` (from waldo-crossval --calibrate) maps the
    second stage's score or share (`confidence`, default as trained) to a calibrated confidence; `candidates` sets
    how many spots the second stage re-ranks, `margin` the log-odds by which it must prefer another spot to the
    first stage's best."""
    if candidates is not None and candidates < 1:
        raise UserError(f"--candidates {candidates}: must be 1 or more")
    check_margin(f"--margin {margin}", margin)
    check_confidence(f"--confidence {confidence}", confidence)
    if calibration is not None and not (all(isinstance(calibration.get(k), (int, float)) for k in ("a", "b", "pages", "hits"))
                                        and isinstance(calibration.get("c", 0.0), (int, float))):
        raise UserError("--calibration: not a file written by waldo-crossval --calibrate (needs a, b, pages, hits)")
    checkpoint = read_checkpoint(ckpt, setting=None)
    config = checkpoint.get("config")
    if not isinstance(config, dict) or not network_spec(checkpoint):
        raise UserError(f"{ckpt}: not a checkpoint written by train.py (no run config); give the last.ckpt of a train.py run")
    network_from(checkpoint, str(ckpt))  # builds only this project's networks, and the weights must fit
    read_stage = second_stage_from(checkpoint, str(ckpt))  # and its second stage, where it has one
    state = checkpoint["state_dict"]
    small = {
        "state_dict": half({k: v for k, v in state.items() if k.startswith("net.")}),
        "config": {"model": {"net": network_spec(checkpoint)}},
        "record": {"training": config, "epochs": checkpoint.get("epoch"), "steps": checkpoint.get("global_step"), **(record or {})},
    }
    if checkpoint.get("second_stage") is not None:
        stage = dict(checkpoint["second_stage"])
        stage["state_dict"] = half(stage["state_dict"])
        trained_as = read_stage["confidence"]  # as the file says, or what files from before it mean
        stage["confidence"] = confidence or trained_as
        fitted_on = stage["confidence"] if calibration is None else calibration.get("confidence", stage["confidence"])
        if fitted_on not in CONFIDENCES:
            raise UserError(f"--calibration: fitted on the {fitted_on}'s confidence, not the second stage's; "
                            "fit it on answers of both stages (waldo-crossval --calibrate without --first-stage-only)")
        if fitted_on != stage["confidence"]:
            raise UserError(f"--calibration: fitted on the {fitted_on}, but the model's confidence is its "
                            f"{stage['confidence']}; give --confidence {fitted_on} or a calibration fitted on it")
        if stage["confidence"] != trained_as:  # the stage's own mapping was for the other number
            if calibration is None:
                raise UserError(f"--confidence {confidence}: the model was calibrated on its {trained_as}; give --calibration "
                                f"fitted on the {confidence} too")
            stage["platt"] = list(UNCALIBRATED)
        if calibration is not None:  # fitted on the confidences the model gave: compose with its own mapping
            (a0, b0, *c0), a, b = stage["platt"], calibration["a"], calibration["b"]
            stage["platt"] = [a * a0, a * b0 + b]
            if c0 or "c" in calibration:  # the first stage's log-odds weighed too
                stage["platt"].append(a * (c0[0] if c0 else 0.0) + calibration.get("c", 0.0))
            what = "the answer's share of the candidates' odds" if stage["confidence"] == "share" else "the second stage's score"
            what += " and the first stage's log-odds there" if len(stage["platt"]) == 3 else ""
            stage["calibration"] = (f"Platt scaling of {what}, fitted on {calibration['pages']} held-out answers "
                                    f"({calibration['hits']} right) of the runs in {calibration['runs']}{searched_as(calibration)}")
        if candidates is not None:
            stage["candidates"] = candidates
        if margin is not None:
            stage["margin"] = float(margin)
        small["second_stage"] = stage
        small["record"]["second_stage"] = {"candidates": stage["candidates"], "margin": stage.get("margin", 0.0), "platt": stage["platt"],
                                           "confidence": stage["confidence"], "calibration": stage["calibration"], "training": stage.get("record")}
    elif calibration is not None or candidates is not None or margin is not None or confidence is not None:
        option = ("--calibration" if calibration is not None else "--candidates" if candidates is not None
                  else "--margin" if margin is not None else "--confidence")
        raise UserError(f"{ckpt}: has no second stage, which {option} is for; train one (second_stage=default or waldo-second-stage)")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(out, lambda f: torch.save(small, f))
    # the same record, for people
    write_text_atomically(out.with_suffix(".json"), json.dumps(small["record"], indent=2) + "\n")
    return out


@exits_cleanly
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ckpt", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--record", type=Path, help="a JSON file of facts to keep with the weights (data, figures)")
    parser.add_argument("--calibration", type=Path, help="the JSON written by waldo-crossval --calibrate")
    parser.add_argument("--candidates", type=int, help="the first stage's best spots the second stage re-ranks (default: as trained)")
    parser.add_argument("--margin", type=float, help="log-odds by which the second stage must prefer another spot to the first "
                                                     "stage's best (default: as trained)")
    parser.add_argument("--confidence", help="what the calibration maps: share (the answer's share of the candidates' odds) "
                                             "or score (its second-stage score); default: as trained")
    args = parser.parse_args(argv)
    record = read_record(args.record) if args.record else None
    calibration = read_record(args.calibration, "--calibration") if args.calibration else None
    print(export(args.ckpt, args.out, record, calibration, args.candidates, args.margin, args.confidence))


def read_record(path: Path, option: str = "--record") -> dict:
    """A JSON object given with `option`, read before anything is written."""
    try:
        record = json.loads(path.read_text())
    except OSError as err:
        raise UserError(f"{option} {path}: cannot be read ({err.strerror or type(err).__name__})") from None
    except json.JSONDecodeError as err:
        raise UserError(f"{option} {path}: not JSON ({err.msg}, line {err.lineno}); give a JSON object of facts") from None
    if not isinstance(record, dict):
        raise UserError(f"{option} {path}: holds a {type(record).__name__}; give a JSON object of facts")
    return record


if __name__ == "__main__":
    main()
