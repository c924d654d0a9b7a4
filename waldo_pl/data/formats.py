"""Labelled pages from disk: annotations.csv, Pascal VOC XML, or the tutorial's .npy arrays.

Every loader returns a list of Page. Rows that do not fit their page are skipped with one
warning each; an empty result is a UserError.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

import numpy as np

from waldo_pl.data.page import Page, image_size, read_image
from waldo_pl.errors import UserError

log = logging.getLogger(__name__)

CSV_COLUMNS = ("filename", "width", "height", "class", "xmin", "ymin", "xmax", "ymax")
NPY_PAGES, NPY_LABELS = "imgs_uint8.npy", "labels_uint8.npy"
NPY_SUB_PAGES, NPY_SUB_LABELS = "waldo_sub_imgs_uint8.npy", "waldo_sub_labels_uint8.npy"


def load_pages(root: str | Path) -> list[Page]:
    """Whatever labelled set lies in `root`: the .npy arrays, an annotations.csv, or VOC XML files."""
    layout, source, image_dir = _layout(root)
    if layout == "npy":
        return load_npy(source)
    return load_csv(source, image_dir) if layout == "csv" else load_voc(source, image_dir)


def page_names(root: str | Path) -> list[str]:
    """The names of the pages `root`'s labels give, as load_pages names them, without reading a page."""
    layout, source, _ = _layout(root)
    if layout == "npy":
        return [f"{NPY_PAGES}[{i}]" for i in range(len(np.load(source / NPY_PAGES, mmap_mode="r")))]
    return list(read_csv_rows(source) if layout == "csv" else read_voc_rows(source))


def _layout(root: str | Path) -> tuple[str, Path, Path]:
    """Which of the three layouts `root` holds: ('npy', root, root), ('csv', the CSV, the images' folder) or
    ('voc', the XML files' folder, the images' folder)."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"data.root={root}: no such folder; point data.root at a folder of labelled pages")
    image_dir = root / "images" if (root / "images").is_dir() else root
    if (root / NPY_PAGES).is_file():
        return "npy", root, root
    for csv_path in (root / "annotations.csv", root / "annotations" / "annotations.csv"):
        if csv_path.is_file():
            return "csv", csv_path, image_dir
    for xml_dir in (root / "annotations", root):
        if any(xml_dir.glob("*.xml")):
            return "voc", xml_dir, image_dir
    raise UserError(
        f"data.root={root}: found no annotations.csv, VOC .xml files or {NPY_PAGES}; "
        "point data.root at a folder of labelled pages"
    )


def load_collections(roots: str | Path | list) -> list[Page]:
    """The pages of one labelled folder or of several (a list), in order. A page name that two folders share
    becomes '<folder>/<name>' in each, so that every page keeps a name of its own."""
    roots = _root_list(roots)
    collections = [load_pages(root) for root in roots]
    names = _distinct_names(roots, [[page.name for page in pages] for pages in collections])
    return [
        page if name == page.name else dataclasses.replace(page, name=name)
        for pages, folder_names in zip(collections, names)
        for page, name in zip(pages, folder_names)
    ]


def collection_of(roots: str | Path | list) -> dict[str, str]:
    """{page name, as load_collections names it: the name of the folder it comes from}, without reading a page."""
    roots = _root_list(roots)
    names = _distinct_names(roots, [page_names(root) for root in roots])
    return {name: root.name for root, folder_names in zip(roots, names) for name in folder_names}


def _root_list(roots: str | Path | list) -> list[Path]:
    roots = [Path(r) for r in roots] if isinstance(roots, (list, tuple)) else [Path(roots)]
    if not roots:
        raise UserError("data.root=[]: give a folder of labelled pages, or a list of them")
    return roots


def _distinct_names(roots: list[Path], names: list[list[str]]) -> list[list[str]]:
    """Each folder's page names, a name that two folders share made '<folder>/<name>' in each."""
    seen: dict[str, int] = {}
    for folder_names in names:
        for name in folder_names:
            seen[name] = seen.get(name, 0) + 1
    return [
        [name if seen[name] == 1 else f"{root.name}/{name}" for name in folder_names]
        for root, folder_names in zip(roots, names)
    ]


def read_groups(path: str | Path, setting: str = "data.groups") -> dict[str, str]:
    """Which pages belong together (a CSV with `filename` and `scene`, as waldo-photos/scenes.csv): page name ->
    group. The optional `scan_in_shared` column names the scan of the same spread ('14.jpg (weak match)' counts
    as 14.jpg), which joins its photos' group, so that a split keeps them on one side."""
    path = Path(path)
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as err:
        raise UserError(
            f"{setting}={path}: cannot read it ({err.strerror}); give a CSV with filename and scene columns"
        ) from None
    if not rows or not {"filename", "scene"} <= set(rows[0]):
        raise UserError(f"{setting}={path}: needs the columns filename and scene (as waldo-photos/scenes.csv)")
    groups = {}
    for row in rows:
        groups[row["filename"]] = row["scene"]
        scan = (row.get("scan_in_shared") or "").split(" ")[0]
        if scan:
            groups[scan] = row["scene"]
    return groups


DECOY_COLUMNS = ("filename", "width", "height", "xmin", "ymin", "xmax", "ymax")


def read_decoys(path: str | Path, setting: str = "data.decoys") -> dict[tuple[str, int, int], np.ndarray]:
    """{(page name, width, height): (M, 4) decoy boxes} from a CSV with the columns of annotations.csv but class:
    Waldos printed outside the scene, which are not the answer. The page's size keys it with its name, so that
    another folder's page of the same name is left alone."""
    path = Path(path)
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise UserError(
            f"{setting}={path}: cannot read it ({err}); give a CSV with the columns {','.join(DECOY_COLUMNS)}"
        ) from None
    if not rows or not set(DECOY_COLUMNS) <= set(rows[0]):
        raise UserError(f"{setting}={path}: needs the columns {','.join(DECOY_COLUMNS)} and a row a decoy")
    decoys: dict[tuple[str, int, int], list] = defaultdict(list)
    for line, row in enumerate(rows, start=2):
        try:
            width, height, x1, y1, x2, y2 = (int(row[c]) for c in DECOY_COLUMNS[1:])
        except (TypeError, ValueError):
            raise UserError(
                f"{setting}={path}:{line}: width, height, xmin, ymin, xmax, ymax must be whole numbers"
            ) from None
        if not (0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height):
            raise UserError(
                f"{setting}={path}:{line}: the box must be non-empty and inside the page's width and height"
            )
        decoys[row["filename"], width, height].append([x1, y1, x2, y2])
    return {key: np.array(boxes, dtype=np.int64) for key, boxes in decoys.items()}


def with_decoys(pages: list[Page], path: str | Path | None, setting: str = "data.decoys") -> list[Page]:
    """The pages with the decoys `path` lists on them (none for null): each page's decoy_boxes set, and a Waldo box
    whose centre lies in a decoy dropped (labels that mark a title badge's portrait as Waldo). Rows for pages not
    among `pages` are ignored, so that one file can serve several folders."""
    if path is None:
        return pages
    decoys = read_decoys(path, setting)
    out = []
    for page in pages:
        boxes = decoys.get((page.name, page.width, page.height))
        if boxes is None:
            out.append(page)
            continue
        centres = (page.waldo_boxes[:, None, :2] + page.waldo_boxes[:, None, 2:]) / 2
        inside = ((centres >= boxes[None, :, :2]) & (centres < boxes[None, :, 2:])).all(-1).any(-1)
        if inside.all():
            raise UserError(
                f"{setting}={path}: the decoys on {page.name} cover every Waldo box it has; "
                "a decoy frames a Waldo printed outside the scene, not the answer"
            )
        out.append(dataclasses.replace(page, waldo_boxes=page.waldo_boxes[~inside], decoy_boxes=boxes))
    return out


def _checked_box(where: str, name: str, box, size, page_size) -> list[int] | None:
    """The box as ints, or None (with a warning) when it does not fit its page."""
    try:
        x1, y1, x2, y2 = (int(round(float(v))) for v in box)
    except (TypeError, ValueError):
        log.warning("%s: box %s of %s is not four numbers; row skipped", where, box, name)
        return None
    width, height = page_size
    if size is not None and tuple(size) != (width, height):
        log.warning("%s: size %sx%s disagrees with %s (%dx%d); row skipped", where, *size, name, width, height)
        return None
    if not (x1 < x2 and y1 < y2):
        log.warning("%s: empty box %s on %s (needs xmin < xmax, ymin < ymax); row skipped", where, box, name)
        return None
    if x1 < 0 or y1 < 0 or x2 > width or y2 > height:
        log.warning("%s: box %s lies outside %s (%dx%d); row skipped", where, box, name, width, height)
        return None
    return [x1, y1, x2, y2]


def _labelled_pages(labels: dict[str, list[tuple[str, list, tuple | None]]], image_dir: Path) -> list[Page]:
    """Pages from {filename: [(where, box, stated size)]}, checking each box against its file."""
    pages = []
    for name, rows in labels.items():
        path = image_dir / name
        try:
            page_size = image_size(path)
        except (OSError, ValueError):
            for where, _, _ in rows:
                log.warning("%s: page %s is missing or unreadable; row skipped", where, path)
            continue
        boxes = [b for where, box, size in rows if (b := _checked_box(where, name, box, size, page_size))]
        if not boxes:
            continue
        try:
            image = read_image(path)
        except UserError as err:
            log.warning("%s; its %d row(s) skipped", err, len(boxes))
            continue
        pages.append(Page(name, image, np.array(boxes)))
    return _nonempty(pages, image_dir)


def _nonempty(pages: list[Page], source: Path) -> list[Page]:
    if not pages:
        raise UserError(
            f"{source}: no labelled page could be loaded (see the warnings above); check the labels and images"
        )
    return pages


def read_csv_rows(csv_path: Path) -> dict[str, list]:
    """{filename: [(where, box, stated size)]} from an annotations.csv."""
    labels: dict[str, list] = defaultdict(list)
    try:
        with open(csv_path, newline="") as f:
            reader = csv.DictReader(f)
            missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or ())]
            if missing:
                raise UserError(f"{csv_path}: missing column(s) {', '.join(missing)}; expected {','.join(CSV_COLUMNS)}")
            for line, row in enumerate(reader, start=2):
                box = [row[c] for c in ("xmin", "ymin", "xmax", "ymax")]
                try:
                    size = (int(row["width"]), int(row["height"]))
                except (TypeError, ValueError):
                    size = None
                labels[row["filename"]].append((f"{csv_path}:{line}", box, size))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise UserError(f"{csv_path}: cannot read it as CSV ({err}); check the file") from None
    return labels


def read_voc_rows(xml_dir: Path) -> dict[str, list]:
    """{filename: [(where, box, stated size)]} from the Pascal VOC files in a folder."""
    labels: dict[str, list] = defaultdict(list)
    for xml_path in sorted(xml_dir.glob("*.xml")):
        try:
            tree = ET.parse(xml_path).getroot()
        except ET.ParseError as err:
            log.warning("%s: not valid XML (%s); file skipped", xml_path, err)
            continue
        name = tree.findtext("filename") or f"{xml_path.stem}.jpg"
        width, height = tree.findtext("size/width"), tree.findtext("size/height")
        size = (int(width), int(height)) if width and height else None
        for obj in tree.iter("object"):
            box = [obj.findtext(f"bndbox/{k}") for k in ("xmin", "ymin", "xmax", "ymax")]
            labels[name].append((str(xml_path), box, size))
    return labels


def load_csv(csv_path: str | Path, image_dir: str | Path | None = None) -> list[Page]:
    """Pages named in an annotations.csv (`filename,width,height,class,xmin,ymin,xmax,ymax`)."""
    csv_path = Path(csv_path)
    return _labelled_pages(read_csv_rows(csv_path), Path(image_dir) if image_dir is not None else csv_path.parent)


def load_voc(xml_dir: str | Path, image_dir: str | Path | None = None) -> list[Page]:
    """Pages described by Pascal VOC files (one .xml a page, each Waldo an `<object><bndbox>`)."""
    xml_dir = Path(xml_dir)
    return _labelled_pages(read_voc_rows(xml_dir), Path(image_dir) if image_dir is not None else xml_dir)


def read_labels(path: str | Path) -> dict[str, np.ndarray]:
    """{page file name: (N, 4) Waldo boxes} from an annotations.csv or a folder of VOC files, without reading pages."""
    path = Path(path)
    if path.is_file():
        rows = read_csv_rows(path)
    elif path.is_dir() and any(path.glob("*.xml")):
        rows = read_voc_rows(path)
    elif path.is_dir() and (path / "annotations.csv").is_file():
        rows = read_csv_rows(path / "annotations.csv")
    else:
        raise UserError(f"labels={path}: not an annotations.csv nor a folder of VOC .xml files")
    boxes = {}
    for name, found in rows.items():
        kept = [b for where, box, _ in found if (b := _checked_box(where, name, box, None, (1 << 30, 1 << 30)))]
        if kept:
            boxes[name] = np.array(kept, dtype=np.int64)
    if not boxes:
        raise UserError(f"labels={path}: holds no usable Waldo box")
    return boxes


def load_npy(folder: str | Path) -> list[Page]:
    """Pages of the tutorial's set: imgs_uint8.npy (N, H, W, 3) and labels_uint8.npy (N, H, W), memory-mapped."""
    folder = Path(folder)
    try:
        images = np.load(folder / NPY_PAGES, mmap_mode="r")
        labels = np.load(folder / NPY_LABELS, mmap_mode="r")
    except (OSError, ValueError) as err:
        raise UserError(f"{folder}: cannot read {NPY_PAGES} and {NPY_LABELS} ({err}); check the arrays") from None
    if images.ndim != 4 or images.shape[-1] != 3 or labels.shape != images.shape[:3]:
        raise UserError(
            f"{folder}: {NPY_PAGES} {images.shape} and {NPY_LABELS} {labels.shape} do not match; "
            "expected (N, H, W, 3) and (N, H, W)"
        )
    from skimage.measure import label, regionprops  # only here: predict.py reads labels but not masks

    pages = []
    for i in range(len(images)):
        regions = regionprops(label(np.asarray(labels[i]) > 0))
        boxes = [(r.bbox[1], r.bbox[0], r.bbox[3], r.bbox[2]) for r in regions]
        pages.append(Page(f"{NPY_PAGES}[{i}]", images[i], np.array(boxes, dtype=np.int64)))
    return _nonempty(pages, folder)
