"""What train.py and predict.py share: Hydra composes the config, and a config it cannot compose (an unknown
key, a bad option, a value of the wrong type) is one line and exit code 2, not Hydra's traceback and exit 1.

Hydra's own command line is left to Hydra (-cd, -cn, --cfg, hydra.searchpath, -m with sweeps): Hydra is told
to let its errors through (HYDRA_FULL_ERROR), and an error raised before the task started is the config's.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path

from hydra.errors import HydraException, InstantiationException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from waldo_pl.errors import UserError, exits_cleanly

_task_started = False


def resumed_run(ckpt_path: str | None) -> Path | None:
    """The run folder a checkpoint belongs to (<run>/checkpoints/x.ckpt), or None."""
    if ckpt_path is None:
        return None
    folder = Path(ckpt_path).absolute().parent
    return folder.parent if folder.name == "checkpoints" and (folder.parent / ".hydra").is_dir() else None


def run_dir(ckpt_path: str | None, new: str) -> str:
    """hydra.run.dir: a resumed run goes on in its own folder; any other in a new one."""
    run = resumed_run(ckpt_path)
    return str(run) if run else new


def config_subdir(ckpt_path: str | None, now: str) -> str:
    """hydra.output_subdir: a resumed run keeps the first run's .hydra/config.yaml and puts its own beside it."""
    return f".hydra/resumed_{now}" if resumed_run(ckpt_path) else ".hydra"


OmegaConf.register_new_resolver("run_dir", run_dir, replace=True)
OmegaConf.register_new_resolver("config_subdir", config_subdir, replace=True)


def one_line(err: BaseException) -> str:
    """The message of `err` (and of what caused it) folded onto one line."""
    parts = []
    while err is not None and len(parts) < 3:
        text = str(err).split("Config search path")[0]
        text = " ".join(line.strip() for line in text.splitlines() if line.strip())
        if text and text not in parts:
            parts.append(text)
        err = err.__cause__
    return ": ".join(parts) or "invalid config"


def task(main: Callable) -> Callable:
    """Mark the Hydra task's start (for `run`), and turn its UserErrors into one line and exit 2."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        global _task_started
        _task_started = True
        return exits_cleanly(main)(*args, **kwargs)

    return wrapper


def run(hydra_main: Callable, script: str):
    """Call a @hydra.main function; a config error raised before its task starts is one line and exit 2."""
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        return hydra_main()
    except (HydraException, OmegaConfBaseException, ValueError) as err:
        if _task_started:
            raise
        print(f"error: {one_line(err)} (see python {script} --help)", file=sys.stderr)
        sys.exit(2)


def user_error_from(err: InstantiationException) -> UserError:
    """A bad setting found while building an object from the config, as a UserError."""
    cause = err.__cause__
    if isinstance(cause, UserError):
        return cause
    return UserError(one_line(cause or err))
