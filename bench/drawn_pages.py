"""Crowd pages the project draws itself, one Waldo on each, with their labels: pages anyone may publish.

    python bench/drawn_pages.py drawn --seeds 10-29
    python predict.py img=drawn output_dir=drawn_found labels=drawn/annotations.csv

Writes `<out>/drawn_<seed>.jpg` and `<out>/annotations.csv` (the project's label format: the box frames Waldo's hat,
head and shoulders, as the public labels do). Cartoon people in flat colours and black outlines stand on patches of
ground, back to front; some wear stripes or hats, one wears Waldo's red and white stripes, bobble hat and glasses.
The front page's picture is predict.py's answer on one of these (docs/model.md says which, and how many are found).
"""

import argparse
import csv
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SUPERSAMPLE = 4  # drawn this many times larger, then shrunk: smooth outlines
INK = (0, 0, 0)
WALDO_RED, WALDO_WHITE, WALDO_BLUE = (220, 30, 40), (250, 250, 250), (70, 110, 190)
WALDO_SKIN, WALDO_HAIR = (250, 210, 180), (110, 60, 25)
SKINS = [(246, 206, 170), (233, 180, 140), (190, 130, 90), (250, 215, 185)]
HAIRS = [(90, 50, 20), (30, 20, 10), (200, 150, 60), (120, 70, 30)]
CLOTHES = [(60, 120, 200), (90, 170, 80), (240, 200, 60), (150, 90, 170), (240, 140, 50), (120, 200, 220),
           (200, 200, 200), (170, 110, 60), (250, 170, 190), (40, 40, 120)]  # fmt: skip
GROUNDS = [(200, 230, 150), (180, 210, 240), (230, 200, 140), (210, 190, 170)]


def pick(rng: np.random.Generator, colours: list) -> tuple:
    return tuple(colours[rng.integers(len(colours))])


def person(
    draw: ImageDraw.ImageDraw, x: float, y: float, height: float, rng: np.random.Generator, waldo: bool
) -> tuple:
    """One cartoon person, the top of the head at (x, y), `height` from there to the feet; returns the label's box."""
    k = height / 100  # the drawing's unit: a hundredth of the person
    line = max(1, round(2.2 * k))
    if waldo:
        skin, hair, shirt, stripes, trousers = WALDO_SKIN, WALDO_HAIR, WALDO_RED, WALDO_WHITE, WALDO_BLUE
    else:
        skin, hair = pick(rng, SKINS), pick(rng, HAIRS)
        shirt, trousers = pick(rng, CLOTHES), pick(rng, CLOTHES)
        stripes = pick(rng, CLOTHES) if rng.random() < 0.4 else shirt
    for side in (-1, 1):  # legs
        left, right = sorted((x + side * 2 * k, x + side * 14 * k))
        draw.rectangle([left, y + 55 * k, right, y + 100 * k], fill=trousers, outline=INK, width=line)
    top, bottom = y + 24 * k, y + 60 * k
    draw.rounded_rectangle([x - 17 * k, top, x + 17 * k, bottom], radius=6 * k, fill=shirt)
    if stripes != shirt:
        band = (bottom - top) / 6
        for i in range(1, 6, 2):
            draw.rectangle([x - 16 * k, top + i * band, x + 16 * k, top + (i + 1) * band], fill=stripes)
    draw.rounded_rectangle([x - 17 * k, top, x + 17 * k, bottom], radius=6 * k, outline=INK, width=line)
    swing = rng.uniform(-1, 1) * 8 * k
    for side in (-1, 1):  # arms, hands
        shoulder = (x + side * 17 * k, top + 4 * k)
        hand = (x + side * 25 * k, top + 30 * k + swing)
        draw.line([shoulder, hand], fill=INK, width=round(9 * k) + 2)
        draw.line([shoulder, hand], fill=shirt, width=max(1, round(9 * k) - 2))
        draw.ellipse(
            [hand[0] - 4 * k, hand[1] - 4 * k, hand[0] + 4 * k, hand[1] + 4 * k], fill=skin, outline=INK, width=line
        )
    r, head_y = 11 * k, y + 12 * k
    draw.ellipse([x - r, head_y - r, x + r, head_y + 1.1 * r], fill=skin, outline=INK, width=line)
    draw.chord([x - r, head_y - r, x + r, head_y + 0.6 * r], 180, 360, fill=hair, outline=INK, width=line)
    draw.arc([x - 4 * k, head_y + 5 * k, x + 4 * k, head_y + 10 * k], 20, 160, fill=INK, width=line)
    if waldo:
        for side in (-1, 1):  # round glasses
            draw.ellipse(
                [x + side * 4.5 * k - 4 * k, head_y - k, x + side * 4.5 * k + 4 * k, head_y + 7 * k],
                outline=INK,
                width=line,
            )
        brim = head_y - 6 * k
        draw.pieslice([x - r, brim - 11 * k, x + r, brim + 11 * k], 180, 360, fill=WALDO_RED, outline=INK, width=line)
        for i, colour in enumerate([WALDO_WHITE, WALDO_RED, WALDO_WHITE]):
            band_y = brim - 3 * k - 3 * i * k
            draw.rectangle([x - 0.95 * r, band_y - 1.5 * k, x + 0.95 * r, band_y + 1.5 * k], fill=colour)
        draw.rectangle([x - r - k, brim - 2 * k, x + r + k, brim + 2 * k], fill=WALDO_WHITE, outline=INK, width=line)
        draw.ellipse([x - 4 * k, brim - 16 * k, x + 4 * k, brim - 9 * k], fill=WALDO_RED, outline=INK, width=line)
    else:
        for side in (-1, 1):  # dot eyes
            draw.ellipse(
                [x + side * 4.5 * k - 1.3 * k, head_y + 2 * k, x + side * 4.5 * k + 1.3 * k, head_y + 4.5 * k], fill=INK
            )
        if rng.random() < 0.3:  # a plain hat
            hat = pick(rng, CLOTHES[:3] + [(40, 40, 40), (170, 110, 60)])
            draw.rectangle(
                [x - 1.3 * r, head_y - 8 * k, x + 1.3 * r, head_y - 5 * k], fill=hat, outline=INK, width=line
            )
            draw.rectangle(
                [x - 0.8 * r, head_y - 18 * k, x + 0.8 * r, head_y - 6 * k], fill=hat, outline=INK, width=line
            )
    return (x - 17 * k, y - 11 * k, x + 17 * k, y + 34 * k)  # pom-pom to shoulders


def crowd_page(seed: int, width: int = 1200, height: int = 800, waldo_height: tuple = (50, 70), crowding: int = 6000):
    """A crowd with one Waldo (his height in px drawn from `waldo_height`), one person per `crowding` px of page; the
    page and Waldo's box (x1, y1, x2, y2) in its pixels."""
    rng = np.random.default_rng(seed)
    scale = SUPERSAMPLE
    canvas = Image.new("RGB", (width * scale, height * scale), (235, 215, 160))
    draw = ImageDraw.Draw(canvas)
    for _ in range(width * height // 48000):  # patches of ground
        x, y, r = rng.uniform(0, width) * scale, rng.uniform(0, height) * scale, rng.uniform(40, 200) * scale
        draw.ellipse([x - r, y - 0.6 * r, x + r, y + 0.6 * r], fill=pick(rng, GROUNDS), outline=INK, width=2 * scale)
    tall = rng.uniform(*waldo_height)
    people = [(rng.uniform(0, width), rng.uniform(-0.1 * height, height), tall * rng.uniform(0.85, 1.15), False)
              for _ in range(width * height // crowding)]  # fmt: skip
    people.append((rng.uniform(0.15, 0.85) * width, rng.uniform(0.2, 0.8) * height, tall, True))
    box = None
    for x, y, size, waldo in sorted(people, key=lambda p: p[1] + p[2]):  # back to front: feet higher up drawn first
        drawn = person(draw, x * scale, y * scale, size * scale, rng, waldo)
        if waldo:
            box = tuple(round(v / scale) for v in drawn)
    return canvas.resize((width, height), Image.LANCZOS), box


def seeds(text: str) -> list[int]:
    first, _, last = text.partition("-")
    return list(range(int(first), int(last or first) + 1))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="folder to write the pages and annotations.csv into")
    parser.add_argument("--seeds", type=seeds, default=seeds("10-29"), help="a seed or a range, e.g. 10-29")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for seed in args.seeds:
        page, (x1, y1, x2, y2) = crowd_page(seed)
        name = f"drawn_{seed}.jpg"
        page.save(args.out / name, quality=92)
        rows.append([name, page.width, page.height, "waldo", x1, y1, x2, y2])
    with open(args.out / "annotations.csv", "w", newline="") as f:
        csv.writer(f).writerows([["filename", "width", "height", "class", "xmin", "ymin", "xmax", "ymax"], *rows])
    print(f"{len(rows)} drawn pages and their labels in {args.out}")


if __name__ == "__main__":
    main()
