"""predict.py as a whole process against two anchors on the same page, in the same run: a plain float32
PyTorch port of the network (bench/ports/plain_torch.py) and the network compiled by OpenVINO
(bench/ports/openvino_port.py, bf16 where the CPU has it). Each line is the best of --repeat runs of a
whole process (start-up, imports, reading, search, outputs), so ratios, not seconds, carry across machines.

    python bench/predict_speed.py [--page ../shared/data/waldo/images/8.jpg] [--repeat 3] [--folder DIR ...] [--before CHECKOUT ...]

--folder also runs predict.py over every page of each folder (or of its images/), at the defaults, with windows=8
and with flip=false, and reports pages a second;
--before times the predict.py of other checkouts too (git worktree add /tmp/before REV).
The page is resized to 2800x1760, the tutorial's page size. OpenVINO is optional (pip install openvino).
"""

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from waldo_pl.inference.device import use_bf16  # noqa: E402
from waldo_pl.models.checkpoint import load_network  # noqa: E402
from waldo_pl.weights import bundled_model  # noqa: E402


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(
        command,
        cwd=Path(command[1]).resolve().parent if command[1].endswith("predict.py") else REPO,
        check=True,
        capture_output=True,
        text=True,
    )
    return time.perf_counter() - start


def openvino_model(folder: Path) -> Path | None:
    try:
        import openvino as ov
    except ImportError:
        return None
    net = load_network(bundled_model()).to(memory_format=torch.contiguous_format)
    model = ov.convert_model(net, example_input=torch.rand(1, 3, 256, 256), input=[1, 3, -1, -1])
    path = folder / "tutorial_net.xml"
    ov.save_model(model, path, compress_to_fp16=False)
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--page", type=Path, default=REPO.parent / "shared/data/waldo/images/8.jpg")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--folder", type=Path, nargs="*", default=[])
    parser.add_argument(
        "--before",
        type=Path,
        nargs="*",
        default=[],
        help="other checkouts of this project: their predict.py is timed too",
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp())
    page = work / "page.jpg"
    Image.open(args.page).convert("RGB").resize((2800, 1760), Image.BILINEAR).save(page, quality=95)
    bf16 = use_bf16("auto", torch.device("cpu"))
    print(
        f"{cpu_name()}, {torch.get_num_threads()} threads, native bf16: {bf16}; {args.page.name} as 2800x1760; best of {args.repeat}"
    )

    python = sys.executable
    rows = [
        ("plain PyTorch port, fp32, scale 1", [python, "bench/ports/plain_torch.py", str(page), str(bundled_model())])
    ]
    ir = openvino_model(work)
    if ir is not None:
        precision = "bf16" if bf16 else "f32"
        rows.append(
            (f"OpenVINO, {precision}, scale 1", [python, "bench/ports/openvino_port.py", str(page), str(ir), precision])
        )
    predict = [python, "predict.py", f"img={page}", f"output_dir={work / 'out'}"]
    for checkout in args.before:
        before = [python, str(checkout / "predict.py"), f"img={page}", f"output_dir={work / 'before'}"]
        rows += [
            (f"{checkout.name}/predict.py, defaults", before),
            (f"{checkout.name}/predict.py scales=[1.0]", [*before, "scales=[1.0]"]),
        ]
    fastest = ["scales=[1.0]", "flip=false"]
    rows += [
        ("predict.py backend=torch, defaults", [*predict, "backend=torch"]),
        ("predict.py backend=torch scales=[1.0] flip=false", [*predict, "backend=torch", *fastest]),
        ("predict.py, defaults (scales 1 and 1.25, mirrored)", predict),
        ("predict.py windows=8 (the rest only near 8 spots)", [*predict, "windows=8"]),
        ("predict.py windows=5", [*predict, "windows=5"]),
        ("predict.py flip=false", [*predict, "flip=false"]),
        ("predict.py scales=[1.0] flip=false", [*predict, *fastest]),
    ]
    # predict.py converts a model to OpenVINO on its first run and caches it (~/.cache/waldo_pl, $WALDO_PL_CACHE);
    # that first run is timed on its own, in a fresh cache, and the rows below load the cached model
    os.environ["WALDO_PL_CACHE"] = str(work / "cache")
    start = time.perf_counter()
    subprocess.run([*predict, *fastest], cwd=REPO, check=True, capture_output=True)
    first = time.perf_counter() - start
    times = {"predict.py scales=[1.0] flip=false, first run (converts the model)": first}
    for _ in range(args.repeat):  # round by round, so that a slow spell of the machine hits every row alike
        for label, command in rows:
            times[label] = min(times.get(label, float("inf")), timed(command))
    plain = times[rows[0][0]]
    anchor = times[rows[1][0]] if ir is not None else None
    for label, seconds in times.items():
        against = f"  {seconds / anchor:5.2f}x OpenVINO" if anchor else ""
        print(f"{label:<45} {seconds:6.2f} s  {seconds / plain:5.2f}x plain{against}")

    for folder in args.folder:
        folder = folder / "images" if (folder / "images").is_dir() else folder
        pages = [p for p in sorted(folder.iterdir()) if p.suffix.lower() in {".jpg", ".jpeg", ".png"}]
        start = time.perf_counter()
        megapixels = sum(np.prod(Image.open(p).size) for p in pages) / 1e6
        for settings in ([], ["windows=8"], ["flip=false"]):
            start = time.perf_counter()
            subprocess.run(
                [python, "predict.py", f"img={folder}", f"output_dir={work / folder.name}", *settings],
                cwd=REPO,
                check=True,
                capture_output=True,
            )
            seconds = time.perf_counter() - start
            print(
                f"predict.py {' '.join(settings) or '(defaults)'} over {folder} ({len(pages)} pages, {megapixels:.0f} Mpx): "
                f"{seconds:.1f} s, {len(pages) / seconds:.2f} pages/s, {megapixels / seconds:.2f} Mpx/s"
            )


if __name__ == "__main__":
    main()
