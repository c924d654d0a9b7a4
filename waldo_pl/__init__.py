"""Find Waldo: pages -> crops -> network -> loss -> heatmap -> answer."""

from pathlib import Path

from omegaconf import OmegaConf

from waldo_pl.errors import UserError

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
# ${conf_dir:} in a config is this folder, wherever the command runs (a file the project ships beside its configs);
# here, so that whatever reads a run's saved config resolves it
OmegaConf.register_new_resolver("conf_dir", lambda: str(CONF_DIR), replace=True)

__all__ = ["UserError"]
