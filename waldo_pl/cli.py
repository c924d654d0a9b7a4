"""What train.py and predict.py share: config errors as one line, exit code 2."""

from __future__ import annotations

import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import HydraException, InstantiationException
from omegaconf.errors import OmegaConfBaseException

from waldo_pl.errors import UserError

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def one_line(err: BaseException) -> str:
    """The message of `err` folded onto one line (Hydra's hints sit on its second line)."""
    text = str(err).split("Config search path")[0]
    text = " ".join(line.strip() for line in text.splitlines() if line.strip())
    return text or type(err).__name__


def check_overrides(config_name: str, argv: list[str], conf_dir: Path = CONF_DIR) -> None:
    """Compose the config once before Hydra runs, so that an unknown key or option is one line and exit 2.

    With -m/--multirun, each value of each sweep (data.fold=0,1,2) is composed in turn, the other
    sweeps held at their first value, so a bad value fails before the first job starts.
    """
    overrides = [a for a in hydra_overrides(argv) if not a.lstrip("+~").startswith("hydra.")]
    try:
        for combination in _sweep_combinations(overrides, multirun=bool({"-m", "--multirun"} & set(argv))):
            with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
                compose(config_name=config_name, overrides=combination)
    except (HydraException, OmegaConfBaseException, ValueError) as err:
        print(f"error: {one_line(err)} (see python {config_name}.py --help)", file=sys.stderr)
        sys.exit(2)


# Hydra's own flags that take the next word as their value (--cfg job, -cn train, --info plugins)
FLAGS_WITH_VALUE = {"--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn",
                    "--config-dir", "-cd", "--experimental-rerun"}
INFO_TOPICS = {"all", "config", "defaults", "defaults-tree", "plugins", "searchpath"}


def hydra_overrides(argv: list[str]) -> list[str]:
    """The overrides among `argv`: the words that are neither Hydra's flags nor their values."""
    overrides, words = [], iter(argv)
    for word in words:
        if word in FLAGS_WITH_VALUE:
            next(words, None)
        elif word in ("--info", "-i"):
            topic = next(words, None)
            if topic is not None and topic not in INFO_TOPICS:
                overrides.append(topic)
        elif not word.startswith("-"):
            overrides.append(word)
    return overrides


def _sweep_combinations(overrides: list[str], multirun: bool) -> list[list[str]]:
    """The override lists to compose: `overrides` itself, or one list per value of each sweep."""
    if not multirun:
        return [overrides]
    parsed = OverridesParser.create().parse_overrides(overrides)
    first = [_with_value(o, next(iter(o.sweep_string_iterator()))) if o.is_sweep_override() else text
             for o, text in zip(parsed, overrides)]
    combinations = [first]
    for i, override in enumerate(parsed):
        if override.is_sweep_override():
            combinations += [first[:i] + [_with_value(override, v)] + first[i + 1:]
                             for v in list(override.sweep_string_iterator())[1:]]
    return combinations


def _with_value(override: Override, value: str) -> str:
    return f"{override.get_key_element()}={value}"


def user_error_from(err: InstantiationException) -> UserError:
    """A bad setting found while building an object from the config, as a UserError."""
    cause = err.__cause__
    if isinstance(cause, UserError):
        return cause
    return UserError(one_line(cause or err))
