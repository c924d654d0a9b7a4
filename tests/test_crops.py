import itertools

import numpy as np
import pytest
import torch
from conftest import draw_page
from torch.utils.data import DataLoader

from waldo_pl.data.crops import CropLoader, CropStream
from waldo_pl.data.formats import load_pages
from waldo_pl.data.page import Page
from waldo_pl.errors import UserError

PANEL = 64


def take(stream, n):
    return list(itertools.islice(iter(stream), n))


def test_crops_have_the_promised_types_and_mix(page_folder):
    stream = CropStream(load_pages(page_folder), panel=PANEL, prop=0.34, seed=1)
    crops = take(stream, 300)
    crop, target = crops[0]
    assert crop.shape == (3, PANEL, PANEL) and crop.dtype == torch.float32
    assert target.shape == (PANEL, PANEL) and target.dtype == torch.int64
    assert 0.0 <= float(crop.min()) and float(crop.max()) <= 1.0
    with_waldo = [bool(t.any()) for _, t in crops]
    assert sum(with_waldo) == int(300 * 0.34)
    # spread evenly: every run of 6 crops holds 2 Waldo crops
    assert all(sum(with_waldo[i : i + 6]) in (2, 3) for i in range(0, 294, 6))


def test_waldo_crops_hold_a_whole_box_and_the_rest_none(page_folder):
    pages = load_pages(page_folder)
    areas = {(b[2] - b[0]) * (b[3] - b[1]) for p in pages for b in p.waldo_boxes}
    for crop, target in take(CropStream(pages, panel=PANEL, prop=0.5, seed=2), 200):
        waldo = int(target.sum())
        assert waldo == 0 or waldo in areas
        if waldo:
            # the target lies on the striped Waldo of the generated page
            assert float(crop[0][target.bool()].mean()) > 0.8


def test_a_box_larger_than_the_panel_gives_a_window_inside_it():
    page = Page("portrait", draw_page(200, 200, [(10, 20, 190, 150)]), [(10, 20, 190, 150)])
    for _, target in take(CropStream([page], panel=PANEL, prop=1.0), 20):
        assert bool(target.all())


def test_a_head_and_body_box_becomes_a_head_target_and_a_head_box_stays_whole():
    # a photo's box frames head and body (20 x 60 px): the target is its top 20 x 26; a scan's head box (20 x 26)
    # is kept
    body = Page("photo", draw_page(200, 200, [(90, 70, 110, 130)]), [(90, 70, 110, 130)])
    head = Page("scan", draw_page(200, 200, [(90, 70, 110, 96)]), [(90, 70, 110, 96)])
    for page in (body, head):
        for _, target in take(CropStream([page], panel=PANEL, prop=1.0), 10):
            rows, cols = np.nonzero(target.numpy())
            assert rows.max() - rows.min() + 1 == 26 and cols.max() - cols.min() + 1 == 20


def test_flips_show_both_ways(page_folder):
    page = Page("one", draw_page(64, 64, [(0, 0, 8, 8)]), [(0, 0, 8, 8)])
    seen = {(bool(t[0, 0]), bool(t[0, -1])) for _, t in take(CropStream([page], panel=PANEL, prop=1.0), 40)}
    assert seen == {(True, False), (False, True)}


def test_small_pages_are_padded_not_dropped():
    small = Page("small", draw_page(40, 50, [(5, 5, 15, 15)]), [(5, 5, 15, 15)])
    crops = take(CropStream([small], panel=PANEL, prop=1.0), 4)
    assert all(c.shape == (3, PANEL, PANEL) and int(t.sum()) == 100 for c, t in crops)


def test_same_seed_same_stream_and_every_key_changes_it(page_folder):
    pages = load_pages(page_folder)

    def first(seed=0, rank=0, epoch=0):
        stream = CropStream(pages, panel=PANEL, seed=seed)
        stream.rank, stream.epoch = rank, epoch
        return torch.stack([c for c, _ in take(stream, 6)])

    base = first()
    assert torch.equal(base, first())
    for other in (first(seed=1), first(rank=1), first(epoch=1)):
        assert not torch.equal(base, other)


def test_each_worker_draws_its_own_stream(page_folder):
    stream = CropStream(load_pages(page_folder), panel=PANEL, seed=0)
    batches = list(itertools.islice(DataLoader(stream, batch_size=4, num_workers=2), 4))
    # batches alternate between the workers; no two are the same
    assert len({b[0].sum().item() for b in batches}) == 4
    assert not torch.equal(batches[0][0], batches[1][0])


def test_the_loader_counts_epochs_and_stops_each_one(page_folder):
    stream = CropStream(load_pages(page_folder), panel=PANEL, seed=0)
    loader = CropLoader(stream, 3, batch_size=2)
    epochs = [[x for x, _ in loader] for _ in range(2)]
    assert len(loader) == 3 and [len(e) for e in epochs] == [3, 3]
    assert not torch.equal(epochs[0][0], epochs[1][0])
    # a loader told that one epoch already ran repeats the second epoch exactly
    resumed = CropLoader(CropStream(load_pages(page_folder), panel=PANEL, seed=0), 3, batch_size=2)
    resumed.epochs_started = 1
    assert all(torch.equal(a, b) for a, (b, _) in zip(epochs[1], resumed))


def test_bad_settings_and_pages_without_room_are_errors():
    portrait = Page("all waldo", np.zeros((64, 64, 3), np.uint8), [(0, 0, 64, 64)])
    with pytest.raises(UserError, match="Waldo-free"):
        CropStream([portrait], panel=PANEL, prop=0.34)
    assert take(CropStream([portrait], panel=PANEL, prop=1.0), 1)
    with pytest.raises(UserError, match="data.prop"):
        CropStream([portrait], panel=PANEL, prop=1.5)
    with pytest.raises(UserError, match="data.panel"):
        CropStream([portrait], panel=50)


@pytest.mark.parametrize("zoom", [0.5, 2.0])
def test_zoomed_crops_scale_waldo_with_the_page(zoom):
    box = (100, 100, 140, 160)  # 40 x 60
    page = Page("p", draw_page(400, 400, [box]), [box])
    stream = CropStream([page], panel=PANEL, prop=1.0, zooms=(zoom,))
    for crop, target in take(stream, 10):
        assert crop.shape == (3, PANEL, PANEL)
        area = int(target.sum())
        if zoom == 0.5:  # a 128 window shrunk to 64: the whole box at a quarter of its area
            assert abs(area - 40 * 60 * zoom**2) <= 60
        else:  # a 32 window inside the box: all Waldo
            assert area == PANEL * PANEL


def test_zooms_mix_and_negatives_stay_waldo_free(page_folder):
    stream = CropStream(load_pages(page_folder), panel=PANEL, prop=0.5, zooms=(0.75, 1.0, 1.5), seed=4)
    crops = take(stream, 120)
    assert sum(bool(t.any()) for _, t in crops) == 60
    assert all(c.shape == (3, PANEL, PANEL) for c, _ in crops)


def test_colour_jitter_varies_brightness_but_not_targets():
    page = Page("grey", np.full((128, 128, 3), 120, np.uint8), [(0, 0, 8, 8)])
    plain = take(CropStream([page], panel=PANEL, prop=0.0, seed=1), 30)
    jittered = take(CropStream([page], panel=PANEL, prop=0.0, seed=1, colour_jitter=0.3), 30)
    plain_means = {round(float(c.mean()), 4) for c, _ in plain}
    jitter_means = [float(c.mean()) for c, _ in jittered]
    assert len(plain_means) == 1 and max(jitter_means) - min(jitter_means) > 0.1
    assert all(0 <= float(c.min()) and float(c.max()) <= 1 for c, _ in jittered)
    assert all(int(t.sum()) == 0 for _, t in jittered)
    with pytest.raises(UserError, match="data.colour_jitter"):
        CropStream([page], panel=PANEL, colour_jitter=1.5)
    with pytest.raises(UserError, match="data.zooms"):
        CropStream([page], panel=PANEL, zooms=(0.0,))


def test_photo_look_changes_the_pixels_keeps_the_target_on_waldo_and_the_stream_seeded(page_folder):
    pages = load_pages(page_folder)
    clean = CropStream(pages, panel=64, prop=1.0, seed=3)
    photo = CropStream(pages, panel=64, prop=1.0, seed=3, photo_look=1.0)
    again = CropStream(pages, panel=64, prop=1.0, seed=3, photo_look=1.0)
    redness_inside, redness_outside = [], []
    for (c, t), (p, m), (a, n) in itertools.islice(zip(clean, photo, again), 40):
        assert p.shape == c.shape and p.dtype == torch.float32 and 0 <= float(p.min()) and float(p.max()) <= 1
        assert m.shape == t.shape and set(m.unique().tolist()) <= {0, 1}
        assert torch.equal(p, a) and torch.equal(m, n)  # a function of the seed alone
        assert (p - c).abs().mean() > 0.01
        redness = p[0] - p[1:].mean(0)
        if m.any() and (m == 0).any():
            redness_inside.append(float(redness[m == 1].mean()))
            redness_outside.append(float(redness[m == 0].mean()))
    # Waldo's red-and-white stripes are still where the target says, after the perspective and lens steps
    assert np.mean(redness_inside) > np.mean(redness_outside) + 0.1
    with pytest.raises(UserError, match="data.photo_look=2"):
        CropStream(pages, panel=64, photo_look=2)


def test_copy_paste_shows_each_waldo_in_another_pages_scene_and_leaves_the_rest_as_they_were():
    """With paste=1 a Waldo crop shows his stripes where the target says, over another page's scene (a blue page
    here, with no red); Waldo-free crops and the stream without paste are as they were."""
    blue = np.zeros((160, 160, 3), np.uint8)
    blue[..., 2] = 255
    waldo = (60, 50, 76, 66)
    pages = [Page("w", draw_page(160, 160, [waldo]), [waldo]), Page("b", blue, [])]
    pasted = take(CropStream(pages, panel=48, prop=0.5, seed=4, paste=1.0), 200)
    plain = take(CropStream(pages, panel=48, prop=0.5, seed=4), 200)
    blue_corner = lambda c: float(c[2, :3, :3].mean()) > 0.95 and float(c[0, :3, :3].mean()) < 0.05
    on_blue = [(c, t) for c, t in pasted if t.any() and blue_corner(c)]
    assert len(on_blue) > 30  # most Waldo crops are now set in the blue page (a few fall where he fills the corner)
    for crop, target in on_blue:
        redness = crop[0] - crop[1:].mean(0)
        assert float(redness[target == 1].mean()) > 0.3  # his stripes, under the target
    # Waldo-free crops are never pasted into, and the plain stream has no blue around a Waldo
    assert not any(blue_corner(c) and float((c[0] - c[1:].mean(0)).max()) > 0.3 for c, t in pasted if not t.any())
    assert not any(t.any() and blue_corner(c) for c, t in plain)
    alone = take(CropStream(pages[:1], panel=48, prop=1.0, seed=4, paste=1.0), 20)  # no other page: his own scene
    assert all(t.any() and not blue_corner(c) for c, t in alone)
    with pytest.raises(UserError, match="data.paste=2"):
        CropStream(pages, panel=48, paste=2)
