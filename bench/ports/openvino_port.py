"""The anchor for CPU speed: the tutorial's network compiled by OpenVINO, one page at scale 1 as one whole
process (read, compile the saved model, run, argmax). bf16 where the CPU has it, else f32.

    python bench/ports/openvino_port.py PAGE MODEL.xml [bf16|f32]

bench/predict_speed.py writes MODEL.xml from the bundled weights (openvino.convert_model) before timing.
"""

import sys

import numpy as np
import openvino as ov
from PIL import Image


def main(page_path: str, model_path: str, precision: str = "bf16") -> None:
    core = ov.Core()
    model = core.compile_model(model_path, "CPU", {"INFERENCE_PRECISION_HINT": precision})
    page = np.asarray(Image.open(page_path).convert("RGB"))
    h, w = page.shape[:2]
    x = (
        np.pad(page, ((0, -h % 16), (0, -w % 16), (0, 0)), mode="edge").transpose(2, 0, 1)[None].astype(np.float32)
        / 255
    )
    logits = model(x)[0][0, :, :h, :w]
    log_odds = logits[1] - logits[0]
    y, x = np.unravel_index(int(log_odds.argmax()), log_odds.shape)
    print(f"{page_path}: ({x}, {y})")


if __name__ == "__main__":
    main(*sys.argv[1:4])
