"""Find Waldo: python predict.py img=page.jpg [ckpt=model.ckpt] [output_dir=predictions] [labels=annotations.csv]"""

import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from waldo_pl.cli import check_overrides
from waldo_pl.errors import UserError, exits_cleanly
from waldo_pl.inference.finder import predict


@hydra.main(version_base="1.3", config_path="conf", config_name="predict")
@exits_cleanly
def main(cfg: DictConfig) -> None:
    if OmegaConf.is_missing(cfg, "img"):
        raise UserError("img= is required: give a page, a folder of pages or a glob")
    settings = OmegaConf.to_container(cfg, resolve=True)
    try:
        settings["scales"] = tuple(float(s) for s in settings["scales"])
    except (TypeError, ValueError):
        raise UserError(f"scales={settings['scales']}: give a list of sizes, e.g. scales='[1.0,1.25]'") from None
    if not isinstance(settings["flip"], bool):
        raise UserError(f"flip={settings['flip']}: give true or false")
    predict(**settings)


if __name__ == "__main__":
    check_overrides("predict", sys.argv[1:])
    main()
