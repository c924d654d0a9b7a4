"""Fill a data root with the public Waldo pages at a pinned commit, checked file by file.

Each file is fetched into `<name>.part` (resumed with an HTTP Range request when a part is
already there), checked against the manifest's size and SHA-256, and only then moved into place.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import logging
import os
import urllib.error
import urllib.request
from importlib import resources
from pathlib import Path

from tqdm import tqdm

from waldo_pl.errors import UserError, exits_cleanly

log = logging.getLogger(__name__)

REPOSITORY = "tadejmagajna/HereIsWally"
COMMIT = "eba5274f65c1b9b636aba23942364933a632efc1"
BASE_URL = f"https://raw.githubusercontent.com/{REPOSITORY}/{COMMIT}"
COMPLETE_MARKER = ".complete"
CHUNK = 1 << 16


@dataclasses.dataclass(frozen=True)
class ManifestRow:
    path: str
    bytes: int
    sha256: str


def read_manifest(path: str | Path | None = None) -> list[ManifestRow]:
    """The rows of a manifest CSV (`path,bytes,sha256`); by default the one shipped with the package."""
    source = Path(path) if path else resources.files("waldo_pl.data") / "download_manifest.csv"
    with source.open(newline="") as f:
        return [ManifestRow(r["path"], int(r["bytes"]), r["sha256"]) for r in csv.DictReader(f)]


def default_root() -> Path:
    """Where the pages go when data.root is not set: $WALDO_PL_DATA, else ~/.cache/waldo_pl."""
    cache = Path(os.environ.get("WALDO_PL_DATA", Path.home() / ".cache" / "waldo_pl")).expanduser()
    return cache / f"HereIsWally-{COMMIT[:7]}"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fetch(url: str, part: Path, expected_bytes: int, timeout: float, bar: tqdm) -> None:
    """Append the rest of `url` to `part`, asking only for the bytes it lacks."""
    have = part.stat().st_size if part.exists() else 0
    if have >= expected_bytes:
        part.unlink()
        have = 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        if have and response.status != 206:  # the server ignored the range: start over
            have = 0
        bar.update(have)
        with open(part, "ab" if have else "wb") as f:
            while block := response.read(CHUNK):
                f.write(block)
                bar.update(len(block))


def download(
    root: str | Path,
    base_url: str = BASE_URL,
    manifest: list[ManifestRow] | None = None,
    timeout: float = 30.0,
    progress: bool | None = None,
) -> Path:
    """Fetch every manifest file missing from `root`; a bad file is reported after the others are done."""
    root = Path(root)
    rows = manifest if manifest is not None else read_manifest()
    todo = [r for r in rows if not (root / r.path).is_file() or (root / r.path).stat().st_size != r.bytes]
    rejected = []
    with tqdm(
        total=sum(r.bytes for r in todo),
        unit="B",
        unit_scale=True,
        desc="Waldo pages",
        disable=None if progress is None else not progress,
    ) as bar:
        for row in todo:
            dest = root / row.path
            part = dest.with_name(dest.name + ".part")
            url = f"{base_url.rstrip('/')}/{row.path}"
            try:
                dest.parent.mkdir(parents=True, exist_ok=True)
                _fetch(url, part, row.bytes, timeout, bar)
            except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
                reason = getattr(err, "reason", err)
                raise UserError(
                    f"cannot download {url} ({reason}); with no network, point data.root at a local copy "
                    "of the pages (a folder with annotations.csv and images/)"
                ) from None
            if part.stat().st_size != row.bytes or sha256_of(part) != row.sha256:
                part.unlink()
                rejected.append(row.path)
                log.warning("%s: size or SHA-256 differs from the manifest; file rejected", url)
                continue
            os.replace(part, dest)
    if rejected:
        raise UserError(
            f"{len(rejected)} download(s) failed their checksum ({', '.join(rejected)}); "
            "run again, or set data.root to a local copy"
        )
    (root / COMPLETE_MARKER).write_text(f"{REPOSITORY}@{COMMIT}\n")
    return root


def ensure_downloaded(root: str | Path | None = None, **kwargs) -> Path:
    """The root, downloaded first unless an earlier download finished there."""
    root = Path(root) if root is not None else default_root()
    if not (root / COMPLETE_MARKER).is_file():
        log.info("downloading the Waldo pages into %s", root)
        download(root, **kwargs)
    return root


@exits_cleanly
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Download the public Waldo pages, checked against the manifest.")
    parser.add_argument("root", nargs="?", type=Path, default=None, help=f"target folder (default: {default_root()})")
    parser.add_argument("--base-url", default=BASE_URL)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(download(args.root or default_root(), base_url=args.base_url))


if __name__ == "__main__":
    main()
