"""waldo-app: the search behind a web page, driven in a real browser (headless Chromium)."""

import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import draw_page
from PIL import Image
from test_predict import RedFinder

from waldo_pl.app import find

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = REPO / "test-artifacts"
BROWSER_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def page_file(folder: Path, name: str, box, seed=0) -> Path:
    path = folder / name
    Image.fromarray(draw_page(240, 320, [box], seed=seed)).save(path)
    return path


def test_find_answers_a_page_and_says_what_is_wrong_with_a_bad_one(tmp_path):
    good = page_file(tmp_path, "good.png", (200, 60, 214, 80))
    result, gallery, overlay, answer, found = find(RedFinder(), str(good), ["1.0"], 3)
    x, y = (int(v) for v in re.search(r"Waldo at \((\d+), (\d+)\)", answer).groups())
    assert (
        200 <= x < 214
        and 60 <= y < 80
        and result.shape[1] > 320
        and len(gallery) == 3
        and overlay.shape[:2] == (240, 320)
    )
    assert (found["spots"][0]["x"], found["spots"][0]["y"]) == (x, y) and len(found["spots"]) == 4
    assert (found["width"], found["height"], found["page"]) == (320, 240, "good.png")
    (tmp_path / "notes.txt").write_text("not a page")
    assert find(RedFinder(), str(tmp_path / "notes.txt"), ["1.0"], 3)[3].startswith("error: notes.txt: not an image")
    assert "over this app's 0 Mpx" in find(RedFinder(), str(good), ["1.0"], 3, max_pixels=1000)[3]
    Image.fromarray(draw_page(10, 300, [])).save(tmp_path / "thin.png")
    thin = find(RedFinder(), str(tmp_path / "thin.png"), ["1.0"], 3)
    assert thin[0] is None and thin[3].startswith("error: thin.png") and "16 px" in thin[3]
    assert thin[4] == {"error": thin[3].removeprefix("error: ")}


class CountingFinder(RedFinder):
    """RedFinder that counts the images it is shown."""

    def __init__(self):
        super().__init__()
        self.images = 0

    def forward(self, x):
        self.images += len(x)
        return super().forward(x)


def test_find_searches_the_mirrored_page_too_unless_told_not_to(tmp_path):
    good = page_file(tmp_path, "good.png", (200, 60, 214, 80))
    counts = {}
    for flip in (False, True):
        net = CountingFinder()
        answer = find(net, str(good), ["1.0", "1.25"], 3, flip)[3]
        assert "Waldo at" in answer
        counts[flip] = net.images
    assert counts[False] == 2 and counts[True] == 4  # a pass a scale, and a mirrored one a scale with flip


@pytest.mark.parametrize(
    "args, message",
    [
        (["--ckpt", "/no/such.pt"], "--ckpt=/no/such.pt: no such checkpoint"),
        (["--pages", "/no/such/folder"], "--pages /no/such/folder: no such folder"),
    ],
)
def test_waldo_app_refuses_a_bad_option_in_one_line(args, message):
    result = subprocess.run(
        [sys.executable, "-m", "waldo_pl.app", *args], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        f"error: {message}" + result.stderr.split(message, 1)[1].strip()
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_app_in_a_browser_answers_refuses_a_text_file_and_answers_again(tmp_path):
    if CHROMIUM is None:
        pytest.skip("no Chromium on this machine (apt-get install chromium); .ci/run installs it")
    playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright (in the dev extra)")
    from waldo_pl.app import build_app

    port = free_port()
    app = build_app(RedFinder())
    app.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    first = page_file(tmp_path, "first.png", (250, 150, 264, 170), seed=1)
    (tmp_path / "notes.txt").write_text("no pixels here")
    third = page_file(tmp_path, "third.png", (40, 30, 54, 50), seed=2)
    try:
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.goto(f"http://127.0.0.1:{port}/")

            def upload(path: Path, expect: str) -> str:
                clear = page.locator("#page-upload button[aria-label='Clear']")
                if clear.count():
                    clear.click()
                    page.wait_for_function(
                        "!(document.querySelector('#answer')?.innerText || '').includes('at (')", timeout=30_000
                    )
                page.locator("#page-upload input[type=file]").set_input_files(str(path))
                try:
                    page.wait_for_function(
                        f"(document.querySelector('#answer')?.innerText || '').includes({expect!r})", timeout=60_000
                    )
                finally:
                    page.screenshot(path=str(tmp_path / f"{path.stem}.png"), full_page=True)
                return page.locator("#answer").inner_text()

            answer = upload(first, "Waldo at")
            x, y = (int(v) for v in re.search(r"Waldo at \((\d+), (\d+)\)", answer).groups())
            assert 250 <= x < 264 and 150 <= y < 170
            page.wait_for_selector("#result img")
            assert page.locator("#candidates img").count() == 4
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "app_answer.png"), full_page=True)

            error = upload(tmp_path / "notes.txt", "error:")
            assert "notes.txt: not an image" in error and page.locator("#result img").count() == 0

            answer = upload(third, "Waldo at")
            x, y = (int(v) for v in re.search(r"Waldo at \((\d+), (\d+)\)", answer).groups())
            assert 40 <= x < 54 and 30 <= y < 50
            browser.close()
    finally:
        app.close()
    with Image.open(ARTIFACTS / "app_answer.png") as shot:
        assert shot.size[0] == 1400 and shot.size[1] > 800


def test_code_finds_waldo_through_the_apps_named_endpoint(tmp_path):
    client_module = pytest.importorskip("gradio_client", reason="pip install -e '.[app]'")
    from waldo_pl.app import build_app

    port = free_port()
    app = build_app(RedFinder())
    app.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        client = client_module.Client(f"http://127.0.0.1:{port}/", verbose=False)
        api = client.view_api(print_info=False, return_format="dict")
        assert list(api["named_endpoints"]) == ["/find"] and not api["unnamed_endpoints"]
        assert [p["parameter_name"] for p in api["named_endpoints"]["/find"]["parameters"]] == [
            "page",
            "scales",
            "candidates",
            "flip",
        ]
        page = page_file(tmp_path, "page.png", (120, 100, 134, 120), seed=3)
        *_, text, found = client.predict(
            page=client_module.handle_file(str(page)), scales=["1.0"], candidates=2, flip=False, api_name="/find"
        )
        best = found["spots"][0]
        assert 120 <= best["x"] < 134 and 100 <= best["y"] < 120 and len(found["spots"]) == 3
        assert f"Waldo at ({best['x']}, {best['y']})" in text
        (tmp_path / "notes.txt").write_text("no pixels here")
        *_, found = client.predict(
            page=client_module.handle_file(str(tmp_path / "notes.txt")),
            scales=["1.0"],
            candidates=2,
            flip=False,
            api_name="/find",
        )
        assert found["error"].startswith("notes.txt: not an image")
    finally:
        app.close()
