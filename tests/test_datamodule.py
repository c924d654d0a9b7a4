import numpy as np
import pytest
import torch

from waldo_pl.data.datamodule import WaldoDataModule, split_pages
from waldo_pl.data.formats import collection_of, load_pages
from waldo_pl.errors import UserError


def test_validation_pages_are_held_out_whole(page_folder):
    dm = WaldoDataModule(root=str(page_folder), panel=64, batch_size=4, steps_per_epoch=2, val_pages=["b.jpg"])
    dm.setup("fit")
    assert [p.name for p in dm.val_pages] == ["b.jpg"]
    assert "b.jpg" not in {p.name for p in dm.crop_stream.pages}
    (batch,) = list(dm.val_dataloader())
    assert batch["name"] == "b.jpg" and batch["page"].shape == (96, 128, 3) and batch["page"].dtype == np.uint8
    assert batch["waldo_boxes"].tolist() == [[60, 10, 76, 30]]
    train = list(dm.train_dataloader())
    assert len(train) == 2 and train[0][0].shape == (4, 3, 64, 64)


def test_a_seeded_fraction_picks_the_same_pages_every_time(page_folder):
    pages = load_pages(page_folder)
    picks = {tuple(p.name for p in split_pages(pages, None, 0.34, seed)[1]) for seed in range(20)}
    assert all(len(p) == 1 for p in picks) and len(picks) > 1
    assert split_pages(pages, None, 0.34, 3)[1] == split_pages(pages, None, 0.34, 3)[1]
    assert split_pages(pages, None, 0.0, 3)[1] == []


def test_bad_split_settings_are_errors(page_folder):
    pages = load_pages(page_folder)
    with pytest.raises(UserError, match="data.val_pages: zzz.jpg"):
        split_pages(pages, ["zzz.jpg"], 0.2, 0)
    with pytest.raises(UserError, match="every page is held out"):
        split_pages(pages, [p.name for p in pages], 0.2, 0)
    with pytest.raises(UserError, match="data.val_fraction"):
        split_pages(pages, None, 1.0, 0)


@pytest.mark.parametrize("setting, value", [("batch_size", 0), ("steps_per_epoch", 0), ("num_workers", -1)])
def test_bad_loader_settings_are_errors_naming_the_setting(page_folder, setting, value):
    with pytest.raises(UserError, match=f"data.{setting}={value}"):
        WaldoDataModule(root=str(page_folder), **{setting: value})


def test_split_seed_keeps_the_split_while_seed_changes_the_crops(page_folder):
    def held_out_and_first_batch(**seeds):
        dm = WaldoDataModule(
            root=str(page_folder), panel=64, batch_size=2, steps_per_epoch=1, val_fraction=0.34, **seeds
        )
        dm.setup("fit")
        return [p.name for p in dm.val_pages], list(dm.train_dataloader())[0][0]

    splits = {seed: held_out_and_first_batch(seed=seed) for seed in range(6)}
    assert len({tuple(names) for names, _ in splits.values()}) > 1  # seed alone moves the split
    fixed = [held_out_and_first_batch(seed=seed, split_seed=0) for seed in range(6)]
    assert all(names == splits[0][0] for names, _ in fixed)
    assert not torch.equal(fixed[0][1], fixed[1][1])  # while the crops still follow seed


def test_state_dict_carries_the_epoch_count(page_folder):
    dm = WaldoDataModule(root=str(page_folder), panel=64, batch_size=2, steps_per_epoch=1, val_fraction=0)
    dm.setup("fit")
    first = [list(dm.train_dataloader()) for _ in range(3)]
    state = dm.state_dict()
    assert state == {"epochs_started": 3}
    fresh = WaldoDataModule(root=str(page_folder), panel=64, batch_size=2, steps_per_epoch=1, val_fraction=0)
    fresh.setup("fit")
    fresh.load_state_dict({"epochs_started": 2})
    assert torch.equal(list(fresh.train_dataloader())[0][0], first[2][0][0])


def test_waldo_pixel_fraction_is_measured_on_the_stream(page_folder):
    dm = WaldoDataModule(root=str(page_folder), panel=64, prop=0.5, val_fraction=0)
    dm.setup("fit")
    first = next(iter(dm.crop_stream))[0]
    low = dm.waldo_pixel_fraction()
    # the sample is drawn from a copy with its own seed: the training stream is left as it was
    assert dm.crop_stream.seed == dm.hparams.seed
    assert torch.equal(next(iter(dm.crop_stream))[0], first)
    dm.crop_stream.prop = 1.0
    assert 0 < low < dm.waldo_pixel_fraction() < 1


def test_folds_cover_every_page_once_and_spare_always_train(tmp_path):
    import numpy as np

    from waldo_pl.data.page import Page

    pages = [Page(f"{i}.jpg", np.zeros((8, 8, 3), np.uint8), [(0, 0, 2, 2)]) for i in range(1, 13)]
    portraits = ["11.jpg", "12.jpg"]
    held = [[p.name for p in split_pages(pages, folds=5, fold=k, seed=3, always_train=portraits)[1]] for k in range(5)]
    flat = sorted(n for fold in held for n in fold)
    assert flat == sorted(f"{i}.jpg" for i in range(1, 11))  # each puzzle page held out exactly once
    assert all(len(fold) == 2 for fold in held)
    train, _ = split_pages(pages, folds=5, fold=0, seed=3, always_train=portraits)
    assert set(portraits) <= {p.name for p in train}
    with pytest.raises(UserError, match="data.fold=5"):
        split_pages(pages, folds=5, fold=5)
    with pytest.raises(UserError, match="data.folds=1"):
        split_pages(pages, folds=1)


def test_data_root_takes_several_folders_and_keeps_page_names_apart(page_folder, tmp_path):
    import shutil

    other = tmp_path / "other"
    shutil.copytree(page_folder / "images", other / "images")
    (other / "images" / "b.jpg").rename(other / "images" / "d.jpg")
    text = (page_folder / "annotations.csv").read_text().replace("b.jpg", "d.jpg")
    (other / "annotations.csv").write_text(text)
    one = WaldoDataModule(root=str(page_folder), panel=32, folds=2, fold=0)
    one.setup()
    both = WaldoDataModule(root=[str(page_folder), str(other)], panel=32, folds=2, fold=0)
    both.setup()
    names = sorted(p.name for p in both.train_pages + both.val_pages)
    assert len(one.train_pages + one.val_pages) == 3
    # a.png and c.png are in both folders: each takes its folder's name; b.jpg and d.jpg keep theirs
    assert names == sorted(
        ["b.jpg", "d.jpg", f"{page_folder.name}/a.png", "other/a.png", f"{page_folder.name}/c.png", "other/c.png"]
    )
    # the same names, and the folder each comes from, read from the labels alone
    assert collection_of([str(page_folder), str(other)]) == {
        "b.jpg": page_folder.name,
        f"{page_folder.name}/a.png": page_folder.name,
        f"{page_folder.name}/c.png": page_folder.name,
        "d.jpg": "other",
        "other/a.png": "other",
        "other/c.png": "other",
    }
    assert {p.name for p in both.val_pages}.isdisjoint(p.name for p in both.train_pages) and both.val_pages
    with pytest.raises(UserError, match="data.root=/no/such: no such folder"):
        WaldoDataModule(root=[str(page_folder), "/no/such"])


def test_grouped_pages_stay_on_one_side_of_every_split(tmp_path):
    from waldo_pl.data.formats import read_groups
    from waldo_pl.data.page import Page

    (tmp_path / "scenes.csv").write_text(
        "filename,scene,scan_in_shared\np1.jpg,s1,5.jpg (weak match)\np2.jpg,s1,5.jpg (weak match)\n"
        "p3.jpg,s2,\np4.jpg,s2,\np5.jpg,s3,waldo/7.jpg\n"
    )
    groups = read_groups(tmp_path / "scenes.csv")
    assert groups["5.jpg"] == "s1" and groups["p3.jpg"] == "s2"
    names = ["p1.jpg", "p2.jpg", "p3.jpg", "p4.jpg", "p5.jpg", "5.jpg", "waldo/7.jpg", "8.jpg", "9.jpg"]
    pages = [Page(n, np.zeros((8, 8, 3), np.uint8), [(0, 0, 2, 2)]) for n in names]
    groups["7.jpg"] = "s3"  # a page renamed <folder>/<name> is found by its file name
    for folds in (2, 3):
        held = [
            {p.name for p in split_pages(pages, folds=folds, fold=k, seed=1, groups=groups, groups_only=True)[1]}
            for k in range(folds)
        ]
        assert sorted(n for fold in held for n in fold) == sorted(names[:7])  # 8 and 9 belong to no group: always train
        for fold in held:
            assert ({"p1.jpg", "p2.jpg", "5.jpg"} <= fold) or not ({"p1.jpg", "p2.jpg", "5.jpg"} & fold)
            assert ({"p5.jpg", "waldo/7.jpg"} <= fold) or not ({"p5.jpg", "waldo/7.jpg"} & fold)
    # without groups_only an ungrouped page is a group of its own; a fraction holds out whole groups too
    held = {p.name for k in range(4) for p in split_pages(pages, folds=4, fold=k, seed=1, groups=groups)[1]}
    assert held == set(names)
    for seed in range(10):
        fraction = {p.name for p in split_pages(pages, val_fraction=0.4, seed=seed, groups=groups)[1]}
        assert ({"p3.jpg", "p4.jpg"} <= fraction) or not ({"p3.jpg", "p4.jpg"} & fraction)
    with pytest.raises(UserError, match="data.folds=4"):
        split_pages(pages, folds=4, groups=groups, groups_only=True)  # three groups
    with pytest.raises(UserError, match="groups_only"):
        split_pages(pages, folds=2, groups_only=True)


def test_folds_deal_the_groups_of_several_pages_evenly(tmp_path):
    """Four spreads of photos among 20 single scans, 4 folds: each fold holds out one spread, at every seed (a plain
    shuffle would often put two in one fold and leave another with none)."""
    from waldo_pl.data.page import Page

    photos = {f"p{s}_{i}.jpg": f"s{s}" for s in range(4) for i in range(3)}
    names = [*photos, *(f"{i}.jpg" for i in range(20))]
    pages = [Page(n, np.zeros((8, 8, 3), np.uint8), [(0, 0, 2, 2)]) for n in names]
    for seed in range(20):
        held = [{p.name for p in split_pages(pages, folds=4, fold=k, seed=seed, groups=photos)[1]} for k in range(4)]
        assert sorted(n for fold in held for n in fold) == sorted(names)
        assert [len({photos[n] for n in fold if n in photos}) for fold in held] == [1, 1, 1, 1]
        assert all(len(fold) == 8 for fold in held)  # a spread's 3 photos and 5 scans each


def test_a_bad_groups_file_is_named(page_folder, tmp_path):
    with pytest.raises(UserError, match="data.groups=.*missing.csv"):
        WaldoDataModule(root=str(page_folder), groups=str(tmp_path / "missing.csv"))
    (tmp_path / "wrong.csv").write_text("name,spread\na.jpg,1\n")
    with pytest.raises(UserError, match="filename and scene"):
        WaldoDataModule(root=str(page_folder), groups=str(tmp_path / "wrong.csv"))


def test_data_decoys_go_with_the_pages_to_both_sides_of_the_split(page_folder, tmp_path):
    (tmp_path / "decoys.csv").write_text(
        "filename,width,height,xmin,ymin,xmax,ymax\na.png,160,120,96,66,120,94\nb.jpg,128,96,0,0,20,20\n"
    )
    dm = WaldoDataModule(root=str(page_folder), panel=64, val_pages=["b.jpg"], decoys=str(tmp_path / "decoys.csv"))
    dm.setup("fit")
    train = {p.name: p for p in dm.train_pages}
    assert train["a.png"].waldo_boxes.tolist() == [[20, 30, 36, 50]] and train["a.png"].decoy_boxes.tolist() == [
        [96, 66, 120, 94]
    ]
    assert dm.val_pages[0].decoy_boxes.tolist() == [[0, 0, 20, 20]]
    assert dm.crop_stream.pages[0].decoy_boxes.tolist() == [[96, 66, 120, 94]]  # the stream's pages keep them
    with pytest.raises(UserError, match="data.decoys=.*missing.csv"):
        WaldoDataModule(root=str(page_folder), decoys=str(tmp_path / "missing.csv"))
