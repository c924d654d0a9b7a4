"""Does a change to the search keep its answers? predict.py of another checkout (--before) and of this one, each
run once over every page of each folder at the same settings, answer by answer: the same top-1 spot (within
--near px), hits and top-5 hits against the folder's annotations.csv.

    python bench/same_answers.py --before OLD_CHECKOUT [--folder ../shared/data/waldo ...] [-- predict.py settings]

Also prints each side's time over each folder (one process a folder, start-up included) and pages a second.
"""

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


def run_predict(checkout: Path, folder: Path, out: Path, settings: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            str(checkout / "predict.py"),
            f"img={folder / 'images'}",
            f"output_dir={out}",
            f"labels={folder / 'annotations.csv'}",
            *settings,
        ],
        cwd=checkout,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, required=True, help="another checkout of this project")
    parser.add_argument(
        "--folder", type=Path, nargs="+", default=[SHARED / n for n in ("waldo", "waldo-dm", "waldo-photos")]
    )
    parser.add_argument("--near", type=float, default=8.0, help="top-1 spots this close (px) count as the same")
    parser.add_argument("settings", nargs="*", help="predict.py settings for both sides, e.g. scales=[1.0]")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp())
    same = near = moved = 0
    for folder in args.folder:
        answers, rows = {}, {}
        for side, checkout in (("before", args.before.resolve()), ("now", REPO)):
            out = work / side / folder.name
            seconds = run_predict(checkout, folder, out, args.settings)
            pages = sorted(out.glob("*.json"))
            answers[side] = {p.stem: json.loads(p.read_text()) for p in pages}
            with open(out / "report.csv", newline="") as f:
                rows[side] = list(csv.DictReader(f))
            print(
                f"{side:>6} {folder.name}: {len(pages)} pages in {seconds:.1f} s ({len(pages) / seconds:.2f} pages/s)",
                flush=True,
            )
        for name, before in answers["before"].items():
            now = answers["now"].get(name)
            distance = ((before["x"] - now["x"]) ** 2 + (before["y"] - now["y"]) ** 2) ** 0.5
            same += distance == 0
            near += 0 < distance <= args.near
            if distance > args.near:
                moved += 1
                print(
                    f"  {folder.name}/{name}: ({before['x']}, {before['y']}) {before['confidence']:.4f} -> "
                    f"({now['x']}, {now['y']}) {now['confidence']:.4f}"
                )
        for side in ("before", "now"):
            hits, top5 = (sum(int(r[key]) for r in rows[side]) for key in ("hit", "top5_hit"))
            print(f"{side:>6} {folder.name}: Waldo found on {hits}/{len(rows[side])}, among the best 5 on {top5}")
    print(f"top-1 spot: the same pixel on {same} pages, within {args.near:g} px on {near}, elsewhere on {moved}")


if __name__ == "__main__":
    main()
