"""Find Waldo: python predict.py img=page.jpg [ckpt=model.ckpt] [output_dir=predictions] [labels=annotations.csv]"""

import hydra
from omegaconf import DictConfig, OmegaConf

from waldo_pl.cli import run, task
from waldo_pl.errors import UserError
from waldo_pl.inference.predict import predict  # also registers predict.yaml's schema


@hydra.main(version_base="1.3", config_path="conf", config_name="predict")
@task
def main(cfg: DictConfig) -> None:
    if OmegaConf.is_missing(cfg, "img"):
        raise UserError("img= is required: give a page, a folder of pages or a glob")
    predict(**OmegaConf.to_container(cfg, resolve=True))


if __name__ == "__main__":
    run(main, "predict.py")
