"""Outputs are written whole or not at all: into a temporary file beside the target, then renamed."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path


def write_atomically(path: Path, write: Callable[[io.BufferedWriter], None]) -> None:
    """Call `write` on a temporary file and move it to `path` only if it succeeded."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomically(path: Path, text: str) -> None:
    write_atomically(path, lambda f: f.write(text.encode()))
