"""The runs of a cross-validation, read back: each one's saved config, fold, seed and the folders of its pages."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from waldo_pl.data.download import COMPLETE_MARKER, default_root
from waldo_pl.errors import UserError
from waldo_pl.inference.search import ONE_PASS, with_settings


def run_config(run: Path) -> DictConfig | None:
    """The config Hydra saved beside the run, or None when there is none."""
    try:
        return OmegaConf.load(run / ".hydra" / "config.yaml")
    except (OSError, OmegaConfBaseException):
        return None


def fold_and_seed(cfg: DictConfig | None) -> tuple[str, str]:
    """The run's data.fold ('-' without folds) and seed; '?' for both without a saved config."""
    if cfg is None or "data" not in cfg or "seed" not in cfg:
        return "?", "?"
    return str(cfg.data.fold if cfg.data.get("folds") else "-"), str(cfg.seed)


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


def run_roots(run: Path, cfg: DictConfig | None, data_root: Path | None) -> tuple[Path, ...]:
    """The folders of pages the run trained on: `data_root` if given, else its data.root (none: downloaded pages)."""
    if data_root is None:
        if cfg is None:
            raise UserError(f"{run}: no .hydra/config.yaml to read data.root from; give the pages with --data")
        data_root = cfg.data.get("root")
        data_root = downloaded_pages() if data_root is None else data_root
    roots = (
        tuple(Path(r) for r in data_root) if isinstance(data_root, (list, tuple, ListConfig)) else (Path(data_root),)
    )
    for root in roots:
        if not root.is_dir():
            raise UserError(f"{root}: no such folder (the run's data.root); give the pages with --data")
    return roots


def downloaded_pages() -> Path:
    """Where train.py put the public pages for runs with data.root unset."""
    root = default_root()
    if not (root / COMPLETE_MARKER).is_file():
        raise UserError(
            f"{root}: the runs trained on the downloaded pages, which are not there; run waldo-download or give --data"
        )
    return root
