"""The 31 shared pages, when ../shared/data/waldo is there."""

import itertools

import pytest

from conftest import shared_pages_or_skip
from waldo_pl.data.crops import CropStream
from waldo_pl.data.formats import load_pages


def test_all_shared_pages_load_with_their_boxes():
    pages = load_pages(shared_pages_or_skip())
    assert len(pages) == 31 and sum(len(p.waldo_boxes) for p in pages) == 37
    cmyk = next(p for p in pages if p.name == "20.jpg")
    assert cmyk.image.shape == (2088, 2953, 3)
    for page in pages:
        boxes = page.waldo_boxes
        assert (boxes[:, 2] <= page.width).all() and (boxes[:, 3] <= page.height).all()


def test_crops_from_shared_pages():
    stream = CropStream(load_pages(shared_pages_or_skip()), panel=224, prop=0.34, seed=0)
    crops = list(itertools.islice(iter(stream), 60))
    with_waldo = [bool(t.any()) for _, t in crops]
    assert sum(with_waldo) == int(60 * 0.34)
    assert all(c.shape == (3, 224, 224) for c, _ in crops)


def test_both_shared_collections_load_as_one_set_of_pages():
    root = shared_pages_or_skip()
    dm = root.parent / "waldo-dm"
    if not (dm / "annotations.csv").is_file():
        pytest.skip(f"{dm} is absent")
    from waldo_pl.data.formats import load_collections

    pages = load_collections([root, dm])
    names = [p.name for p in pages]
    assert len(pages) == 31 + 20 == len(set(names)) and sum(n.startswith("dm-") for n in names) == 20
