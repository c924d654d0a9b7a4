"""Where the search runs and in which precision."""

from __future__ import annotations

import torch
from torch import nn

from waldo_pl.errors import UserError
from waldo_pl.inference.rerank import SecondStage, load_second_stage
from waldo_pl.models.checkpoint import network_from, read_checkpoint
from waldo_pl.models.fast_graph import fast_graph


def choose_device(accelerator: str) -> torch.device:
    if accelerator in ("gpu", "cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"accelerator={accelerator}: no CUDA GPU on this machine; use accelerator=cpu or auto")
        return torch.device("cuda")
    if accelerator == "cpu":
        return torch.device("cpu")
    if accelerator == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    raise UserError(f"accelerator={accelerator}: use auto, cpu or gpu")


def use_bf16(precision: str, device: torch.device) -> bool:
    """bf16 on a GPU, or on a CPU with native bf16 arithmetic (about twice as fast there); else float32."""
    if str(precision) == "auto":
        return device.type == "cuda" or torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    if str(precision) in ("32", "bf16"):
        return str(precision) == "bf16"
    raise UserError(f"precision={precision}: use auto, 32 or bf16")


def search_network(net: nn.Module, device: torch.device, bf16: bool, backend: str = "auto") -> nn.Module:
    """What the search runs: the network's cheaper exact graph in PyTorch, or on a CPU with OpenVINO installed
    (backend=auto or openvino) that graph compiled by OpenVINO."""
    from waldo_pl.inference import openvino_backend

    if backend not in ("auto", "torch", "openvino"):
        raise UserError(f"backend={backend}: use auto, torch or openvino")
    if backend == "openvino" and not openvino_backend.available():
        raise UserError("backend=openvino: OpenVINO is not installed; pip install -e '.[openvino]', or use backend=torch")
    if backend == "openvino" and device.type != "cpu":
        raise UserError("backend=openvino runs on the CPU; use accelerator=cpu, or backend=torch on the GPU")
    if backend == "openvino" or backend == "auto" and device.type == "cpu" and openvino_backend.available():
        return openvino_backend.compile_network(net, bf16)
    return fast_graph(net)


def load_for_search(path, device: torch.device, bf16: bool, backend: str = "auto", setting: str | None = "ckpt",
                    second_stage: bool = True) -> tuple[nn.Module, SecondStage | None]:
    """From one read of a checkpoint: the first stage as the search runs it, and its second stage (None when the
    file has none or `second_stage` is off)."""
    checkpoint = read_checkpoint(path, setting)
    where = f"{setting}={path}" if setting else str(path)
    net = network_from(checkpoint, where).to(device, memory_format=torch.channels_last)
    return search_network(net, device, bf16, backend), load_second_stage(checkpoint, where) if second_stage else None
