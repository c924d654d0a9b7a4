"""Pack what bench/gpu_crossval.sh needs on a GPU machine that has no network and takes a copy of the working
tree of at most 64 MiB, into .gpu_pack/ (git-ignored), in two parts, since the three shared folders (77 MiB) are more:

- .gpu_pack/part1: ../shared/data/waldo and waldo-dm, and wheels of Hydra and what it needs (PyTorch, Lightning
  and the rest are assumed on the machine);
- .gpu_pack/part2: ../shared/data/waldo-photos.

    python bench/gpu_pack.py
    then, on the machine, each part copied there in turn:
    bash bench/gpu_crossval.sh part1
    bash bench/gpu_crossval.sh part2    # about 9 minutes: RUN_LIMIT (540 s) for the trainings, then the tables

The files are copied as they are, byte for byte.
"""

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PARTS = {"part1": ("waldo", "waldo-dm"), "part2": ("waldo-photos",)}
WHEELS = ("hydra-core==1.3.8", "omegaconf==2.3.1", "antlr4-python3-runtime==4.9.3")
BUDGET = 56 * 2**20  # 64 MiB, less the repository's own files


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=REPO / ".gpu_pack")
    args = parser.parse_args()

    shutil.rmtree(args.out, ignore_errors=True)
    for part, folders in PARTS.items():
        for name in folders:
            shutil.copytree(args.shared / name, args.out / part / "data" / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(args.out / "part1" / "wheels"), *WHEELS],
        check=True,
    )
    for part in PARTS:
        size = sum(p.stat().st_size for p in (args.out / part).rglob("*") if p.is_file())
        print(f"{args.out / part}: {size / 2**20:.1f} MiB")
        if size > BUDGET:
            sys.exit(f"{part} is over the {BUDGET / 2**20:.0f} MiB a copy leaves beside the repository")


if __name__ == "__main__":
    main()
