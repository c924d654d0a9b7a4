"""The README and docs/ say what runs: the front page's two commands are CI's, every link leads somewhere, and every
train.py and predict.py command they show composes into a config (an option renamed or removed fails here)."""

import re
import shlex
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from waldo_pl import CONF_DIR

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "bench" / "RESULTS.md"]
SCRIPTS = {"train.py": "train", "predict.py": "predict"}


def commands(script: str) -> list[tuple[str, str]]:
    """(page, the command's settings) for each command line of the README and docs/ that runs `python <script>`."""
    found = []
    for page in PAGES[:-1]:
        for line in page.read_text().splitlines():  # code blocks: indented four spaces
            if line.startswith("    ") and f"python {script}" in line:
                found.append((page.name, line.split(f"python {script}", 1)[1].split(" && ")[0]))
    return found


def overrides(text: str) -> list[str]:
    """A shown command's settings as Hydra overrides: comments, flags and placeholders out, optional [...] parts in,
    a sweep's first value."""
    out = []
    for token in shlex.split(text, comments=True):
        if token.startswith("["):
            token = token[1:]
        if token.endswith("]") and "=[" not in token:
            token = token[:-1]
        if "=" not in token or token.startswith(("-", "hydra.")) or "..." in token or "<" in token:
            continue
        key, value = token.split("=", 1)
        if "," in value and not value.startswith(("[", "'", '"', "${")):
            value = value.split(",")[0]
        out.append(f"{key}={value}")
    return out


def test_the_front_page_is_short_and_its_two_commands_are_the_ones_ci_runs():
    readme = (REPO / "README.md").read_text().splitlines()
    assert len(readme) < 250
    shown = [line.strip() for line in readme[:20] if line.startswith("    pip install")][:2]
    assert shown[0].endswith("pip install -e . && python train.py")
    assert shown[1].endswith("pip install -e '.[dev]' && python -m pytest -q")
    ci = (REPO / ".ci" / "run").read_text()
    assert "python3 -m pytest -q\n" in ci and "pip install -q --disable-pip-version-check -e '.[dev]'" in ci


def test_every_link_of_the_readme_and_docs_leads_to_a_file_of_the_project():
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if not target.startswith(("http://", "https://")):
                assert (page.parent / target).exists(), f"{page.relative_to(REPO)} links to {target}"


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_every_command_shown_composes_into_a_config(script):
    import waldo_pl.inference.predict  # noqa: F401 (registers predict.py's schema)

    shown = commands(script)
    assert len(shown) >= 3
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        for page, text in shown:
            try:
                compose(SCRIPTS[script], overrides=overrides(text))
            except Exception as err:
                pytest.fail(f"{page}: python {script}{text}: {type(err).__name__}: {err}".splitlines()[0])


def test_the_model_card_and_the_record_beside_the_weights_say_the_same():
    import json

    import torch

    weights = REPO / "waldo_pl" / "weights"
    record = json.loads((weights / "waldo.json").read_text())
    assert torch.load(weights / "waldo.pt", weights_only=True)["record"] == record
    card = record["model_card"]
    page = (REPO / card["card"]).read_text()
    figures = [
        *card["held_out_cross_validation"]["seed_1"].values(),
        *card["held_out_cross_validation"]["seed_0"].values(),
        *(v for part in ("scans", "photos") for v in card["new_scenes"][part].values()),
    ]
    for figure in figures:
        assert figure in page, f"the record's {figure} is not on the model card"
    assert record["second_stage"]["calibration"].startswith("Platt scaling") and "Platt scaling" in page
