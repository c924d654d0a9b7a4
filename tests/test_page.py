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
