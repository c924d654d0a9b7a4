"""Where the search runs and in which precision."""

from __future__ import annotations

import torch

from waldo_pl.errors import UserError


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
