"""One representation of a labelled page, shared by every loader and every stage after it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from waldo_pl.errors import UserError

# Scanned double pages run past PIL's decompression-bomb warning (89 Mpx); allow up to 512 Mpx.
Image.MAX_IMAGE_PIXELS = 1 << 29
EXIF_ORIENTATION = 0x0112
SIDEWAYS = {5, 6, 7, 8}  # EXIF orientations that swap width and height


@dataclasses.dataclass(frozen=True)
class Page:
    """A page as RGB uint8 (H, W, 3) and its Waldo boxes (N, 4) as pixel x1, y1, x2, y2 (max exclusive).
    `decoy_boxes` (M, 4), in the same form: Waldos printed outside the scene (a title badge's portrait, a stamp, the
    figure of a what-to-look-for box), which look like him but are not the answer (formats.with_decoys)."""

    name: str
    image: np.ndarray
    waldo_boxes: np.ndarray
    decoy_boxes: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 4), np.int64))

    def __post_init__(self):
        for field in ("waldo_boxes", "decoy_boxes"):
            object.__setattr__(self, field, np.asarray(getattr(self, field), dtype=np.int64).reshape(-1, 4))

    @property
    def height(self) -> int:
        return self.image.shape[0]

    @property
    def width(self) -> int:
        return self.image.shape[1]

    @property
    def mask(self) -> np.ndarray:
        """Binary (H, W) uint8 mask: 1 inside any Waldo box."""
        return boxes_to_mask(self.waldo_boxes, self.height, self.width)


# Boxes that frame Waldo's head alone (../waldo, ../waldo-dm) are at most 1.56 times as tall as wide;
# boxes that frame his head and body (the photos) run to twice that. The network learns heads: a box
# taller than BODY_RATIO x its width keeps its top HEAD_RATIO x width.
BODY_RATIO = 1.6
HEAD_RATIO = 1.3


def head_boxes(boxes: np.ndarray) -> np.ndarray:
    """The head part of each (N, 4) box: a head-and-body box (taller than BODY_RATIO x its width) cut to its top."""
    boxes = np.array(boxes, dtype=np.int64).reshape(-1, 4)
    width, height = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    body = height > BODY_RATIO * width
    boxes[body, 3] = boxes[body, 1] + np.round(HEAD_RATIO * width[body]).astype(np.int64)
    return boxes


def distance_to_boxes(x: float, y: float, boxes: np.ndarray) -> float:
    """Pixels from (x, y) to the nearest box (0 inside one); inf with no boxes."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if not len(boxes):
        return float("inf")
    dx = np.maximum(np.maximum(boxes[:, 0] - x, 0), x - (boxes[:, 2] - 1))
    dy = np.maximum(np.maximum(boxes[:, 1] - y, 0), y - (boxes[:, 3] - 1))
    return float(np.hypot(dx, dy).min())


def boxes_to_mask(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    mask = np.zeros((height, width), dtype=np.uint8)
    for x1, y1, x2, y2 in np.asarray(boxes).reshape(-1, 4):
        mask[y1:y2, x1:x2] = 1
    return mask


def to_rgb(image: Image.Image) -> np.ndarray:
    """Any PIL mode (CMYK, grayscale, 16-bit, palette, with alpha) as RGB uint8 (H, W, 3)."""
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # 16-bit grey: keep the top 8 bits rather than PIL's clipping at 255.
        grey = np.asarray(image).astype(np.uint32)
        grey = (grey >> 8) if grey.max() > 255 else grey
        return np.repeat(grey.astype(np.uint8)[:, :, None], 3, axis=2)
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        # Transparent parts of a page read as white paper, not black.
        rgba = image.convert("RGBA")
        paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(paper, rgba)
    return np.array(image.convert("RGB"), dtype=np.uint8)


def read_image(path: str | Path) -> np.ndarray:
    """Read a page file as RGB uint8, upright: a photo stored sideways with an EXIF orientation is turned
    the way its camera meant, so coordinates are the upright page's. A missing, unreadable or truncated
    file is a UserError.

    PIL rather than torchvision.io: it reads CMYK, palette and 16-bit pages that the
    torchvision decoders refuse or misread.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such image file; check the path")
    try:
        with Image.open(path) as image:
            image.load()
            return to_rgb(ImageOps.exif_transpose(image))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise UserError(f"{path}: not a readable image ({err}); replace or remove the file") from None


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of the upright page, from the file header, without decoding the pixels."""
    with Image.open(path) as image:
        width, height = image.size
        return (height, width) if image.getexif().get(EXIF_ORIENTATION) in SIDEWAYS else (width, height)
