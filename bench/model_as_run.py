"""A model file from waldo-export as a train.py run folder (its first stage's weights back in float32, its training
config), so that the bundled model's second stage can be trained again without training its first stage again:

    python bench/model_as_run.py waldo_pl/weights/waldo.pt outputs/rebundle
    waldo-second-stage outputs/rebundle candidates=3
    waldo-export outputs/rebundle/checkpoints/last.ckpt waldo_pl/weights/waldo.pt --record record.json --calibration ...

The folder's record_before.json is the model's record without what waldo-export writes again (training, epochs,
steps, second_stage): the start of the new --record. The first stage searches as before (its half-precision weights
widened exactly), so only the second stage and what is written about it change.
"""

import argparse
import json
from pathlib import Path

import torch
from omegaconf import OmegaConf

from waldo_pl.models.checkpoint import network_from, read_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, help="a file written by waldo-export")
    parser.add_argument("run", type=Path, help="the run folder to make (checkpoints/last.ckpt, .hydra/config.yaml)")
    args = parser.parse_args()
    small = read_checkpoint(args.model, None)
    network_from(small, str(args.model))  # only this project's networks, the weights fitting
    record = small.get("record") or {}
    if not isinstance(record.get("training"), dict):
        raise SystemExit(f"{args.model}: its record holds no training config; give a file written by waldo-export")
    checkpoint = {
        "state_dict": {k: v.float() if v.is_floating_point() else v for k, v in small["state_dict"].items()},
        "config": record["training"],
        "epoch": record.get("epochs"),
        "global_step": record.get("steps"),
    }
    (args.run / "checkpoints").mkdir(parents=True, exist_ok=True)
    (args.run / ".hydra").mkdir(exist_ok=True)
    torch.save(checkpoint, args.run / "checkpoints" / "last.ckpt")
    OmegaConf.save(OmegaConf.create(record["training"]), args.run / ".hydra" / "config.yaml")
    rest = {k: v for k, v in record.items() if k not in ("training", "epochs", "steps", "second_stage")}
    (args.run / "record_before.json").write_text(json.dumps(rest, indent=1) + "\n")
    print(
        f"{args.run}: the first stage of {args.model} as a run; its record without training and second stage in record_before.json"
    )


if __name__ == "__main__":
    main()
