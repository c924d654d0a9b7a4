"""The network (a plain nn.Module) and the LightningModule that trains it."""

from waldo_pl.models.seed_net import SeedNet

__all__ = ["SeedNet"]
