"""Which numbers the confidence should be calibrated on: the share alone, or the share and the first stage's
log-odds at the answer. Both are fitted on one set of held-out answers (waldo-crossval --keep) and applied to
another, made by other models (another seed), and each is scored there: the mean confidence of hits and of
misses, how often a hit is above a miss, the Brier score, and the reliability bands.

    waldo-crossval outputs/all_folds --scales 1 1.25 --flip --confidence share --keep seed0.json
    waldo-crossval outputs/all_folds_seed1 --scales 1 1.25 --flip --confidence share --keep seed1.json
    python bench/calibration_numbers.py --fit seed0.json --apply seed1.json
"""

import argparse
import json
from pathlib import Path

import numpy as np

from waldo_pl.crossval.calibrate import calibrated_pages, fitted_platt, platt_words
from waldo_pl.inference.report import reliability_table


def scores(pages: list[dict]) -> str:
    confidence, hit = np.array([p["confidence"] for p in pages]), np.array([bool(p["hit"]) for p in pages])
    above = np.mean([h > m for h in confidence[hit] for m in confidence[~hit]])
    return (
        f"hits {confidence[hit].mean():.1%}, misses {confidence[~hit].mean():.1%} (a gap of "
        f"{100 * (confidence[hit].mean() - confidence[~hit].mean()):.1f} points), a hit above a miss in {above:.0%} of pairs, "
        f"Brier score {np.mean((confidence - hit) ** 2):.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fit", type=Path, required=True, help="waldo-crossval --keep answers to fit on")
    parser.add_argument(
        "--apply", type=Path, nargs="+", required=True, help="waldo-crossval --keep answers to score the fits on"
    )
    args = parser.parse_args()
    fit = json.loads(args.fit.read_text())
    others = [page for path in args.apply for page in json.loads(path.read_text())]
    print(
        f"Fitted on {len(fit)} answers ({sum(p['hit'] for p in fit)} right, {args.fit}), applied to {len(others)} "
        f"({sum(p['hit'] for p in others)} right)\n"
    )
    for with_first_stage, name in ((False, "the share alone"), (True, "the share and the first stage's log-odds")):
        platt = fitted_platt(fit, args.fit, with_first_stage)
        applied = calibrated_pages(others, platt)
        print(f"{name} ({platt_words(platt)}): {scores(applied)}\n\n{reliability_table(applied)}\n")


if __name__ == "__main__":
    main()
