"""Make a small model file from a train.py checkpoint: the network's weights in half precision, its config
and a record of how it was made (also written beside it as .json).

    waldo-export outputs/long/<run>/checkpoints/last.ckpt waldo_pl/weights/waldo.pt [--record notes.json]
        [--calibration calibration.json] [--candidates N] [--margin M] [--confidence share|score]
    waldo-export waldo_pl/weights/waldo.pt waldo_onnx/ --format onnx|openvino   # to run without this project

predict.py reads such a file through ckpt= like a checkpoint; the package bundles one as its default model.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import torch

from waldo_pl.calibration import composed, described, searched_as
from waldo_pl.errors import UserError, exits_cleanly
from waldo_pl.files import write_atomically, write_text_atomically
from waldo_pl.models.checkpoint import (
    network_from,
    network_spec,
    read_checkpoint,
    second_stage_entry,
    second_stage_from,
)
from waldo_pl.portable import FORMATS, export_portable
from waldo_pl.second_stage.spec import CONFIDENCES, SecondStage, as_flag, check_reranking


def half(weights: dict) -> dict:
    return {k: v.half() if v.is_floating_point() else v for k, v in weights.items()}


def export(
    ckpt: Path,
    out: Path,
    record: dict | None = None,
    calibration: dict | None = None,
    candidates: int | None = None,
    margin: float | None = None,
    confidence: str | None = None,
) -> Path:
    """A small model file from a train.py checkpoint; `calibration` (from waldo-crossval --calibrate) maps the
    second stage's score or share (`confidence`, default as trained) to a calibrated confidence; `candidates` sets
    how many spots the second stage re-ranks, `margin` the log-odds by which it must prefer another spot to the
    first stage's best."""
    check_reranking(candidates, margin, confidence, named=as_flag)
    if calibration is not None:
        check_fit(calibration)
    checkpoint = read_checkpoint(ckpt, setting=None)
    config = checkpoint.get("config")
    if not isinstance(config, dict) or not network_spec(checkpoint):
        raise UserError(
            f"{ckpt}: not a checkpoint written by train.py (no run config); give the last.ckpt of a train.py run"
        )
    network_from(checkpoint, str(ckpt))  # builds only this project's networks, and the weights must fit
    stage = second_stage_from(checkpoint, str(ckpt))
    small = {
        "state_dict": half({k: v for k, v in checkpoint["state_dict"].items() if k.startswith("net.")}),
        "config": {"model": {"net": network_spec(checkpoint)}},
        "record": {
            "training": config,
            "epochs": checkpoint.get("epoch"),
            "steps": checkpoint.get("global_step"),
            **(record or {}),
        },
    }
    if stage is not None:
        stage = chosen(stage, calibration, candidates, margin, confidence)
        training = checkpoint["second_stage"].get("record")
        small["second_stage"] = second_stage_entry(stage, half=True, record=training)
        small["record"]["second_stage"] = {**stage.settings(), "training": training}
    elif calibration is not None or candidates is not None or margin is not None or confidence is not None:
        option = (
            "--calibration"
            if calibration is not None
            else "--candidates"
            if candidates is not None
            else "--margin"
            if margin is not None
            else "--confidence"
        )
        raise UserError(
            f"{ckpt}: has no second stage, which {option} is for; "
            "train one (second_stage=default or waldo-second-stage)"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(out, lambda f: torch.save(small, f))
    # the same record, for people
    write_text_atomically(out.with_suffix(".json"), json.dumps(small["record"], indent=2) + "\n")
    return out


def check_fit(calibration: dict) -> None:
    """A calibration as waldo-crossval --calibrate writes it, or a UserError."""
    if not (
        all(isinstance(calibration.get(k), (int, float)) for k in ("a", "b", "pages", "hits"))
        and isinstance(calibration.get("c", 0.0), (int, float))
    ):
        raise UserError("--calibration: not a file written by waldo-crossval --calibrate (needs a, b, pages, hits)")
    try:
        searched_as(calibration)
    except ValueError as err:
        raise UserError(f"--calibration: {err}") from None


def chosen(
    stage: SecondStage, calibration: dict | None, candidates: int | None, margin: float | None, confidence: str | None
) -> SecondStage:
    """The stage as exported: re-ranking `candidates` with `margin`, its confidence made from `confidence` and
    calibrated by `calibration`, composed with its own mapping (each None: as trained)."""
    answers_with = confidence or stage.confidence
    fitted_on = answers_with if calibration is None else calibration.get("confidence", answers_with)
    if fitted_on not in CONFIDENCES:
        raise UserError(
            f"--calibration: fitted on the {fitted_on}'s confidence, not the second stage's; "
            "fit it on answers of both stages (waldo-crossval --calibrate without --first-stage-only)"
        )
    if fitted_on != answers_with:
        raise UserError(
            f"--calibration: fitted on the {fitted_on}, but the model's confidence is its "
            f"{answers_with}; give --confidence {fitted_on} or a calibration fitted on it"
        )
    if answers_with != stage.confidence and calibration is None:  # the stage's own mapping was for the other number
        raise UserError(
            f"--confidence {confidence}: the model was calibrated on its {stage.confidence}; give --calibration "
            f"fitted on the {confidence} too"
        )
    stage = stage.with_choices(candidates, margin, confidence, named=as_flag)
    if calibration is not None:  # fitted on the confidences the model gave: composed with its own mapping
        platt = composed(stage.platt, calibration)
        stage = dataclasses.replace(stage, platt=platt, calibration=described(calibration, stage.confidence, platt))
    return stage


@exits_cleanly
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ckpt", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--record", type=Path, help="a JSON file of facts to keep with the weights (data, figures)")
    parser.add_argument("--calibration", type=Path, help="the JSON written by waldo-crossval --calibrate")
    parser.add_argument(
        "--candidates", type=int, help="the first stage's best spots the second stage re-ranks (default: as trained)"
    )
    parser.add_argument(
        "--margin",
        type=float,
        help="log-odds by which the second stage must prefer another spot to the first "
        "stage's best (default: as trained)",
    )
    parser.add_argument(
        "--confidence",
        help="what the calibration maps: share (the answer's share of the candidates' odds) "
        "or score (its second-stage score); default: as trained",
    )
    parser.add_argument(
        "--format",
        choices=("pt", *FORMATS),
        default="pt",
        help="pt: this project's model file (predict.py's ckpt=); onnx or openvino: both stages as files that ONNX "
        "Runtime or OpenVINO run without this project, in the folder OUT (waldo_pl/portable.py)",
    )
    args = parser.parse_args(argv)
    if args.format != "pt":
        options = ("record", "calibration", "candidates", "margin", "confidence")
        given = [f"--{k}" for k in options if getattr(args, k) is not None]
        if given:
            raise UserError(
                f"{', '.join(given)} with --format {args.format}: make a .pt with them first, then export it"
            )
        print(export_portable(args.ckpt, args.out, args.format))
        return
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
        raise UserError(
            f"{option} {path}: not JSON ({err.msg}, line {err.lineno}); give a JSON object of facts"
        ) from None
    if not isinstance(record, dict):
        raise UserError(f"{option} {path}: holds a {type(record).__name__}; give a JSON object of facts")
    return record


if __name__ == "__main__":
    main()
