"""Training steps a second as train.py runs them, against anchors in the same run, and where a step's time goes.

    python bench/train_speed.py [--root ../shared/data/waldo] [--experiment bundled] [--steps 20] [--variants ...] [--profile]

Each variant trains the recipe (conf/experiment/EXPERIMENT.yaml, its crops and batches) through a Trainer as
train.py builds it, on the same pages, for `--warmup` + `--steps` steps, timed from the first step after the warm-up
(no validation, no checkpoints, no logger):

- anchor:   the plain TutorialNet (the tutorial's order of layers, `layer_by_layer`) in float32;
- fp32:     the network's cheaper exact graph (TutorialNet.forward) in float32, train.py with trainer.precision=32;
- bf16:     the same in bf16-mixed (the recipe's fixed precision before trainer.precision=auto);
- auto:     the recipe as train.py runs it now (trainer.precision=auto: bf16-mixed where the CPU has native bf16);
- compiled: `auto` with model.compile=true (torch.compile; its compile time is printed apart);
- `--also NAME:OVERRIDE,...`: `auto` with Hydra overrides of the recipe, e.g. `--also batch8:data.batch_size=8`.

It prints the CPU, steps a second and each variant against the anchor, and with --profile a table of where a step of
`auto` goes (PyTorch's profiler, by operator), and the crop stream's own time a step.
"""

from __future__ import annotations

import argparse
import itertools
import platform
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from waldo_pl import CONF_DIR
from waldo_pl.precision import bf16_on, training_precision

VARIANTS = {  # name: (graph, precision, compile)
    "anchor": ("layer_by_layer", "32-true", False),
    "fp32": ("forward", "32-true", False),
    "bf16": ("forward", "bf16-mixed", False),
    "auto": ("forward", "auto", False),
    "compiled": ("forward", "auto", True),
}


class StepTimer(L.Callback):
    """Wall time from the start of step `warmup` to the end of the last step."""

    def __init__(self, warmup: int):
        self.warmup, self.start, self.end, self.first = warmup, None, None, None
        self.fit_start = None

    def on_train_start(self, trainer, module):
        self.fit_start = time.perf_counter()

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if trainer.global_step == self.warmup:
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.end = time.perf_counter()
        if trainer.global_step == 1:
            self.first = self.end - self.fit_start


def recipe(args, output_dir: Path, *overrides: str):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(
            "train",
            overrides=[
                f"experiment={args.experiment}",
                f"data.root={args.root}",
                "logger=none",
                "callbacks=none",
                f"paths.output_dir={output_dir}",
                "data.val_fraction=0",
                f"data.steps_per_epoch={args.warmup + args.steps}",
                "trainer.max_epochs=1",
                "model.preview_every_n_epochs=0",
                *overrides,
            ],
        )


def run_variant(args, name: str, output_dir: Path) -> dict:
    graph, precision, compiled = VARIANTS.get(name, VARIANTS["auto"])
    cfg = recipe(args, output_dir, f"model.compile={str(compiled).lower()}", *args.also.get(name, []))
    L.seed_everything(0, verbose=False)
    datamodule, model = instantiate(cfg.data), instantiate(cfg.model)
    if graph == "layer_by_layer":
        model.net.forward = model.net.layer_by_layer
    precision = training_precision(precision, "cpu")[0]
    timer = StepTimer(args.warmup)
    trainer = instantiate(
        cfg.trainer,
        accelerator="cpu",
        devices=1,
        precision=precision,
        logger=False,
        callbacks=[timer],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    trainer.fit(model, datamodule=datamodule)
    return {
        "name": name,
        "precision": precision,
        "steps_per_second": args.steps / (timer.end - timer.start),
        "first_step": timer.first,
    }


def stream_seconds_a_step(args, output_dir: Path) -> float:
    """The crop stream alone: seconds to draw one batch of the recipe's crops."""
    cfg = recipe(args, output_dir)
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    batches = iter(datamodule.train_dataloader())
    next(batches)
    start = time.perf_counter()
    for _ in itertools.islice(batches, args.steps):
        pass
    return (time.perf_counter() - start) / args.steps


def profile_table(args, output_dir: Path, rows: int = 14) -> str:
    """Where a step of the recipe goes (auto precision), by operator, over `args.steps` bare steps."""
    from torch.profiler import ProfilerActivity, profile

    cfg = recipe(args, output_dir)
    datamodule, model = instantiate(cfg.data), instantiate(cfg.model)
    datamodule.setup("fit")
    batches = list(itertools.islice(iter(datamodule.train_dataloader()), args.warmup + args.steps))
    net = model.net.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    bf16 = training_precision("auto", "cpu")[0].startswith("bf16")
    weights = torch.tensor([float(w) for w in cfg.model.class_weights])

    def step(crops, target):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = net(crops.contiguous(memory_format=torch.channels_last))
        loss = F.cross_entropy(logits.float(), target, weight=weights)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for crops, target in batches[: args.warmup]:
        step(crops, target)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for crops, target in batches[args.warmup :]:
            step(crops, target)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows, max_name_column_width=48)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "waldo")
    parser.add_argument("--experiment", default="bundled")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--variants", nargs="+", default=["anchor", "fp32", "auto"], choices=list(VARIANTS))
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--also", nargs="+", default=[], metavar="NAME:OVERRIDE,...", help="`auto` with overrides")
    args = parser.parse_args()
    args.also = {name: overrides.split(",") for name, _, overrides in (a.partition(":") for a in args.also)}
    args.variants += list(args.also)
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    print(
        f"CPU: {cpu}, {torch.get_num_threads()} threads, {bf16_on('cpu')[1]}; experiment={args.experiment}, "
        f"{args.steps} steps after {args.warmup}"
    )
    with tempfile.TemporaryDirectory() as folder:
        results = [run_variant(args, name, Path(folder) / name) for name in args.variants]
        anchor = results[0]["steps_per_second"]
        print(f"\n| variant | precision | steps/s | s/step | x {results[0]['name']} | first step (s) |")
        print("| --- | --- | --- | --- | --- | --- |")
        for r in results:
            print(
                f"| {r['name']} | {r['precision']} | {r['steps_per_second']:.3f} | {1 / r['steps_per_second']:.3f} | "
                f"{r['steps_per_second'] / anchor:.2f} | {r['first_step']:.1f} |"
            )
        if args.profile:
            print(f"\nthe crop stream alone: {stream_seconds_a_step(args, Path(folder) / 'stream'):.4f} s a step")
            print("\nwhere a step of `auto` goes:\n")
            print(profile_table(args, Path(folder) / "profile"))


if __name__ == "__main__":
    main()
