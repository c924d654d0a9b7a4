import logging

import numpy as np
import pytest
from conftest import draw_page, write_csv
from PIL import Image

from waldo_pl.data.formats import load_csv, load_npy, load_pages, load_voc, read_decoys, with_decoys
from waldo_pl.data.prepare import main as prepare_main
from waldo_pl.data.prepare import write_npy
from waldo_pl.errors import UserError


def boxes_by_name(pages):
    return {p.name: sorted(map(tuple, p.waldo_boxes.tolist())) for p in pages}


def test_csv_folder_loads_pages_boxes_and_masks(page_folder):
    pages = load_pages(page_folder)
    assert [p.name for p in pages] == ["a.png", "b.jpg", "c.png"]
    a = pages[0]
    assert a.image.shape == (120, 160, 3) and a.image.dtype == np.uint8
    assert boxes_by_name(pages)["a.png"] == [(20, 30, 36, 50), (100, 70, 116, 90)]
    assert a.mask.sum() == 16 * 20 * 2
    # the striped Waldo really is where the box says
    assert a.image[30:50, 20:36, 0].mean() > 200


def write_voc(path, filename, size, boxes):
    objects = "".join(
        f"<object><name>waldo</name><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
        f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
        for b in boxes
    )
    path.write_text(
        f"<annotation><filename>{filename}</filename><size><width>{size[0]}</width>"
        f"<height>{size[1]}</height><depth>3</depth></size>{objects}</annotation>"
    )


def test_voc_folder_loads_the_same_pages_as_csv(page_folder):
    from_csv = load_csv(page_folder / "annotations.csv", page_folder / "images")
    voc = page_folder / "voc"
    voc.mkdir()
    for page in from_csv:
        write_voc(voc / f"{page.name}.xml", page.name, (page.width, page.height), page.waldo_boxes.tolist())
    (voc / "broken.xml").write_text("<annotation><filename>")
    from_voc = load_voc(voc, page_folder / "images")
    assert boxes_by_name(from_voc) == boxes_by_name(from_csv)
    assert all((v.image == c.image).all() for v, c in zip(from_voc, from_csv))


def test_prepare_writes_the_tutorial_set_and_it_loads_back(page_folder, tmp_path):
    pages = load_pages(page_folder)
    out = write_npy(pages, tmp_path / "npy", width=200, height=100, sub_size=32)
    images = np.load(out / "imgs_uint8.npy")
    labels = np.load(out / "labels_uint8.npy")
    subs = np.load(out / "waldo_sub_imgs_uint8.npy", allow_pickle=True)
    sub_labels = np.load(out / "waldo_sub_labels_uint8.npy", allow_pickle=True)
    assert images.shape == (3, 100, 200, 3) and labels.shape == (3, 100, 200)
    assert set(np.unique(labels)) == {0, 255}
    assert len(subs) == len(sub_labels) == 4
    assert all(
        s.shape == (32, 32, 3) and lab.shape == (32, 32) and lab.max() == 255 for s, lab in zip(subs, sub_labels)
    )
    assert not list(out.glob("*.tmp"))

    back = load_npy(out)
    assert isinstance(back[0].image, np.memmap)  # memory-mapped, not copied
    # page a (160x120 -> 200x100): box (20, 30, 36, 50) scales to (25, 25, 45, 42)
    assert (25, 25, 45, 42) in boxes_by_name(back)["imgs_uint8.npy[0]"]
    assert sum(len(p.waldo_boxes) for p in back) == 4
    assert load_pages(out)[0].name == "imgs_uint8.npy[0]"


def test_prepare_command_reports_a_bad_root_in_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        prepare_main([str(tmp_path / "missing"), str(tmp_path / "out")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "missing" in err and "\n" not in err and not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "bad_row, why",
    [
        (("a.png", 160, 120, "waldo", 150, 10, 170, 20), "outside"),
        (("a.png", 160, 120, "waldo", 50, 10, 50, 20), "empty box"),
        (("a.png", 160, 120, "waldo", 50, 30, 60, 20), "empty box"),
        (("a.png", 464, 547, "waldo", 5, 5, 10, 10), "disagrees"),
        (("gone.jpg", 100, 100, "waldo", 5, 5, 10, 10), "missing"),
        (("a.png", 160, 120, "waldo", "x", 5, 10, 10), "not four numbers"),
    ],
)
def test_a_row_that_does_not_fit_is_skipped_with_one_warning(page_folder, caplog, bad_row, why):
    good = load_pages(page_folder)
    rows = [(p.name, p.width, p.height, "waldo", *b) for p in good for b in p.waldo_boxes.tolist()]
    write_csv(page_folder / "annotations.csv", rows[:1] + [bad_row] + rows[1:])
    with caplog.at_level(logging.WARNING):
        pages = load_pages(page_folder)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and why in warnings[0] and "annotations.csv:3" in warnings[0]
    assert boxes_by_name(pages) == boxes_by_name(good)


def test_a_broken_page_is_skipped_and_the_rest_kept(page_folder, caplog):
    (page_folder / "images" / "b.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    with caplog.at_level(logging.WARNING):
        pages = load_pages(page_folder)
    assert [p.name for p in pages] == ["a.png", "c.png"]
    assert any("b.jpg" in r.getMessage() for r in caplog.records)


def test_cmyk_page_loads_as_rgb(tmp_path):
    (tmp_path / "images").mkdir()
    Image.fromarray(draw_page(64, 80, [(5, 5, 20, 30)])).convert("CMYK").save(tmp_path / "images" / "k.jpg")
    write_csv(tmp_path / "annotations.csv", [("k.jpg", 80, 64, "waldo", 5, 5, 20, 30)])
    (page,) = load_pages(tmp_path)
    assert page.image.shape == (64, 80, 3) and page.image[5:30, 5:20, 0].mean() > 180


def test_no_usable_rows_is_an_error(page_folder):
    write_csv(page_folder / "annotations.csv", [("gone.jpg", 10, 10, "waldo", 1, 1, 5, 5)])
    with pytest.raises(UserError, match="no labelled page"):
        load_pages(page_folder)


def test_unknown_folder_and_missing_columns_are_errors(tmp_path):
    with pytest.raises(UserError, match="no such folder"):
        load_pages(tmp_path / "absent")
    with pytest.raises(UserError, match="found no annotations.csv"):
        load_pages(tmp_path)
    (tmp_path / "annotations.csv").write_text("name,box\nx.jpg,1\n")
    with pytest.raises(UserError, match="missing column"):
        load_pages(tmp_path)


def test_npy_arrays_of_the_wrong_shape_are_an_error(tmp_path):
    np.save(tmp_path / "imgs_uint8.npy", np.zeros((2, 8, 8, 3), np.uint8))
    np.save(tmp_path / "labels_uint8.npy", np.zeros((2, 8, 9), np.uint8))
    with pytest.raises(UserError, match="do not match"):
        load_pages(tmp_path)


def write_decoys(path, rows):
    import csv

    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([("filename", "width", "height", "xmin", "ymin", "xmax", "ymax"), *rows])
    return path


def test_decoys_stay_with_their_page_and_drop_the_waldo_box_they_frame(page_folder, tmp_path):
    """A label that marks a title badge's portrait as Waldo loses that box; a page of the same name but another size
    (another folder's) is left alone."""
    decoys = write_decoys(
        tmp_path / "decoys.csv", [("a.png", 160, 120, 96, 66, 120, 94), ("b.jpg", 999, 96, 0, 0, 5, 5)]
    )
    pages = {p.name: p for p in with_decoys(load_pages(page_folder), decoys)}
    assert pages["a.png"].waldo_boxes.tolist() == [[20, 30, 36, 50]]
    assert pages["a.png"].decoy_boxes.tolist() == [[96, 66, 120, 94]]
    assert pages["b.jpg"].decoy_boxes.shape == (0, 4) and len(pages["b.jpg"].waldo_boxes) == 1
    assert with_decoys(list(pages.values()), None) == list(pages.values())


@pytest.mark.parametrize(
    "rows, why",
    [
        ([("c.png", 56, 48, 5, 5, 30, 35)], "cover every Waldo box"),
        ([("a.png", 160, 120, 5, "x", 10, 10)], "decoys.csv:2: width, height"),
        ([("a.png", 160, 120, 150, 5, 170, 10)], "inside the page"),
    ],
)
def test_a_bad_decoy_is_one_line_naming_the_setting(page_folder, tmp_path, rows, why):
    decoys = write_decoys(tmp_path / "decoys.csv", rows)
    with pytest.raises(UserError, match=why) as err:
        with_decoys(load_pages(page_folder), decoys)
    assert str(err.value).startswith(f"data.decoys={decoys}") and "\n" not in str(err.value)


def test_a_decoys_file_without_its_columns_is_refused(tmp_path):
    (tmp_path / "decoys.csv").write_text("filename,xmin,ymin,xmax,ymax\na.png,1,1,5,5\n")
    with pytest.raises(UserError, match="needs the columns filename,width,height"):
        read_decoys(tmp_path / "decoys.csv")
    with pytest.raises(UserError, match="cannot read it"):
        read_decoys(tmp_path / "missing.csv")
