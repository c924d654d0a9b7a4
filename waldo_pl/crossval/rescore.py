"""The held-out pages of a run searched again by its last checkpoint, with other search settings than it validated
with: test-time settings measured through the same folds without training again."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from omegaconf import DictConfig

from waldo_pl.crossval.runs import run_roots
from waldo_pl.data.formats import load_collections, with_decoys
from waldo_pl.errors import UserError
from waldo_pl.inference.answer import page_outcome
from waldo_pl.inference.device import load_for_search
from waldo_pl.inference.rerank import confidence_of
from waldo_pl.inference.search import ONE_PASS, SearchSettings, search, with_settings
from waldo_pl.second_stage.spec import as_flag, check_reranking


@dataclasses.dataclass(frozen=True)
class Rescoring:
    """How the held-out pages are searched again: `search` (the training-time preset, ONE_PASS, unless given), re-ranked
    by each run's second stage unless `second_stage` is off, it re-ranking `candidates` spots with `margin`, its
    confidence made from `confidence` (each None: as the run trained it). Checked when built, named as waldo-crossval's
    flags."""

    search: SearchSettings = ONE_PASS
    second_stage: bool = True
    candidates: int | None = None
    margin: float | None = None
    confidence: str | None = None

    def __post_init__(self):
        check_reranking(self.candidates, self.margin, self.confidence, named=as_flag)
        for flag, value in (
            ("--margin", self.margin),
            ("--confidence", self.confidence),
            ("--candidates", self.candidates),
        ):
            if not self.second_stage and value is not None:
                raise UserError(f"{flag} {value} with --first-stage-only: it is the second stage's; give one of them")

    @classmethod
    def searching(
        cls, scales=None, flip: bool | None = None, merge: str | None = None, windows: int | None = None, **stage
    ) -> Rescoring:
        """The training-time search with `scales`, `flip`, `merge` and `windows` where given."""
        return cls(with_settings(ONE_PASS, scales=scales, flip=flip, merge=merge, windows=windows), **stage)

    def searched(self) -> dict:
        """How the pages were searched, as a calibration fitted on them records it."""
        searched = {"scales": list(self.search.scales), "flip": self.search.flip, "merge": self.search.merge}
        return searched if not self.search.windows else {**searched, "windows": self.search.windows}


def rescored_pages(
    run: Path,
    record: dict,
    cfg: DictConfig | None,
    rescoring: Rescoring,
    data_root: Path | None = None,
    pages_at: dict | None = None,
) -> list[dict]:
    """The run's held-out pages (its metrics.json `record`) searched again by its last checkpoint as `rescoring`
    says, against the labels as the run read them (its data.root unless `data_root`, its decoys); `pages_at` keeps
    each folder's pages between runs."""
    ckpt = run / "checkpoints" / "last.ckpt"
    if not ckpt.is_file():
        raise UserError(f"{ckpt}: missing; searching the pages again needs each run's last checkpoint")
    roots = run_roots(run, cfg, data_root)
    held_out = {p["page"] for p in record["pages"]}
    # the network as predict.py and validation search with it (OpenVINO on a CPU where installed, PyTorch on a GPU or
    # without it): in bf16 the two backends round differently, and a near tie can go either way between them; the
    # second stage where the run trained one
    net, stage, bf16 = load_for_search(ckpt, "auto", "auto", "auto", None, rescoring.second_stage)
    if stage is not None:
        stage = stage.with_choices(rescoring.candidates, rescoring.margin, rescoring.confidence, named=as_flag)
    settings = dataclasses.replace(rescoring.search, bf16=bf16)
    decoys = cfg.data.get("decoys") if cfg is not None else None  # the labels as the run read them
    pages_at = {} if pages_at is None else pages_at
    if (roots, decoys) not in pages_at:
        pages_at[roots, decoys] = with_decoys(load_collections(list(roots)), decoys)
    results = []
    for page in (p for p in pages_at[roots, decoys] if p.name in held_out):
        _, spots = search(net, page.image, settings, stage)
        results.append(
            {"page": page.name, **page_outcome(spots, page.waldo_boxes), "confidence_of": confidence_of(stage)}
        )
    order = [p["page"] for p in record["pages"]]
    return sorted(results, key=lambda p: order.index(p["page"]))
