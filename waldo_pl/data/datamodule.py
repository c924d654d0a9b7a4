"""The LightningDataModule: labelled pages split by page into training crops and validation pages."""

from __future__ import annotations

import copy
import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch
from omegaconf import ListConfig
from torch.utils.data import DataLoader

from waldo_pl.data.crops import CropLoader, CropStream
from waldo_pl.data.download import ensure_downloaded
from waldo_pl.data.formats import load_collections, read_decoys, read_groups, with_decoys
from waldo_pl.data.page import Page
from waldo_pl.errors import UserError

log = logging.getLogger(__name__)


def split_pages(
    pages: Sequence[Page],
    val_pages: Sequence[str] | None = None,
    val_fraction: float = 0.2,
    seed: int = 0,
    folds: int | None = None,
    fold: int = 0,
    always_train: Sequence[str] = (),
    groups: dict[str, str] | None = None,
    groups_only: bool = False,
) -> tuple[list[Page], list[Page]]:
    """(train, val) by page: the pages named in `val_pages`; else fold `fold` of `folds` seeded folds;
    else a seeded `val_fraction`. Pages in `always_train` are never held out by the last two. With `groups`
    (page name -> group, data/formats.read_groups), the last two hold out whole groups: the pages of one group
    stay on one side; a page in no group is a group of its own, or with `groups_only` always trains."""
    names = [p.name for p in pages]
    group_of = {name: _group(name, groups or {}) for name in names}
    if groups_only and not groups:
        raise UserError("data.groups_only=true needs data.groups, a CSV of which pages belong together")
    if groups_only:
        always_train = [*always_train, *(n for n in names if group_of[n] is None)]
    group_of = {name: name if group is None else group for name, group in group_of.items()}
    candidates = sorted({group_of[n] for n in set(names) - set(always_train)})
    rng = np.random.default_rng(seed)
    if val_pages is not None:
        unknown = sorted(set(val_pages) - set(names))
        if unknown:
            raise UserError(f"data.val_pages: {', '.join(unknown)} not among the loaded pages; use page file names")
        chosen = set(val_pages)
    elif folds is not None:
        if not 2 <= folds <= len(candidates):
            raise UserError(
                f"data.folds={folds}: needs 2 to {len(candidates)} (the pages, or groups, that may be held out)"
            )
        if not 0 <= fold < folds:
            raise UserError(f"data.fold={fold}: must be from 0 to data.folds - 1 = {folds - 1}")
        chosen = set(_deal_order(candidates, group_of, rng)[fold::folds])
    else:
        if not 0.0 <= val_fraction < 1.0:
            raise UserError(f"data.val_fraction={val_fraction}: must be in [0, 1)")
        count = int(round(val_fraction * len(candidates)))
        chosen = set(rng.choice(candidates, size=count, replace=False).tolist())
    if val_pages is None:  # groups chosen: their pages, but never one that always trains
        chosen = {n for n in names if group_of[n] in chosen and n not in always_train}
    train = [p for p in pages if p.name not in chosen]
    if not train:
        raise UserError("every page is held out for validation; name fewer data.val_pages or lower data.val_fraction")
    return train, [p for p in pages if p.name in chosen]


def _deal_order(candidates: list[str], group_of: dict[str, str], rng: np.random.Generator) -> list[str]:
    """The order folds are dealt from (fold k takes every `folds`-th from the k-th): shuffled, the groups of several
    pages (a spread's photos) first, so that they spread evenly over the folds, not where the shuffle drops them."""
    size = Counter(group_of.values())
    several = [c for c in candidates if size[c] > 1]
    single = [c for c in candidates if size[c] <= 1]
    if not several or not single:  # one kind only: a plain shuffle, as the folds have always been drawn
        return rng.permutation(candidates).tolist()
    return [*rng.permutation(several).tolist(), *rng.permutation(single).tolist()]


def _group(name: str, groups: dict[str, str]) -> str | None:
    """A page's group, by its name or, for a page renamed '<folder>/<name>' (two folders sharing a name), its file
    name."""
    return groups.get(name, groups.get(name.rsplit("/", 1)[-1]))


def collate_pages(pages: list[Page]) -> dict:
    """Whole pages for validation, one at a time since pages differ in size, as the search takes them: RGB uint8
    arrays (numpy, so Lightning leaves them where they are; the search moves them to the network)."""
    (page,) = pages
    return {"name": page.name, "page": page.image, "waldo_boxes": page.waldo_boxes}


class WaldoDataModule(L.LightningDataModule):
    """Training: an endless CropStream in epochs of `steps_per_epoch` batches; validation: whole held-out pages."""

    def __init__(
        self,
        root: str | list[str] | None = None,
        panel: int = 224,
        batch_size: int = 6,
        steps_per_epoch: int = 6,
        prop: float = 0.34,
        val_pages: list[str] | None = None,
        val_fraction: float = 0.2,
        folds: int | None = None,
        fold: int = 0,
        always_train: list[str] = (),
        groups: str | None = None,
        groups_only: bool = False,
        zooms: list[float] = (1.0,),
        colour_jitter: float = 0.0,
        photo_look: float = 0.0,
        paste: float = 0.0,
        decoys: str | None = None,
        num_workers: int = 0,
        seed: int = 0,
        split_seed: int | None = None,
        overfit_pages: int | None = None,
    ):
        super().__init__()
        if batch_size < 1 or steps_per_epoch < 1:
            raise UserError(
                f"data.batch_size={batch_size}, data.steps_per_epoch={steps_per_epoch}: both must be at least 1"
            )
        if num_workers < 0:
            raise UserError(f"data.num_workers={num_workers}: must be 0 (crops made in the training process) or more")
        if overfit_pages is not None and overfit_pages < 1:
            raise UserError(f"data.overfit_pages={overfit_pages}: must be 1 or more, or null to train as usual")
        if isinstance(root, (list, tuple, ListConfig)):
            root = [str(folder) for folder in root]  # plain strings, not a ListConfig: checkpoints load weights-only
        for folder in [] if root is None else root if isinstance(root, list) else [root]:
            if not Path(folder).is_dir():
                raise UserError(f"data.root={folder}: no such folder; point data.root at a folder of labelled pages")
        if groups is not None:
            read_groups(groups)  # a missing or malformed file is said now, not after the pages are read
        if decoys is not None:
            decoys = str(decoys)
            read_decoys(decoys)
        # plain lists, not Hydra ListConfigs, so that the checkpoint loads with weights_only
        val_pages = None if val_pages is None else [str(name) for name in val_pages]
        always_train = [str(name) for name in always_train]
        zooms = [float(z) for z in zooms]
        self.save_hyperparameters()
        self.train_pages: list[Page] = []
        self.val_pages: list[Page] = []
        self.crop_stream: CropStream | None = None
        self._train_loader: CropLoader | None = None

    def prepare_data(self) -> None:
        if self.hparams.root is None:
            ensure_downloaded()

    def setup(self, stage: str | None = None) -> None:
        if self.crop_stream is not None:
            return
        hp = self.hparams
        pages = with_decoys(load_collections(hp.root if hp.root is not None else ensure_downloaded()), hp.decoys)
        if hp.overfit_pages:  # debug=overfit: learn a few pages and be checked on the same ones
            self.train_pages = self.val_pages = pages[: hp.overfit_pages]
        else:
            self.train_pages, self.val_pages = split_pages(
                pages,
                hp.val_pages,
                hp.val_fraction,
                hp.seed if hp.split_seed is None else hp.split_seed,
                hp.folds,
                hp.fold,
                hp.always_train,
                read_groups(hp.groups) if hp.groups else None,
                hp.groups_only,
            )
        log.info(
            "%d training pages, %d validation pages (%s)",
            len(self.train_pages),
            len(self.val_pages),
            ", ".join(p.name for p in self.val_pages),
        )
        self.crop_stream = CropStream(
            self.train_pages, hp.panel, hp.prop, hp.seed, hp.zooms, hp.colour_jitter, hp.photo_look, hp.paste
        )
        if self.trainer is not None:
            self.crop_stream.rank = self.trainer.global_rank

    def waldo_pixel_fraction(self, batches: int = 50) -> float:
        """Share of Waldo pixels in the crop stream, measured on a sample of its crops drawn with another
        seed (a shallow copy: the pages and their window lists are shared, not built again)."""
        stream = copy.copy(self.crop_stream)
        stream.seed += 1
        crops = iter(stream)
        targets = [next(crops)[1] for _ in range(batches * self.hparams.batch_size)]
        return float(torch.stack(targets).float().mean())

    def train_dataloader(self) -> CropLoader:
        # One loader for the whole run: it counts the epochs that seed the stream.
        if self._train_loader is None:
            self._train_loader = CropLoader(
                self.crop_stream,
                self.hparams.steps_per_epoch,
                batch_size=self.hparams.batch_size,
                num_workers=self.hparams.num_workers,
                persistent_workers=False,
                pin_memory=torch.cuda.is_available(),
            )
        return self._train_loader

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_pages, batch_size=1, collate_fn=collate_pages)

    def state_dict(self) -> dict:
        state = {"epochs_started": self._train_loader.epochs_started if self._train_loader else 0}
        if self.crop_stream is not None and self.crop_stream.hardness:
            state["hardness"] = {
                w: [torch.from_numpy(g) for g in grids] for w, grids in self.crop_stream.hardness.items()
            }
            state["hardness_boost"] = self.crop_stream.hardness_boost
        return state

    def load_state_dict(self, state: dict) -> None:
        self.train_dataloader().epochs_started = state["epochs_started"]
        if "hardness" in state:
            hardness = {int(w): [g.numpy() for g in grids] for w, grids in state["hardness"].items()}
            self.crop_stream.set_hardness(hardness, state["hardness_boost"])
