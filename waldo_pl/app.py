"""waldo-app: find Waldo in a browser. Drop a page (or pick one of --pages DIR) and see the answer, Waldo
zoomed, the next best candidates and the heatmap over the page.

    pip install -e '.[app]' && waldo-app [--ckpt MODEL] [--pages DIR] [--host 127.0.0.1] [--port 7860]

The app calls the same search as predict.py and keeps the network loaded between pages. A bad upload is a
message on the page; the server goes on serving.

From code, its one endpoint is `/find` (gradio_client):

    from gradio_client import Client, handle_file
    result, candidates, heatmap, text, answer = Client("http://127.0.0.1:7860/").predict(
        page=handle_file("page.jpg"), scales=["1.0", "1.25"], candidates=3, flip=True, api_name="/find")
    answer["spots"][0]  # {"x": ..., "y": ..., "confidence": ..., "box": [...]}, as predict.py's JSON
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time
from pathlib import Path

import numpy as np

from waldo_pl.data.page import image_size, read_image
from waldo_pl.errors import UserError, exits_cleanly
from waldo_pl.inference.device import load_for_search
from waldo_pl.inference.pictures import heatmap_overlay, result_picture, zoomed
from waldo_pl.inference.predict import IMAGE_SUFFIXES
from waldo_pl.inference.rerank import SecondStage
from waldo_pl.inference.search import ONE_PASS, PREDICT, search
from waldo_pl.weights import bundled_model

log = logging.getLogger(__name__)

MAX_PIXELS = 100_000_000  # a page over this is refused before it is decoded: a double-page scan is under 30 Mpx
SCALE_CHOICES = ["1.0", "1.25", "1.5", "2.0"]


def find(
    net,
    path: str | None,
    scales: list[str],
    candidates: int,
    flip: bool = PREDICT.flip,
    bf16: bool = False,
    max_pixels: int = MAX_PIXELS,
    stage: SecondStage | None = None,
) -> tuple:
    """One page through the search: (result picture, candidate gallery, heatmap overlay, answer text, answer as
    data), the page searched at `scales` and, with `flip`, mirrored too (predict.py's defaults). The data holds the
    page's name and size and its spots, best first, as predict.py's JSON gives them. A page that cannot be searched
    gives no pictures and the reason, starting with 'error:' (the data: {"error": reason})."""
    if not path:
        return None, [], None, "Drop a page above, or pick one.", None
    name = Path(path).name
    try:
        try:
            width, height = image_size(path)
        except Exception:
            raise UserError("not an image this app can read; upload a JPEG, PNG, TIFF, BMP, GIF or WebP page") from None
        if width * height > max_pixels:
            raise UserError(
                f"the page is {width}x{height} px, over this app's {max_pixels // 1_000_000} Mpx; "
                "shrink it, or use predict.py, which tiles huge pages"
            )
        settings = dataclasses.replace(
            PREDICT,
            scales=tuple(float(s) for s in scales or ONE_PASS.scales),
            candidates=int(candidates),
            flip=bool(flip),
            bf16=bf16,
        )
        start = time.perf_counter()
        page = read_image(path)
        log_odds, spots = search(net, page, settings, stage)
        seconds = time.perf_counter() - start
    except UserError as err:
        message = str(err).replace(str(path), name)
        error = f"error: {name}: {message}" if not message.startswith(name) else f"error: {message}"
        return None, [], None, error, {"error": error.removeprefix("error: ")}
    except Exception as err:  # the app must outlive any one page
        log.exception("searching %s failed", path)
        error = f"error: {name}: could not be searched ({type(err).__name__}); try another page"
        return None, [], None, error, {"error": error.removeprefix("error: ")}
    best = spots[0]
    box = "no box above the threshold" if best.box is None else f"box {list(best.box)}"
    gallery = [
        (np.asarray(zoomed(page, s, 240, (255, 160, 0))[0]), f"#{i} {100 * s.confidence:.1f}% at ({s.x}, {s.y})")
        for i, s in enumerate(spots[1:], start=2)
    ]
    answer = (
        f"**Waldo at ({best.x}, {best.y})**, confidence {100 * best.confidence:.1f}%, {box}, "
        f"on a {page.shape[1]}x{page.shape[0]} page, found in {seconds:.2f} s"
    )
    found = {
        "page": name,
        "width": int(page.shape[1]),
        "height": int(page.shape[0]),
        "seconds": round(seconds, 3),
        "spots": [s.as_dict() for s in spots],
    }
    return result_picture(page, spots), gallery, heatmap_overlay(page, log_odds), answer, found


def page_choices(pages: Path | None) -> list[str]:
    if pages is None:
        return []
    if not pages.is_dir():
        raise UserError(f"--pages {pages}: no such folder; give a folder of pages")
    return sorted(str(p) for p in pages.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def build_app(
    net, pages: list[str] = (), bf16: bool = False, title: str = "Find Waldo", stage: SecondStage | None = None
):
    """The Gradio Blocks page around one loaded model (its first stage, and its second where it has one)."""
    import gradio as gr

    with gr.Blocks(title=title) as app:
        gr.Markdown(
            f"# {title}\nDrop a page of a *Where's Waldo?* book, or pick one; the network marks where it "
            "thinks Waldo is and shows the next best candidates to check it against."
        )
        with gr.Row():
            with gr.Column(scale=1):
                # any file: this app, not the browser, says what is wrong with one that is not a page
                upload = gr.File(label="Page (JPEG, PNG, TIFF, ...)", type="filepath", elem_id="page-upload")
                chosen = gr.Dropdown(
                    choices=[(Path(p).name, p) for p in pages],
                    value=None,
                    label="or one of the pages",
                    visible=bool(pages),
                    elem_id="page-choice",
                )
                scales = gr.CheckboxGroup(
                    SCALE_CHOICES,
                    value=[str(s) for s in PREDICT.scales],
                    label="scales searched (more: slower, finds smaller Waldos)",
                )
                flip = gr.Checkbox(
                    value=PREDICT.flip,
                    label="search the mirrored page too (finds more Waldos in photos; twice the time)",
                    elem_id="flip",
                )
                candidates = gr.Slider(
                    0, 8, value=PREDICT.candidates, step=1, label="candidates shown after the answer"
                )
                button = gr.Button("Find Waldo", variant="primary", elem_id="find")
            with gr.Column(scale=3):
                answer = gr.Markdown(elem_id="answer")
                result = gr.Image(label="Result", type="numpy", format="jpeg", elem_id="result")
                gallery = gr.Gallery(label="Next best candidates", columns=4, height=300, elem_id="candidates")
                overlay = gr.Image(label="Heatmap over the page", type="numpy", format="jpeg", elem_id="overlay")
                found = gr.JSON(label="The answer as data", visible=False)  # for code: /find's last output

        def find_page(page: str | None, scales: list[str], candidates: int, flip: bool) -> tuple:
            """Find Waldo on a page (a file): the result picture, the next best candidates, the heatmap over the
            page, the answer in words, and as data (the spots, best first, as predict.py's JSON)."""
            return find(net, page, scales, candidates, flip, bf16, stage=stage)

        outputs = [result, gallery, overlay, answer, found]
        settings = [scales, candidates, flip]
        upload.upload(find_page, [upload, *settings], outputs, api_name="find")
        # the page's own controls, not endpoints a program calls
        private = {"api_visibility": "private"}
        upload.clear(lambda: find(net, None, [], 0), None, outputs, **private)
        chosen.change(find_page, [chosen, *settings], outputs, **private)
        button.click(
            lambda up, pick, s, c, f: find_page(up or pick, s, c, f), [upload, chosen, *settings], outputs, **private
        )
    return app


@exits_cleanly
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--ckpt", type=Path, help="a train.py checkpoint or waldo-export file (default: the bundled model)"
    )
    parser.add_argument("--pages", type=Path, help="a folder of pages to pick from")
    parser.add_argument(
        "--host", default="127.0.0.1", help="listen here (default: this machine only; 0.0.0.0 for every address)"
    )
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--accelerator", default="auto", help="auto | cpu | gpu")
    parser.add_argument("--precision", default="auto", help="auto | 32 | bf16")
    parser.add_argument(
        "--backend", default="auto", help="auto (OpenVINO on a CPU where it is installed) | torch | openvino"
    )
    parser.add_argument(
        "--first-stage-only", action="store_true", help="answer with the first stage's order, without the second stage"
    )
    args = parser.parse_args(argv)
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise UserError("waldo-app needs Gradio: pip install -e '.[app]'") from None
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    pages = page_choices(args.pages)
    ckpt = args.ckpt or bundled_model()
    net, stage, bf16 = load_for_search(
        ckpt, args.accelerator, args.precision, args.backend, "--ckpt", not args.first_stage_only
    )
    app = build_app(net, pages, bf16, stage=stage)
    app.queue().launch(server_name=args.host, server_port=args.port, show_error=True)


if __name__ == "__main__":
    main()
