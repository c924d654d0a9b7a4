"""The shared pages, when ../shared/data/waldo (and its neighbours) are there."""

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


def test_photo_folds_leave_one_spread_out_with_its_scan():
    from omegaconf import OmegaConf

    from waldo_pl import CONF_DIR
    from waldo_pl.data.datamodule import split_pages
    from waldo_pl.data.formats import load_collections, read_groups

    root = shared_pages_or_skip().parent
    if not (root / "waldo-photos" / "scenes.csv").is_file() or not (root / "waldo-dm" / "annotations.csv").is_file():
        pytest.skip("the photos or waldo-dm are absent")
    cfg = OmegaConf.load(CONF_DIR / "data" / "photo_folds.yaml")
    pages = load_collections([root / "waldo", root / "waldo-dm", root / "waldo-photos"])
    groups = read_groups(root / "waldo-photos" / "scenes.csv")
    held = [
        [p.name for p in split_pages(pages, folds=cfg.folds, fold=k, groups=groups, groups_only=cfg.groups_only)[1]]
        for k in range(cfg.folds)
    ]
    photos = [sorted(n for n in fold if n.startswith("webcam_")) for fold in held]
    assert sorted(n for fold in photos for n in fold) == sorted(p.name for p in pages if p.name.startswith("webcam_"))
    assert all(len(fold) == 6 and len({groups[n] for n in fold}) == 1 for fold in photos)  # one spread a fold
    for fold in held:  # its scan, where the shared folders have it, is held out with it
        scans = [n for n in fold if not n.startswith("webcam_")]
        assert all(groups[s] == groups[fold[0]] for s in scans) and len(scans) <= 1
    assert sum(len(fold) for fold in held) == 36 + sum(1 for fold in held for n in fold if not n.startswith("webcam_"))


def test_the_projects_decoys_frame_a_waldo_printed_outside_the_scene_of_a_shared_page():
    """conf/data/decoys.csv: each row fits a shared page of its size; pages 8 and 10 lose the stamp their labels mark
    as Waldo and keep the scene's Waldo; the other decoys leave every label as it was."""
    from waldo_pl import CONF_DIR
    from waldo_pl.data.formats import load_collections, read_decoys, with_decoys

    root = shared_pages_or_skip().parent
    if not (root / "waldo-dm" / "annotations.csv").is_file():
        pytest.skip(f"{root / 'waldo-dm'} is absent")
    pages = load_collections([root / "waldo", root / "waldo-dm"])
    decoys = read_decoys(CONF_DIR / "data" / "decoys.csv")
    sizes = {(p.name, p.width, p.height) for p in pages}
    assert set(decoys) <= sizes and sum(len(b) for b in decoys.values()) == 9
    after = {p.name: p for p in with_decoys(pages, CONF_DIR / "data" / "decoys.csv")}
    lost = {p.name: len(p.waldo_boxes) - len(after[p.name].waldo_boxes) for p in pages}
    assert {name: n for name, n in lost.items() if n} == {"8.jpg": 1, "10.jpg": 1}
    assert all(len(after[name].decoy_boxes) == len(boxes) for (name, _, _), boxes in decoys.items())
