"""The fold table of a cross-validation: each run's metrics.json under a folder, per fold and pooled.

    waldo-crossval outputs/<task>/multirun_<date>   (after python train.py -m data=waldo_folds data.fold=0,1,2,3,4)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from waldo_pl.errors import UserError, exits_cleanly


def fold_table(folder: Path) -> str:
    runs = sorted(folder.rglob("metrics.json"))
    if not runs:
        raise UserError(f"{folder}: no metrics.json below it; point at the output folder of a cross-validation run")
    lines = ["| run | pages held out | hit rate | top-5 hit rate | median distance (px) | steps |", "| --- | --- | --- | --- | --- | --- |"]
    pooled = []
    for path in runs:
        record = json.loads(path.read_text())
        pages = record["pages"]
        pooled += pages
        hits = sum(p["hit"] for p in pages)
        top5 = sum(p["top5_hit"] for p in pages)
        distances = sorted(p["distance"] for p in pages)
        names = ", ".join(f"{p['page']}{'' if p['hit'] else ' (miss)'}" for p in pages)
        lines.append(f"| {path.parent.relative_to(folder)} | {names} | {hits}/{len(pages)} | {top5}/{len(pages)} | "
                     f"{distances[len(distances) // 2]:.0f} | {record['steps']} |")
    hits, top5 = sum(p["hit"] for p in pooled), sum(p["top5_hit"] for p in pooled)
    lines.append(f"| **all** | {len(pooled)} pages | **{hits}/{len(pooled)} = {hits / len(pooled):.0%}** | "
                 f"{top5}/{len(pooled)} = {top5 / len(pooled):.0%} | | |")
    return "\n".join(lines)


@exits_cleanly
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    print(fold_table(parser.parse_args(argv).folder))


if __name__ == "__main__":
    main()
