"""Second-stage variants on finished cross-validation folds: each fold's own first stage, trained second stages of
several kinds, scored on the fold's held-out pages as predict.py searches them.

    python bench/second_stage_folds.py outputs/all_folds_seed1 outputs/photo_look_0 --cache ss_spots.json \
        --variant recipe --variant 'ensemble3:seeds=0+1+2' --variant 'context4:context=4' [--out answers.json]

For each fold (a train.py run under the folders given: .hydra/config.yaml, metrics.json, checkpoints/last.ckpt)
the first stage's spots are mined once and kept in --cache: on its training pages as the recipe mines them (the 9
best at scales 1 and 1.25), on its held-out pages as predict.py searches (scales 1 and 1.25, mirrored, the 10 best),
the scales' maps merged by their mean (the search's default), and by the best as well where a variant asks for it.
Each variant then trains a second stage on the training pages (options below, the recipe's otherwise) and re-ranks
the held-out pages' candidates with the recipe's margin. A variant is `name[:key=value,...]`, keys: steps, width,
photo_look (the run's data.photo_look unless given), context (window side over the spot region's), seeds (added to
the run's seed; several: their scores averaged), candidates, margin, jitter (windows' sides in training drawn down to
exp(-jitter) times the spot's; the recipe's 0.5, before it 0.2), decoys (1: the training pages with --decoys,
their decoys drawn as negatives and a Waldo box inside one dropped; 0: the pages as the run trained on them), backbone, window, tuned, lr, paste (conf/second_stage/default.yaml), tta (1: each window's
score averaged with its mirror image's), precision (the second stage's training precision, a Lightning one or auto; the
windows are scored in the same),
mined (mean or max: how the scales' maps were merged when the training spots were mined; the held-out pages' candidates
are always searched as predict.py does, by the mean).
`recipe` alone re-trains the run's own second stage. --decoys applies the decoys to the held-out pages' labels for
every variant, so that all are scored alike. Prints, per variant and collection, the pages found, and how often Waldo
was among the candidates; --out keeps each candidate's score, so that other candidates and margins can be read off
without training again, and folds kept by several runs (or sessions) pooled:

    python bench/second_stage_folds.py --read fold0.json fold1.json [--candidates 3 5 10] [--margins 0 2]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn

from waldo_pl import CONF_DIR
from waldo_pl.calibration import calibrated
from waldo_pl.data import spot_windows
from waldo_pl.data.formats import collection_of, with_decoys
from waldo_pl.data.page import distance_to_boxes
from waldo_pl.data.spot_stream import SpotStream
from waldo_pl.inference.answer import Spot
from waldo_pl.inference.device import search_network
from waldo_pl.inference.heatmap import MERGES
from waldo_pl.inference.rerank import reranked_order, share_log_odds, spot_scores
from waldo_pl.inference.search import SearchSettings
from waldo_pl.models.checkpoint import network_from, read_checkpoint
from waldo_pl.precision import is_bf16
from waldo_pl.second_stage.spec import UNCALIBRATED, SecondStage
from waldo_pl.second_stage.training import fit_second_stage, mine_spots

DEFAULTS = OmegaConf.load(CONF_DIR / "second_stage" / "default.yaml")
RECIPE = {
    "steps": DEFAULTS.steps,
    "width": DEFAULTS.width,
    "photo_look": None,
    "context": spot_windows.CONTEXT,
    "seeds": [0],
    "candidates": DEFAULTS.candidates,
    "margin": float(DEFAULTS.margin),
    "jitter": -SpotStream.SIDE_JITTER[0],
    "decoys": 0,
    "mined": SearchSettings.merge,
    "backbone": DEFAULTS.backbone,
    "window": DEFAULTS.window,
    "tuned": DEFAULTS.tuned,
    "lr": DEFAULTS.lr,
    "paste": DEFAULTS.paste,
    "tta": 0,
    "precision": "auto",
}
SEARCHED = SearchSettings.merge  # the held-out pages' candidates: merged as predict.py merges them


class MeanLogOdds(nn.Module):
    """Several classifiers as one: their log-odds averaged."""

    def __init__(self, nets):
        super().__init__()
        self.nets = nn.ModuleList(nets)
        self.window = nets[0].window

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([net(x) for net in self.nets]).mean(0)


class WithMirror(nn.Module):
    """A classifier's log-odds averaged over each window and its mirror image (test-time flip)."""

    def __init__(self, net):
        super().__init__()
        self.net, self.window = net, net.window

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.net(x) + self.net(x.flip(-1))) / 2


def parse_variant(text: str) -> tuple[str, dict]:
    name, _, options = text.partition(":")
    settings = dict(RECIPE)
    for item in filter(None, options.split(",")):
        key, value = item.split("=")
        if key not in RECIPE:
            raise SystemExit(f"--variant {text}: {key} is not one of {', '.join(RECIPE)}")
        if key == "seeds":
            settings[key] = [int(s) for s in value.split("+")]
        elif key in ("backbone", "precision"):
            settings[key] = value
        elif key == "mined":
            if value not in MERGES:
                raise SystemExit(f"--variant {text}: mined is {' or '.join(MERGES)}")
            settings[key] = value
        else:
            whole = ("steps", "width", "candidates", "decoys", "window", "tuned", "tta")
            settings[key] = int(value) if key in whole else float(value)
    return name, settings


def fold_spots(run: Path, cache: dict, decoys: Path | None, merges: set[str]) -> dict:
    """The fold's pages and the first stage's spots on them, the scales merged each way of `merges` (mined once,
    kept in `cache`); the held-out pages' labels with `decoys`, the training pages with and without them."""
    cfg = OmegaConf.load(run / ".hydra" / "config.yaml")
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    held_out = {p["page"] for p in json.loads((run / "metrics.json").read_text())["pages"]}
    train, test = datamodule.train_pages, with_decoys([p for p in datamodule.val_pages if p.name in held_out], decoys)
    for merge in sorted(merges | {SEARCHED}):
        key = f"{run} merge={merge}"
        if key in cache:
            continue
        started = time.perf_counter()
        first = network_from(read_checkpoint(run / "checkpoints" / "last.ckpt", None), str(run))
        net = search_network(first.eval(), torch.device("cpu"), True, "auto")
        mined = mine_spots(
            net, train, SearchSettings(scales=(1.0, 1.25), flip=False, candidates=8, bf16=True, merge=merge)
        )
        cache[key] = {"train": dict(zip((p.name for p in train), mined))}
        if merge == SEARCHED:  # the held-out pages only as predict.py searches them
            searched = mine_spots(
                net, test, SearchSettings(scales=(1.0, 1.25), flip=True, candidates=9, bf16=True, merge=merge)
            )
            cache[key]["test"] = dict(zip((p.name for p in test), searched))
        print(
            f"{run}: mined {len(train)} training and {len(cache[key].get('test', ()))} held-out pages, merged by "
            f"the {merge}, in {time.perf_counter() - started:.0f} s",
            flush=True,
        )
    collection = collection_of(list(cfg.data.root))
    spots = {
        "test": cache[f"{run} merge={SEARCHED}"]["test"],
        **{merge: cache[f"{run} merge={merge}"]["train"] for merge in merges},
    }
    return {
        "train": train,
        "train_decoys": with_decoys(train, decoys),
        "test": test,
        "spots": spots,
        "seed": int(cfg.seed),
        "collection": collection,
        "photo_look": float(cfg.data.get("photo_look", 0.0)),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", type=Path, nargs="*", help="cross-validation output folders (runs found below them)")
    parser.add_argument("--cache", type=Path, default=Path("second_stage_folds.json"))
    parser.add_argument("--variant", action="append", default=[], help="name[:key=value,...] (seeds joined by +)")
    parser.add_argument(
        "--decoys",
        type=Path,
        help="a decoys CSV (data.decoys): the held-out labels with it, and "
        "the training pages of variants with decoys=1",
    )
    parser.add_argument(
        "--out", type=Path, help="write every held-out page's candidates and each variant's scores (JSON)"
    )
    parser.add_argument("--read", type=Path, nargs="+", help="--out files: their tables, pooled, without training")
    parser.add_argument("--candidates", type=int, nargs="+", default=[3, 5, 10], help="with --read: K to read off")
    parser.add_argument("--margins", type=float, nargs="+", default=[0.0, 2.0], help="with --read: margins to read off")
    args = parser.parse_args()
    if args.read:
        rows = {}  # a page of a run once, with every file's variants on it
        for path in args.read:
            for row in json.loads(path.read_text()):
                kept = rows.setdefault((row["run"], row["page"]), row)
                kept["answers"] = {**kept["answers"], **row["answers"]}
        print_read_off(list(rows.values()), args.candidates, args.margins)
        return
    if not args.folders:
        parser.error("give the cross-validation folders, or --read kept files")
    variants = [parse_variant(v) for v in args.variant or ["recipe"]]
    runs = sorted({m.parent for folder in args.folders for m in folder.rglob("metrics.json")})
    cache = json.loads(args.cache.read_text()) if args.cache.is_file() else {}
    folds = []
    for run in runs:
        folds.append((run, fold_spots(run, cache, args.decoys, {v["mined"] for _, v in variants})))
        args.cache.write_text(json.dumps(cache))

    rows = []  # one a held-out page: its candidates' hits and each variant's answer
    for run, fold in folds:
        test = fold["test"]
        ranks = {
            p.name: [distance_to_boxes(s["x"], s["y"], p.waldo_boxes) == 0 for s in fold["spots"]["test"][p.name]]
            for p in test
        }
        page_rows = {
            p.name: {
                "run": str(run),
                "page": p.name,
                "collection": fold["collection"][p.name],
                "hits": ranks[p.name],
                "answers": {},
            }
            for p in test
        }
        for name, v in variants:
            started = time.perf_counter()
            spot_windows.CONTEXT, SpotStream.SIDE_JITTER = v["context"], (-v["jitter"], SpotStream.SIDE_JITTER[1])
            train = fold["train_decoys" if v["decoys"] else "train"]
            nets = [
                fit_second_stage(
                    train,
                    [fold["spots"][v["mined"]][p.name] for p in train],
                    steps=v["steps"],
                    photo_look=fold["photo_look"] if v["photo_look"] is None else v["photo_look"],
                    width=v["width"],
                    seed=fold["seed"] + s,
                    lr=v["lr"],
                    backbone=v["backbone"],
                    window=v["window"],
                    tuned=v["tuned"],
                    paste=v["paste"],
                    precision=v["precision"],
                )
                for s in v["seeds"]
            ]
            net = MeanLogOdds(nets).eval()
            net = WithMirror(net).eval() if v["tta"] else net
            stage = SecondStage(net, v["candidates"], UNCALIBRATED, "none", v["margin"], "share")
            for page in test:
                spots = [Spot(s["x"], s["y"], s["confidence"], s["box"]) for s in fold["spots"]["test"][page.name]]
                scores = spot_scores(
                    stage.net, page.image, spots, bf16=is_bf16(v["precision"])
                )  # once: the answer is read off them as rerank does
                best = reranked_order(scores, stage.candidates, stage.margin)[0]
                page_rows[page.name]["answers"][name] = {
                    "hit": bool(distance_to_boxes(spots[best].x, spots[best].y, page.waldo_boxes) == 0),
                    "confidence": float(calibrated(share_log_odds(scores, stage.candidates), UNCALIBRATED)[best]),
                    "scores": scores.tolist(),
                }
            spot_windows.CONTEXT, SpotStream.SIDE_JITTER = (
                RECIPE["context"],
                (-RECIPE["jitter"], SpotStream.SIDE_JITTER[1]),
            )
            print(f"{run.name} {name}: {time.perf_counter() - started:.0f} s", flush=True)
        rows += page_rows.values()

    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))
    collections = sorted({r["collection"] for r in rows})
    print("\n| variant | " + " | ".join(collections) + " | all |")
    print("| --- |" + " --- |" * (len(collections) + 1))
    first = {c: sum(r["hits"][0] for r in rows if r["collection"] == c) for c in collections}
    count = {c: sum(r["collection"] == c for r in rows) for c in collections}
    print(
        "| first stage alone | "
        + " | ".join(f"{first[c]}/{count[c]}" for c in collections)
        + f" | {sum(first.values())}/{len(rows)} |"
    )
    for k in (3, 5, 10):  # the ceiling: what re-ranking k candidates could reach
        among = {c: sum(any(r["hits"][:k]) for r in rows if r["collection"] == c) for c in collections}
        print(
            f"| Waldo among the first stage's {k} best | "
            + " | ".join(f"{among[c]}/{count[c]}" for c in collections)
            + f" | {sum(among.values())}/{len(rows)} |"
        )
    for name, _ in variants:
        found = {c: sum(r["answers"][name]["hit"] for r in rows if r["collection"] == c) for c in collections}
        print(
            f"| {name} | "
            + " | ".join(f"{found[c]}/{count[c]}" for c in collections)
            + f" | {sum(found.values())}/{len(rows)} |"
        )


def print_read_off(rows: list[dict], ks: list[int], margins: list[float]) -> None:
    """Each kept variant re-ranking K candidates with each margin: pages found per collection, against the ceiling
    (Waldo among the first stage's K best). Pages a variant was not run on are left out of its rows."""
    collections = sorted({r["collection"] for r in rows})
    print(f"{len({r['run'] for r in rows})} runs, {len(rows)} held-out pages\n")
    print("| variant | K | margin | " + " | ".join(collections) + " | all | of the ceiling |")
    print("| --- | --- | --- |" + " --- |" * (len(collections) + 2))
    for k in ks:
        among = [r for r in rows if any(r["hits"][:k])]
        cells = [
            f"{sum(r['collection'] == c for r in among)}/{sum(r['collection'] == c for r in rows)}" for c in collections
        ]
        print(f"| ceiling | {k} | | " + " | ".join(cells) + f" | {len(among)}/{len(rows)} | |")
    names = list(dict.fromkeys(name for r in rows for name in r["answers"]))
    for name in names:
        mine = [r for r in rows if name in r["answers"]]
        for k in ks:
            ceiling = sum(any(r["hits"][:k]) for r in mine)
            for margin in margins:
                found = {c: 0 for c in collections}
                for r in mine:
                    best = reranked_order(r["answers"][name]["scores"], k, margin)[0]
                    found[r["collection"]] += bool(r["hits"][best])
                cells = [f"{found[c]}/{sum(r['collection'] == c for r in mine)}" for c in collections]
                total = sum(found.values())
                print(
                    f"| {name} | {k} | {margin:g} | " + " | ".join(cells) + f" | {total}/{len(mine)} | "
                    f"{total / max(ceiling, 1):.0%} of {ceiling} |"
                )


if __name__ == "__main__":
    main()
