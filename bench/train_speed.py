"""Training crops a second: train.py's own step (LightningModule + real crop stream) against a bare loop, and the
network's forward (its cheaper graph) against the tutorial's order of layers (TutorialNet.layer_by_layer).

    python bench/train_speed.py [--root ../shared/data/waldo] [--steps 30] [--no-channels-last] [--precision bf16-mixed]

Both sides train the same network from the same weights on batches of the same stream; the bare
loop gets its batches drawn beforehand, so the difference is all that Lightning and the data
stream cost.
"""

import argparse
import copy
import itertools
import time
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F

from waldo_pl.data import WaldoDataModule
from waldo_pl.models.module import WaldoSegmenter
from waldo_pl.models.tutorial_net import TutorialNet


class StepTimer(L.Callback):
    """Wall time from the start of batch `warmup` to the end of the last batch."""

    def __init__(self, warmup: int):
        self.warmup, self.start, self.end = warmup, None, None

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if trainer.global_step == self.warmup:
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.end = time.perf_counter()


def bare_loop(net, batches, weights, channels_last, bf16, graph="forward"):
    forward = net if graph == "forward" else net.layer_by_layer
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    for crops, target in batches:
        if channels_last:
            crops = crops.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = forward(crops)
        loss = F.cross_entropy(logits.float(), target, weight=weights)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "waldo")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=6)
    parser.add_argument("--panel", type=int, default=224)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--precision", default="32", choices=["32", "bf16-mixed"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    L.seed_everything(0, verbose=False)

    datamodule = WaldoDataModule(root=str(args.root), panel=args.panel, batch_size=args.batch_size,
                                 steps_per_epoch=args.steps + args.warmup, val_fraction=0)
    datamodule.setup("fit")
    batches = list(itertools.islice(iter(datamodule.train_dataloader()), args.steps + args.warmup))
    net = TutorialNet()
    if args.channels_last:
        net = net.to(memory_format=torch.channels_last)
    weights = torch.tensor([1.0, 20.0])

    bf16 = args.precision == "bf16-mixed"

    def bare_crops_per_second(graph: str) -> float:
        copy_of_net = copy.deepcopy(net)
        bare_loop(copy_of_net, batches[: args.warmup], weights, args.channels_last, bf16, graph)
        start = time.perf_counter()
        bare_loop(copy_of_net, batches[args.warmup :], weights, args.channels_last, bf16, graph)
        return args.steps * args.batch_size / (time.perf_counter() - start)

    bare, tutorial_order = bare_crops_per_second("forward"), bare_crops_per_second("layer_by_layer")

    module = WaldoSegmenter(net, optimizer=torch.optim.Adam, scheduler=None, class_weights=[1.0, 20.0],
                            preview_every_n_epochs=0, channels_last=args.channels_last)
    timer = StepTimer(args.warmup)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=1, logger=False, enable_checkpointing=False, precision=args.precision,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[timer])
    fresh = WaldoDataModule(root=str(args.root), panel=args.panel, batch_size=args.batch_size,
                            steps_per_epoch=args.steps + args.warmup, val_fraction=0)
    trainer.fit(module, datamodule=fresh)
    lightning = args.steps * args.batch_size / (timer.end - timer.start)

    print(f"threads: {args.threads}  channels_last: {args.channels_last}  precision: {args.precision}  batch: {args.batch_size}x{args.panel}x{args.panel}")
    print(f"bare loop, layer by layer: {tutorial_order:6.2f} crops/s")
    print(f"bare PyTorch loop:        {bare:6.2f} crops/s  ({bare / tutorial_order:.2f}x the layer-by-layer graph)")
    print(f"train.py step (Lightning): {lightning:6.2f} crops/s")
    print(f"Lightning + stream overhead: {100 * (bare / lightning - 1):+.1f}%")


if __name__ == "__main__":
    main()
