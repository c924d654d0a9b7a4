"""The networks, what their outputs mean, the LightningModule that trains them, and their checkpoints."""

from waldo_pl.models.tutorial_net import TutorialNet

__all__ = ["TutorialNet"]
