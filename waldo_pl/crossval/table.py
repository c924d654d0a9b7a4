"""The fold table of a cross-validation: each run's held-out answers, per run, per seed, per collection and pooled,
with what the confidence means on them."""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import DictConfig

from waldo_pl.crossval.calibrate import (
    apply_calibration,
    calibrated_number,
    cross_fitted_calibration,
    write_calibration,
)
from waldo_pl.crossval.rescore import Rescoring, rescored_pages
from waldo_pl.crossval.runs import fold_and_seed, run_config, run_roots, validated_search
from waldo_pl.data.formats import collection_of
from waldo_pl.errors import UserError
from waldo_pl.files import write_text_atomically
from waldo_pl.inference.report import reliability_table


def fold_table(
    folder: Path,
    rescoring: Rescoring | None = None,
    data_root: Path | None = None,
    calibrate: Path | None = None,
    calibrated_by: Path | None = None,
    with_first_stage: bool = False,
    keep: Path | None = None,
) -> str:
    """The table of every run under `folder`: its held-out answers as it validated them, or searched again as
    `rescoring` says (against the pages in `data_root` if given); with `calibrate`, Platt scaling fitted on the answers
    and written there (weighing the first stage's log-odds too `with_first_stage`); with `calibrated_by`, such a fit's
    reliability on these answers; with `keep`, every answer written there."""
    runs = sorted(folder.rglob("metrics.json"))
    if not runs:
        raise UserError(f"{folder}: no metrics.json below it; point at the output folder of a cross-validation run")
    lines = [
        "| run | fold | seed | pages held out | hit rate | top-5 hit rate | median distance (px) | steps | fit time |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    by_seed: dict[str, list] = {}
    scored = []  # (run, config, its held-out pages' outcomes)
    pages_at: dict[tuple, list] = {}  # each data root (with its decoys) read once, not once a fold
    for path in runs:
        record, cfg = json.loads(path.read_text()), run_config(path.parent)
        pages = (
            record["pages"]
            if rescoring is None
            else rescored_pages(path.parent, record, cfg, rescoring, data_root, pages_at)
        )
        fold, seed = fold_and_seed(cfg)
        by_seed.setdefault(seed, []).extend(pages)
        scored.append((path.parent, cfg, pages))
        distances = sorted(p["distance"] for p in pages)
        names = ", ".join(f"{p['page']}{'' if p['hit'] else ' (miss)'}" for p in pages)
        lines.append(
            f"| {path.parent.relative_to(folder)} | {fold} | {seed} | {names} | {hit_rates(pages)} | "
            f"{distances[len(distances) // 2]:.0f} | {record['steps']} | {minutes(record.get('fit_seconds'))} |"
        )
    if len(by_seed) > 1:  # seed also draws the folds: each seed is a cross-validation of its own
        lines += [
            f"| seed {seed} | | {seed} | {len(pages)} pages | {hit_rates(pages)} | | | |"
            for seed, pages in by_seed.items()
        ]
    pooled = [p for pages in by_seed.values() for p in pages]
    lines.append(f"| **all** | | | {len(pooled)} pages | {hit_rates(pooled, bold=True)} | | | |")
    lines += collection_rows(scored, data_root)
    if pooled and all("confidence" in p for p in pooled):
        lines += ["", "What the confidence means on the held-out pages:", "", reliability_table(pooled)]
    if keep is not None:  # every held-out answer, its run and fold named, to study without searching again
        kept = [
            {**page, "run": str(run.relative_to(folder)), **dict(zip(("fold", "seed"), fold_and_seed(cfg)))}
            for run, cfg, pages in scored
            for page in pages
        ]
        write_text_atomically(keep, json.dumps(kept, indent=1) + "\n")
    if calibrate is not None:
        searched = rescoring.searched() if rescoring is not None else validated_search([cfg for _, cfg, _ in scored])
        lines += [
            "",
            write_calibration(calibrate, pooled, folder, calibrated_number(pooled, folder), searched, with_first_stage),
        ]
        if len(scored) > 1:
            lines += ["", cross_fitted_calibration(scored, with_first_stage)]
    if calibrated_by is not None:
        lines += ["", apply_calibration(calibrated_by, pooled, folder)]
    return "\n".join(lines)


def hit_rates(pages: list[dict], bold: bool = False) -> str:
    """'hits/n = %' and 'top-5 hits/n = %' as two table cells."""
    hits, top5, n = sum(p["hit"] for p in pages), sum(p["top5_hit"] for p in pages), len(pages)
    hit = f"{hits}/{n} = {hits / n:.0%}"
    return f"{f'**{hit}**' if bold else hit} | {top5}/{n} = {top5 / n:.0%}"


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
    return [
        f"| {name} | | | {len(pages)} pages | {hit_rates(pages)} | | | |"
        for name, pages in sorted(by_collection.items())
    ]


def minutes(seconds: float | None) -> str:
    return "?" if seconds is None else f"{seconds / 60:.1f} min"
