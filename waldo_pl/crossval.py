"""The fold table of a cross-validation: each run's metrics.json under a folder, per fold and pooled.

    waldo-crossval outputs/<task>/multirun_<date>   (after python train.py -m data=waldo_folds data.fold=0,1,2,3,4)

seed draws the folds too, so a sweep over seed=0,1,2 as well is three cross-validations: the table pools
each seed on a row of its own, then all of them.

With --scales or --flip, each run's last checkpoint searches its held-out pages again (on the GPU when
there is one), the way predict.py does with scales=[...] and flip=true, so test-time settings are
measured through the same folds without training again.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from waldo_pl.calibration import calibrated, fit_platt
from waldo_pl.data.download import COMPLETE_MARKER, default_root
from waldo_pl.data.formats import collection_of, load_collections, with_decoys
from waldo_pl.errors import UserError, exits_cleanly
from waldo_pl.files import write_text_atomically
from waldo_pl.inference.answer import page_outcome
from waldo_pl.inference.report import reliability_table
from waldo_pl.inference.device import load_for_search
from waldo_pl.inference.heatmap import MERGES
from waldo_pl.inference.rerank import check_confidence, check_margin, confidence_of
from waldo_pl.inference.search import ONE_PASS, SearchSettings, search, with_settings
from waldo_pl.odds import UNCALIBRATED


def fold_table(folder: Path, scales: list[float] | None = None, data_root: Path | None = None, flip: bool = False,
               second_stage: bool = True, calibrate: Path | None = None, calibrated_by: Path | None = None,
               candidates: int | None = None, margin: float | None = None, confidence: str | None = None,
               keep: Path | None = None, with_first_stage: bool = False, merge: str | None = None) -> str:
    runs = sorted(folder.rglob("metrics.json"))
    if not runs:
        raise UserError(f"{folder}: no metrics.json below it; point at the output folder of a cross-validation run")
    lines = ["| run | fold | seed | pages held out | hit rate | top-5 hit rate | median distance (px) | steps | fit time |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    by_seed: dict[str, list] = {}
    scored = []  # (run, config, its held-out pages' outcomes)
    pages_at: dict[tuple, list] = {}  # each data root (with its decoys) read once, not once a fold
    merged_by = merge or SearchSettings.merge  # how the pages are searched again, if they are
    for path in runs:
        record, cfg = json.loads(path.read_text()), run_config(path.parent)
        rescore = (scales is not None or flip or not second_stage or candidates is not None or margin is not None
                   or confidence is not None or merge is not None)
        pages = (rescored_pages(path.parent, record, cfg, scales or list(ONE_PASS.scales), flip, data_root, pages_at, second_stage, candidates, margin,
                                confidence, merged_by) if rescore else record["pages"])
        fold, seed = fold_and_seed(cfg)
        by_seed.setdefault(seed, []).extend(pages)
        scored.append((path.parent, cfg, pages))
        distances = sorted(p["distance"] for p in pages)
        names = ", ".join(f"{p['page']}{'' if p['hit'] else ' (miss)'}" for p in pages)
        lines.append(f"| {path.parent.relative_to(folder)} | {fold} | {seed} | {names} | {hit_rates(pages)} | "
                     f"{distances[len(distances) // 2]:.0f} | {record['steps']} | {minutes(record.get('fit_seconds'))} |")
    if len(by_seed) > 1:  # seed also draws the folds: each seed is a cross-validation of its own
        lines += [f"| seed {seed} | | {seed} | {len(pages)} pages | {hit_rates(pages)} | | | |" for seed, pages in by_seed.items()]
    pooled = [p for pages in by_seed.values() for p in pages]
    lines.append(f"| **all** | | | {len(pooled)} pages | {hit_rates(pooled, bold=True)} | | | |")
    lines += collection_rows(scored, data_root)
    if pooled and all("confidence" in p for p in pooled):
        lines += ["", "What the confidence means on the held-out pages:", "", reliability_table(pooled)]
    if keep is not None:  # every held-out answer, its run and fold named, to study without searching again
        kept = [{**page, "run": str(run.relative_to(folder)), **dict(zip(("fold", "seed"), fold_and_seed(cfg)))}
                for run, cfg, pages in scored for page in pages]
        write_text_atomically(keep, json.dumps(kept, indent=1) + "\n")
    if calibrate is not None:
        searched = ({"scales": list(scales or ONE_PASS.scales), "flip": flip, "merge": merged_by} if rescore
                    else validated_search([cfg for _, cfg, _ in scored]))
        lines += ["", write_calibration(calibrate, pooled, folder, calibrated_number(pooled, folder), searched, with_first_stage)]
        if len(scored) > 1:
            lines += ["", cross_fitted_calibration(scored, with_first_stage)]
    if calibrated_by is not None:
        lines += ["", apply_calibration(calibrated_by, pooled, folder)]
    return "\n".join(lines)


def calibrated_number(pages: list[dict], folder: Path) -> str | None:
    """What the held-out answers' confidences are made from, as the search that gave them recorded (confidence_of:
    the second stage's share or score, or the first stage's own), which a calibration fitted on them maps; None for
    records from before the field. Answers made from different numbers are refused."""
    numbers = {p.get("confidence_of") for p in pages}
    if len(numbers) > 1:
        named = sorted(str(n) if n else "not recorded" for n in numbers)
        raise UserError(f"{folder}: its runs' confidences are made from different numbers ({', '.join(named)}); "
                        "calibrate each kind of run on its own, or search them again alike (--scales 1 1.25 --confidence share)")
    return numbers.pop() if numbers else None


def check_answers(pages: list[dict], folder: Path, with_first_stage: bool, why: str = "") -> None:
    """The answers hold what a calibration needs: their log-odds, and `with_first_stage` the first stage's too."""
    if any("log_odds" not in p for p in pages):
        raise UserError(f"{folder}: these runs' records hold no log-odds; search them again with --scales 1 1.25")
    if with_first_stage and any("first_stage_log_odds" not in p for p in pages):
        raise UserError(f"{folder}: these runs' records hold no first-stage log-odds{why}; search them again with --scales 1 1.25")


def fitted_platt(pages: list[dict], folder: Path, with_first_stage: bool = False) -> tuple[float, ...]:
    """Platt scaling of the answers' log-odds (a, b), and with `with_first_stage` of the first stage's log-odds at
    each answer too (a, b, c)."""
    check_answers(pages, folder, with_first_stage)
    first = [p["first_stage_log_odds"] for p in pages] if with_first_stage else None
    return fit_platt([p["log_odds"] for p in pages], [bool(p["hit"]) for p in pages], first_stage=first)


def calibrated_pages(pages: list[dict], platt: tuple[float, ...]) -> list[dict]:
    """The answers with their confidences calibrated by `platt` (its third number weighing the first stage's log-odds)."""
    first = [p.get("first_stage_log_odds") for p in pages] if len(platt) == 3 else None
    return [{**p, "confidence": float(c)} for p, c in zip(pages, calibrated([p["log_odds"] for p in pages], platt, first))]


def platt_words(platt: tuple[float, ...]) -> str:
    return ", ".join(f"{name}={value:.3f}" for name, value in zip("abc", platt))


def write_calibration(path: Path, pages: list[dict], folder: Path, confidence: str | None = None,
                      searched: dict | None = None, with_first_stage: bool = False) -> str:
    """Platt scaling fitted on the held-out answers' log-odds (and, `with_first_stage`, the first stage's log-odds at
    each answer), written for waldo-export --calibration; `confidence` (calibrated_number's) names what they were made
    from, so that export maps the same number with it, and `searched` how the pages were searched (scales, flip),
    which the model's record then says."""
    if len({p["hit"] for p in pages}) < 2:
        raise UserError(f"{folder}: every held-out answer is {'right' if pages[0]['hit'] else 'wrong'}; calibration needs both")
    platt = fitted_platt(pages, folder, with_first_stage)
    record = {"method": "platt", **dict(zip("abc", platt)), "pages": len(pages), "hits": sum(p["hit"] for p in pages),
              "runs": str(folder), **({"confidence": confidence} if confidence else {}), **({"search": searched} if searched else {})}
    write_text_atomically(path, json.dumps(record, indent=2) + "\n")
    return "\n".join([f"Platt scaling fitted on these {len(pages)} answers ({platt_words(platt)}), written to {path}; "
                      "on the same answers (in-sample) it gives:", "", reliability_table(calibrated_pages(pages, platt))])


def cross_fitted_calibration(scored: list[tuple[Path, DictConfig | None, list[dict]]], with_first_stage: bool = False) -> str:
    """The reliability table of every run's answers calibrated by a Platt scaling fitted on the answers of the other
    pages (leaving out the run's own pages at every seed): how --calibrate's fit would do on pages it never saw."""
    pages = [page for _, _, run_pages in scored for page in run_pages]
    out = []
    for run, _, run_pages in scored:
        own = {p["page"] for p in run_pages}
        others = [p for p in pages if p["page"] not in own]
        if len({p["hit"] for p in others}) < 2:
            return "Too few answers to fit the calibration without each run's own pages."
        out += calibrated_pages(run_pages, fitted_platt(others, run, with_first_stage))
    return "\n".join(["Out of sample: each run's answers calibrated by the same fit on the other pages' answers only, together:",
                      "", reliability_table(out)])


def apply_calibration(path: Path, pages: list[dict], folder: Path) -> str:
    """The reliability table of the held-out answers calibrated by a Platt scaling fitted on other runs' answers
    (written by --calibrate): whether that calibration holds on pages it was not fitted on."""
    try:
        fitted = json.loads(path.read_text())
        platt = (float(fitted["a"]), float(fitted["b"]), *([float(fitted["c"])] if "c" in fitted else []))
    except (OSError, ValueError, TypeError, KeyError):
        raise UserError(f"--calibrated-by {path}: not a readable file written by waldo-crossval --calibrate (needs a and b)") from None
    check_answers(pages, folder, len(platt) == 3, f", which {path} weighs")
    return "\n".join([f"Calibrated by {path} ({platt_words(platt)}, fitted on other answers), these "
                      f"{len(pages)} answers give:", "", reliability_table(calibrated_pages(pages, platt))])


def hit_rates(pages: list[dict], bold: bool = False) -> str:
    """'hits/n = %' and 'top-5 hits/n = %' as two table cells."""
    hits, top5, n = sum(p["hit"] for p in pages), sum(p["top5_hit"] for p in pages), len(pages)
    hit = f"{hits}/{n} = {hits / n:.0%}"
    return f"{f'**{hit}**' if bold else hit} | {top5}/{n} = {top5 / n:.0%}"


def run_config(run: Path) -> DictConfig | None:
    """The config Hydra saved beside the run, or None when there is none."""
    try:
        return OmegaConf.load(run / ".hydra" / "config.yaml")
    except (OSError, OmegaConfBaseException):
        return None


def validated_search(configs: list[DictConfig | None]) -> dict | None:
    """How the runs searched their held-out pages when they validated (page_validation's scales, flip and merge), if
    they all did alike; None where one did not say or they differ."""
    searched = []
    for cfg in configs:
        validation = OmegaConf.select(cfg, "callbacks.page_validation") if cfg is not None else None
        if validation is None or "scales" not in validation:
            return None
        # a config without page_validation.flip or .merge is of a run from before the setting: it validated unmirrored,
        # the scales' best kept; one that leaves a setting null validated at the training-time preset's
        older = {"flip": False, "merge": "max"}
        settings = with_settings(ONE_PASS, **{k: validation.get(k, older.get(k)) for k in ("scales", "flip", "merge")})
        searched.append({"scales": list(settings.scales), "flip": settings.flip, "merge": settings.merge})
    return searched[0] if searched and all(s == searched[0] for s in searched) else None


def fold_and_seed(cfg: DictConfig | None) -> tuple[str, str]:
    """The run's data.fold ('-' without folds) and seed; '?' for both without a saved config."""
    if cfg is None or "data" not in cfg or "seed" not in cfg:
        return "?", "?"
    return str(cfg.data.fold if cfg.data.get("folds") else "-"), str(cfg.seed)


def rescored_pages(run: Path, record: dict, cfg: DictConfig | None, scales: list[float], flip: bool,
                   data_root: Path | None, pages_at: dict, second_stage: bool = True, candidates: int | None = None,
                   margin: float | None = None, confidence: str | None = None, merge: str = SearchSettings.merge) -> list[dict]:
    """The run's held-out pages searched again by its last checkpoint at `scales` (and mirrored, with `flip`),
    re-ranked by its second stage unless `second_stage` is off (its best `candidates` spots with `margin`, else as it
    trained), the confidence made from `confidence` (the stage's share or score; uncalibrated where the stage was
    calibrated on the other one)."""
    ckpt = run / "checkpoints" / "last.ckpt"
    if not ckpt.is_file():
        raise UserError(f"{ckpt}: missing; --scales and --flip need each run's last checkpoint")
    roots = run_roots(run, cfg, data_root)
    held_out = {p["page"] for p in record["pages"]}
    # the PyTorch graph, as validation searched the pages (the GPU when there is one, as predict.py); the second
    # stage where the run trained one
    net, stage, bf16 = load_for_search(ckpt, "auto", "auto", "torch", None, second_stage)
    if stage is not None and candidates is not None:
        stage = dataclasses.replace(stage, candidates=candidates)
    if stage is not None and margin is not None:
        stage = dataclasses.replace(stage, margin=margin)
    if stage is not None and confidence not in (None, stage.confidence):  # its mapping was fitted on the other number
        stage = dataclasses.replace(stage, confidence=confidence, platt=UNCALIBRATED)
    settings = SearchSettings(scales=tuple(scales), flip=flip, merge=merge, bf16=bf16)
    results = []
    decoys = cfg.data.get("decoys") if cfg is not None else None  # the labels as the run read them
    if (roots, decoys) not in pages_at:
        pages_at[roots, decoys] = with_decoys(load_collections(list(roots)), decoys)
    for page in (p for p in pages_at[roots, decoys] if p.name in held_out):
        _, spots = search(net, page.image, settings, stage)
        results.append({"page": page.name, **page_outcome(spots, page.waldo_boxes), "confidence_of": confidence_of(stage)})
    order = [p["page"] for p in record["pages"]]
    return sorted(results, key=lambda p: order.index(p["page"]))


def run_roots(run: Path, cfg: DictConfig | None, data_root: Path | None) -> tuple[Path, ...]:
    """The folders of pages the run trained on: `data_root` if given, else its data.root (the downloaded pages for none)."""
    if data_root is None:
        if cfg is None:
            raise UserError(f"{run}: no .hydra/config.yaml to read data.root from; give the pages with --data")
        data_root = cfg.data.get("root")
        data_root = downloaded_pages() if data_root is None else data_root
    roots = tuple(Path(r) for r in data_root) if isinstance(data_root, (list, tuple, ListConfig)) else (Path(data_root),)
    for root in roots:
        if not root.is_dir():
            raise UserError(f"{root}: no such folder (the run's data.root); give the pages with --data")
    return roots


def collection_rows(runs: list[tuple[Path, DictConfig | None, list[dict]]], data_root: Path | None) -> list[str]:
    """The table's rows per collection (the folder of data.root each held-out page comes from), pooled over the
    runs, when they read several folders; none when a run read one or its folders are not there to tell."""
    by_collection: dict[str, list] = {}
    names_at: dict[tuple, dict[str, str]] = {}
    for run, cfg, pages in runs:
        try:
            roots = run_roots(run, cfg, data_root)
        except UserError:
            return []
        if len(roots) < 2:
            return []
        if roots not in names_at:
            names_at[roots] = collection_of(list(roots))
        for page in pages:
            by_collection.setdefault(names_at[roots].get(page["page"], "?"), []).append(page)
    if len(by_collection) < 2:
        return []
    return [f"| {name} | | | {len(pages)} pages | {hit_rates(pages)} | | | |" for name, pages in sorted(by_collection.items())]


def downloaded_pages() -> Path:
    """Where train.py put the public pages for runs with data.root unset."""
    root = default_root()
    if not (root / COMPLETE_MARKER).is_file():
        raise UserError(f"{root}: the runs trained on the downloaded pages, which are not there; run waldo-download or give --data")
    return root


def minutes(seconds: float | None) -> str:
    return "?" if seconds is None else f"{seconds / 60:.1f} min"


@exits_cleanly
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--scales", type=float, nargs="+", help="search the held-out pages again at these scales")
    parser.add_argument("--flip", action="store_true", help="search the held-out pages again, mirrored as well")
    parser.add_argument("--merge", choices=MERGES, help="search the held-out pages again, the scales' heatmaps merged per "
                                                        "pixel by their mean (predict.py's) or max")
    parser.add_argument("--data", type=Path, help="the labelled pages, if not at the runs' data.root")
    stages = parser.add_mutually_exclusive_group()
    stages.add_argument("--first-stage-only", action="store_true", help="search the held-out pages again without the second stage")
    stages.add_argument("--candidates", type=int, help="search the held-out pages again, the second stage re-ranking this many spots")
    parser.add_argument("--margin", type=float, help="search the held-out pages again, the second stage moving the answer off the "
                                                     "first stage's best spot only when surer of another by this many log-odds")
    parser.add_argument("--confidence", help="search the held-out pages again, the confidence made from this number: share "
                                             "(the answer's share of the candidates' odds) or score (its second-stage score)")
    calibration = parser.add_mutually_exclusive_group()
    calibration.add_argument("--calibrate", type=Path, metavar="OUT.json",
                             help="fit Platt scaling of the confidence on the held-out answers, for waldo-export --calibration")
    calibration.add_argument("--calibrated-by", type=Path, metavar="CALIBRATION.json",
                             help="the held-out answers' reliability table under a calibration fitted on other runs (--calibrate's file)")
    parser.add_argument("--with-first-stage", action="store_true",
                        help="--calibrate weighs the first stage's log-odds at the answer too (a third number, c)")
    parser.add_argument("--keep", type=Path, metavar="ANSWERS.json", help="write every held-out answer here (JSON), its run named")
    args = parser.parse_args(argv)
    if args.scales and min(args.scales) <= 0:
        raise UserError(f"--scales {args.scales}: every scale must be positive")
    if args.candidates is not None and args.candidates < 1:
        raise UserError(f"--candidates {args.candidates}: must be 1 or more")
    check_margin(f"--margin {args.margin}", args.margin)
    if args.first_stage_only and args.margin is not None:
        raise UserError(f"--margin {args.margin} with --first-stage-only: the margin is the second stage's; give one of them")
    check_confidence(f"--confidence {args.confidence}", args.confidence)
    if args.first_stage_only and args.confidence is not None:
        raise UserError(f"--confidence {args.confidence} with --first-stage-only: it is the second stage's; give one of them")
    if args.with_first_stage and args.calibrate is None:
        raise UserError("--with-first-stage: it says what --calibrate fits; give --calibrate OUT.json too")
    print(fold_table(args.folder, args.scales, args.data, args.flip, not args.first_stage_only, args.calibrate,
                     args.calibrated_by, args.candidates, args.margin, args.confidence, args.keep, args.with_first_stage,
                     args.merge))


if __name__ == "__main__":
    main()
