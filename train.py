"""Train the Waldo network: python train.py [trainer.accelerator=gpu] [experiment=tutorial] [key=value ...]"""

import hydra
from omegaconf import DictConfig

from waldo_pl.cli import run, task
from waldo_pl.training import optimized_metric, train


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
@task
def main(cfg: DictConfig) -> float | None:
    """The run's `optimized_metric` (val/hit_rate), for a sweeper such as hparams_search=optuna."""
    return optimized_metric(cfg, train(cfg))


if __name__ == "__main__":
    run(main, "train.py")
