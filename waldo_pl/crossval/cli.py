"""waldo-crossval FOLDER: the fold table of a cross-validation, each run's metrics.json under FOLDER.

    waldo-crossval outputs/<task>/multirun_<date>   (after python train.py -m data=waldo_folds data.fold=0,1,2,3,4)

seed draws the folds too, so a sweep over seed=0,1,2 as well is three cross-validations: the table pools
each seed on a row of its own, then all of them.

With --scales, --flip, --merge or the second stage's flags, each run's last checkpoint searches its held-out pages
again (on the GPU when there is one), the way predict.py does with those settings, so test-time settings are
measured through the same folds without training again.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from waldo_pl.crossval.rescore import Rescoring
from waldo_pl.crossval.table import fold_table
from waldo_pl.errors import UserError, exits_cleanly
from waldo_pl.inference.heatmap import MERGES


@exits_cleanly
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--scales", type=float, nargs="+", help="search the held-out pages again at these scales")
    parser.add_argument("--flip", action="store_true", help="search the held-out pages again, mirrored as well")
    parser.add_argument(
        "--merge",
        choices=MERGES,
        help="search the held-out pages again, the scales' heatmaps merged per "
        "pixel by their mean (predict.py's) or max",
    )
    parser.add_argument(
        "--windows",
        type=int,
        help="search the held-out pages again, the other scales and the mirror image only in windows around the "
        "first pass's best N spots (predict.py's windows=N)",
    )
    parser.add_argument("--data", type=Path, help="the labelled pages, if not at the runs' data.root")
    stages = parser.add_mutually_exclusive_group()
    stages.add_argument(
        "--first-stage-only", action="store_true", help="search the held-out pages again without the second stage"
    )
    stages.add_argument(
        "--candidates", type=int, help="search the held-out pages again, the second stage re-ranking this many spots"
    )
    parser.add_argument(
        "--margin",
        type=float,
        help="search the held-out pages again, the second stage moving the answer off the "
        "first stage's best spot only when surer of another by this many log-odds",
    )
    parser.add_argument(
        "--confidence",
        help="search the held-out pages again, the confidence made from this number: share "
        "(the answer's share of the candidates' odds) or score (its second-stage score)",
    )
    calibration = parser.add_mutually_exclusive_group()
    calibration.add_argument(
        "--calibrate",
        type=Path,
        metavar="OUT.json",
        help="fit Platt scaling of the confidence on the held-out answers, for waldo-export --calibration",
    )
    calibration.add_argument(
        "--calibrated-by",
        type=Path,
        metavar="CALIBRATION.json",
        help="the held-out answers' reliability table under a calibration fitted on other runs (--calibrate's file)",
    )
    parser.add_argument(
        "--with-first-stage",
        action="store_true",
        help="--calibrate weighs the first stage's log-odds at the answer too (a third number, c)",
    )
    parser.add_argument(
        "--keep", type=Path, metavar="ANSWERS.json", help="write every held-out answer here (JSON), its run named"
    )
    args = parser.parse_args(argv)
    if args.with_first_stage and args.calibrate is None:
        raise UserError("--with-first-stage: it says what --calibrate fits; give --calibrate OUT.json too")
    again = (args.scales, args.merge, args.windows, args.candidates, args.margin, args.confidence)
    rescoring = None
    if any(v is not None for v in again) or args.flip or args.first_stage_only:
        if args.scales and min(args.scales) <= 0:
            raise UserError(f"--scales {' '.join(f'{s:g}' for s in args.scales)}: every scale must be positive")
        rescoring = Rescoring.searching(
            args.scales,
            args.flip,
            args.merge,
            args.windows,
            second_stage=not args.first_stage_only,
            candidates=args.candidates,
            margin=args.margin,
            confidence=args.confidence,
        )
    print(
        fold_table(
            args.folder, rescoring, args.data, args.calibrate, args.calibrated_by, args.with_first_stage, args.keep
        )
    )


if __name__ == "__main__":
    main()
