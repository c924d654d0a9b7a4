"""Write the tutorial's .npy set from labelled pages, so data moves both ways between the two."""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from waldo_pl.data.formats import NPY_LABELS, NPY_PAGES, NPY_SUB_LABELS, NPY_SUB_PAGES, load_pages
from waldo_pl.data.page import Page, boxes_to_mask
from waldo_pl.errors import UserError, exits_cleanly
from waldo_pl.files import write_atomically


def resize_page(page: Page, width: int, height: int) -> Page:
    """The page stretched to width x height (as the tutorial did), its boxes scaled with it."""
    image = np.asarray(Image.fromarray(np.asarray(page.image)).resize((width, height), Image.BILINEAR))
    scale = np.array([width / page.width, height / page.height] * 2)
    boxes = np.round(page.waldo_boxes * scale).astype(np.int64)
    boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1)
    return Page(page.name, image, boxes)


def sub_images(page: Page, size: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """A size x size window centred on each Waldo (kept inside the page), with its 0/255 label."""
    mask = boxes_to_mask(page.waldo_boxes, page.height, page.width) * 255
    out = []
    for x1, y1, x2, y2 in page.waldo_boxes:
        y0 = int(np.clip((y1 + y2) // 2 - size // 2, 0, max(page.height - size, 0)))
        x0 = int(np.clip((x1 + x2) // 2 - size // 2, 0, max(page.width - size, 0)))
        out.append((np.array(page.image[y0 : y0 + size, x0 : x0 + size]), mask[y0 : y0 + size, x0 : x0 + size]))
    return out


def _save_atomically(path: Path, array: np.ndarray, allow_pickle: bool = False) -> None:
    write_atomically(path, lambda f: np.save(f, array, allow_pickle=allow_pickle))


def write_npy(
    pages: Sequence[Page], out_dir: str | Path, width: int = 2800, height: int = 1760, sub_size: int = 224
) -> Path:
    """Write imgs_uint8, labels_uint8 and the waldo_sub_* object arrays of the tutorial's set."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / (NPY_PAGES + ".tmp")
    images = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(pages), height, width, 3))
    labels = np.zeros((len(pages), height, width), dtype=np.uint8)
    subs = []
    for i, page in enumerate(pages):
        resized = resize_page(page, width, height)
        images[i] = resized.image
        labels[i] = boxes_to_mask(resized.waldo_boxes, height, width) * 255
        subs += sub_images(resized, sub_size)
    images.flush()
    del images
    sub_pages, sub_labels = np.empty(len(subs), dtype=object), np.empty(len(subs), dtype=object)
    sub_pages[:], sub_labels[:] = [s[0] for s in subs], [s[1] for s in subs]
    _save_atomically(out_dir / NPY_LABELS, labels)
    _save_atomically(out_dir / NPY_SUB_PAGES, sub_pages, allow_pickle=True)
    _save_atomically(out_dir / NPY_SUB_LABELS, sub_labels, allow_pickle=True)
    os.replace(tmp, out_dir / NPY_PAGES)  # last: its presence marks the set as whole
    return out_dir


@exits_cleanly
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write the tutorial's .npy set from a folder of labelled pages.")
    parser.add_argument("root", type=Path, help="folder with annotations.csv (or VOC .xml files) and its pages")
    parser.add_argument("out", type=Path, help="folder to write the .npy files into")
    parser.add_argument("--width", type=int, default=2800)
    parser.add_argument("--height", type=int, default=1760)
    parser.add_argument("--sub-size", type=int, default=224)
    args = parser.parse_args(argv)
    if min(args.width, args.height, args.sub_size) < 1:
        raise UserError("--width, --height and --sub-size must be positive")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    pages = load_pages(args.root)
    print(write_npy(pages, args.out, args.width, args.height, args.sub_size))


if __name__ == "__main__":
    main()
