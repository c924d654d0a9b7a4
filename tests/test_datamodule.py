import numpy as np
import pytest
import torch

from waldo_pl.data.datamodule import WaldoDataModule, split_pages
from waldo_pl.data.formats import load_pages
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
        dm = WaldoDataModule(root=str(page_folder), panel=64, batch_size=2, steps_per_epoch=1, val_fraction=0.34, **seeds)
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
    from waldo_pl.data.page import Page
    import numpy as np

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
    assert names == sorted(["b.jpg", "d.jpg", f"{page_folder.name}/a.png", "other/a.png", f"{page_folder.name}/c.png", "other/c.png"])
    assert {p.name for p in both.val_pages}.isdisjoint(p.name for p in both.train_pages) and both.val_pages
    with pytest.raises(UserError, match="data.root=/no/such: no such folder"):
        WaldoDataModule(root=[str(page_folder), "/no/such"])
