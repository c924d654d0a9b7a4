"""Checkpoints written by train.py and files written by waldo-export, read as data.

A file from outside names its network, but never the code that builds it: the name is looked up in
NETWORKS, this project's own networks, and only plain numbers, strings and booleans that the class
takes are passed to it. torch.load reads tensors and plain containers only (weights_only), so that a
pickle cannot run code either.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import torch
from torch import nn

from waldo_pl.errors import UserError
from waldo_pl.models.lite_spot_net import LiteSpotNet
from waldo_pl.models.spot_net import SpotNet
from waldo_pl.models.tutorial_net import TutorialNet
from waldo_pl.second_stage.spec import SecondStage

# `_target_` names a file may give for its network; files written before the rename say SeedNet.
NETWORKS: dict[str, type[nn.Module]] = {
    "waldo_pl.models.tutorial_net.TutorialNet": TutorialNet,
    "waldo_pl.models.TutorialNet": TutorialNet,
    "waldo_pl.models.seed_net.SeedNet": TutorialNet,
}
# The second stage's networks, for a file's `second_stage.net._target_`.
SPOT_NETWORKS: dict[str, type[nn.Module]] = {
    "waldo_pl.models.spot_net.SpotNet": SpotNet,
    "waldo_pl.models.lite_spot_net.LiteSpotNet": LiteSpotNet,
}
PLAIN = (bool, int, float, str, type(None))


def _where(path: Path, setting: str | None) -> str:
    return f"{setting}={path}" if setting else str(path)


def read_checkpoint(path: str | Path, setting: str | None = "ckpt") -> dict:
    """The file's contents (tensors and plain containers) with a `state_dict`; a missing file, one that is not a
    checkpoint, or one that holds more than weights-only data is a UserError naming it."""
    path, where = Path(path), _where(Path(path), setting)
    if not path.is_file():
        raise UserError(f"{where}: no such checkpoint; give a .ckpt written by train.py or a file from waldo-export")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a pickle of anything but tensors and plain data fails here, unrun
        raise UserError(
            f"{where}: not a checkpoint written by train.py ({type(err).__name__}); "
            "give a .ckpt from a training run or a file from waldo-export"
        ) from None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        raise UserError(
            f"{where}: not a checkpoint written by train.py (no state_dict); give a .ckpt from a training run"
        )
    return checkpoint


def network_spec(checkpoint: dict) -> dict:
    """The file's description of its network (config.model.net), or {} for the tutorial's network."""
    config = checkpoint.get("config")
    model = config.get("model") if isinstance(config, dict) else None
    spec = model.get("net") if isinstance(model, dict) else None
    return spec if isinstance(spec, dict) else {}


def build_network(
    spec: dict,
    where: str,
    networks: dict[str, type[nn.Module]] = NETWORKS,
    default: str = "waldo_pl.models.tutorial_net.TutorialNet",
) -> nn.Module:
    """One of `networks`, with the plain keyword arguments that `spec` gives; anything else is a UserError."""
    target = spec.get("_target_", default)
    if not isinstance(target, str) or target not in networks:
        raise UserError(
            f"{where}: names the network {target!r}, which is not one of this project's "
            f"({', '.join(sorted(networks))}); nothing from it was run"
        )
    cls = networks[target]
    kwargs = {k: v for k, v in spec.items() if k != "_target_"}
    bad = [k for k, v in kwargs.items() if k.startswith("_") or not isinstance(v, PLAIN)]
    try:
        if bad:
            raise TypeError(f"not plain arguments: {', '.join(bad)}")
        inspect.signature(cls).bind(**kwargs)
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise UserError(
            f"{where}: gives {cls.__name__} arguments it does not take ({err}); "
            "give a checkpoint of this project's network"
        ) from None


def network_weights(checkpoint: dict) -> dict[str, torch.Tensor]:
    """The network's weights (the `net.` entries of the LightningModule's state), in float32 whatever the file
    holds (waldo-export stores half precision)."""
    return {
        k.removeprefix("net."): v.float() if v.is_floating_point() else v
        for k, v in checkpoint["state_dict"].items()
        if k.startswith("net.") and isinstance(v, torch.Tensor)
    }


def load_network(path: str | Path, device: torch.device | str = "cpu", setting: str | None = "ckpt") -> nn.Module:
    """The network of a train.py checkpoint or a waldo-export file, in eval mode on `device`, channels-last."""
    return network_from(read_checkpoint(path, setting), _where(Path(path), setting)).to(
        device, memory_format=torch.channels_last
    )


def network_from(checkpoint: dict, where: str) -> nn.Module:
    """The network a checkpoint read by `read_checkpoint` describes, with its weights, in eval mode on the CPU."""
    return _built(
        network_spec(checkpoint),
        network_weights(checkpoint),
        where,
        NETWORKS,
        "waldo_pl.models.tutorial_net.TutorialNet",
    )


def _built(spec: dict, weights: dict, where: str, networks: dict, default: str) -> nn.Module:
    with torch.device("meta"):  # the shapes first, without allocating what the arguments ask for
        shapes = build_network(spec, where, networks, default)
    if {k: v.shape for k, v in weights.items()} != {k: v.shape for k, v in shapes.state_dict().items()}:
        raise UserError(
            f"{where}: holds another architecture than {type(shapes).__name__}; "
            "give a checkpoint of this project's network"
        )
    net = build_network(spec, where, networks, default)
    net.load_state_dict(weights)
    return net.eval()


def second_stage_from(checkpoint: dict, where: str) -> SecondStage | None:
    """The second stage a file holds, with its network built and its weights in float32, or None when it has none."""
    stage = checkpoint.get("second_stage")
    if stage is None:
        return None
    bad = UserError(f"{where}: its second_stage entry is not one this project writes; export the model again")
    if (
        not isinstance(stage, dict)
        or not isinstance(stage.get("net"), dict)
        or not isinstance(stage.get("state_dict"), dict)
    ):
        raise bad
    try:
        weights = {k: v.float() if v.is_floating_point() else v for k, v in stage["state_dict"].items()}
    except AttributeError:
        raise bad from None
    net = _built(stage["net"], weights, f"{where} (second stage)", SPOT_NETWORKS, "waldo_pl.models.spot_net.SpotNet")
    return SecondStage.from_settings(net, stage, where)


def second_stage_entry(stage: SecondStage, half: bool = False, **extra) -> dict:
    """What a file stores for a second stage: its network as the network describes itself (`spec()`) and its weights
    (in half precision with `half`, as waldo-export writes it), with `extra` facts (its training record); read back by
    second_stage_from."""
    weights = {k: v.detach().cpu().clone() for k, v in stage.net.state_dict().items()}
    if half:
        weights = {k: v.half() if v.is_floating_point() else v for k, v in weights.items()}
    return {"net": stage.net.spec(), "state_dict": weights, **stage.settings(), **extra}
