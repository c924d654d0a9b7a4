import numpy as np
import pytest
from PIL import Image

from waldo_pl.data.page import Page, read_image, to_rgb
from waldo_pl.errors import UserError


@pytest.mark.parametrize(
    "mode, make",
    [
        ("CMYK", lambda rgb: rgb.convert("CMYK")),
        ("L", lambda rgb: rgb.convert("L")),
        ("RGBA", lambda rgb: rgb.convert("RGBA")),
        ("P", lambda rgb: rgb.convert("P")),
        ("I;16", lambda rgb: Image.fromarray((np.asarray(rgb.convert("L"), np.uint16) * 257).astype(np.uint16))),
    ],
)
def test_every_mode_becomes_rgb_uint8(mode, make):
    rgb = Image.fromarray(np.tile(np.arange(0, 250, 10, dtype=np.uint8)[None, :, None], (7, 1, 3)))
    page = make(rgb)
    assert page.mode == mode
    out = to_rgb(page)
    assert out.shape == (7, 25, 3) and out.dtype == np.uint8
    # Brightness survives the conversion (16-bit is not clipped to white, CMYK not inverted).
    assert abs(int(out[..., 1].mean()) - 120) < 20


def test_transparent_paper_reads_white():
    rgba = np.zeros((4, 4, 4), np.uint8)
    assert (to_rgb(Image.fromarray(rgba, "RGBA")) == 255).all()


def test_read_image_reports_missing_and_broken_files(tmp_path):
    with pytest.raises(UserError, match="no such image file"):
        read_image(tmp_path / "nope.jpg")
    (tmp_path / "text.jpg").write_text("not an image")
    with pytest.raises(UserError, match="text.jpg: not a readable image"):
        read_image(tmp_path / "text.jpg")
    Image.fromarray(np.full((200, 200, 3), 7, np.uint8)).save(tmp_path / "whole.jpg")
    data = (tmp_path / "whole.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="cut.jpg"):
        read_image(tmp_path / "cut.jpg")


def test_page_mask_matches_boxes():
    page = Page("p", np.zeros((10, 12, 3), np.uint8), [(1, 2, 4, 5), (8, 0, 12, 1)])
    assert page.mask.sum() == 3 * 3 + 4 * 1
    assert page.mask[2:5, 1:4].all() and page.mask[0, 8:12].all()


# What each EXIF orientation asks a viewer to do to the stored pixels, undone here to store an upright page.
STORE_SIDEWAYS = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, 1),
    7: lambda a: a.transpose(1, 0, 2)[::-1, ::-1],
    8: lambda a: np.rot90(a, -1),
}


@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_photo_stored_sideways_reads_upright(tmp_path, orientation):
    from waldo_pl.data.page import image_size

    upright = np.random.default_rng(orientation).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    upright[5:12, 45:55] = [255, 0, 0]  # a mark near the top right corner
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored = np.ascontiguousarray(STORE_SIDEWAYS[orientation](upright))
    Image.fromarray(stored).save(tmp_path / "photo.png", exif=exif)
    assert (read_image(tmp_path / "photo.png") == upright).all()
    assert image_size(tmp_path / "photo.png") == (60, 40)


def test_a_sideways_jpeg_is_searched_upright_and_answered_in_upright_pixels(tmp_path):

    from test_predict import RedFinder

    from waldo_pl.inference.predict import answer_page
    from waldo_pl.inference.search import SearchSettings

    upright = np.full((60, 90, 3), 128, np.uint8)
    upright[10:22, 70:80] = [255, 0, 0]  # Waldo, upright at x 70-79, y 10-21
    exif = Image.Exif()
    exif[0x0112] = 6  # as a phone held upright stores it: turned a quarter, 90 wide and 60 high read as 60x90
    Image.fromarray(np.ascontiguousarray(np.rot90(upright, 1))).save(tmp_path / "photo.jpg", exif=exif, quality=95)
    with Image.open(tmp_path / "photo.jpg") as raw:
        assert raw.size == (60, 90)
    answer = answer_page(RedFinder(), tmp_path / "photo.jpg", SearchSettings(), tmp_path, "photo")
    assert (answer.width, answer.height) == (90, 60)
    assert 69 <= answer.spots[0].x <= 80 and 9 <= answer.spots[0].y <= 22
