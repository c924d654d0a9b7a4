"""Train the Waldo network: python train.py [trainer.accelerator=gpu] [experiment=seed] [key=value ...]"""

import sys

import hydra
from omegaconf import DictConfig

from waldo_pl.cli import check_overrides
from waldo_pl.errors import exits_cleanly
from waldo_pl.training import train


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
@exits_cleanly
def main(cfg: DictConfig) -> None:
    train(cfg)


if __name__ == "__main__":
    check_overrides("train", sys.argv[1:])
    main()
