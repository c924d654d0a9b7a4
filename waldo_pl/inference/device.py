"""Where the search runs, in which precision and by which backend. On a CPU with OpenVINO and a model already
converted, nothing here imports PyTorch."""

from __future__ import annotations

from pathlib import Path

from waldo_pl.errors import UserError
from waldo_pl.inference import openvino_backend
from waldo_pl.inference.networks import PageNetwork, fast_page_network
from waldo_pl.precision import bf16_on
from waldo_pl.second_stage.spec import SecondStage


def check_choices(accelerator: str = "auto", precision: str = "auto", backend: str = "auto") -> None:
    if accelerator not in ("auto", "cpu", "gpu", "cuda"):
        raise UserError(f"accelerator={accelerator}: use auto, cpu or gpu")
    if str(precision) not in ("auto", "32", "bf16"):
        raise UserError(f"precision={precision}: use auto, 32 or bf16")
    if backend not in ("auto", "torch", "openvino"):
        raise UserError(f"backend={backend}: use auto, torch or openvino")


def cuda_present() -> bool:
    """Whether this machine may have an NVIDIA GPU: where it has none, choosing the CPU needs no PyTorch."""
    return Path("/proc/driver/nvidia").exists() or any(Path("/dev").glob("nvidia[0-9]*"))


def choose_device(accelerator: str):
    import torch

    check_choices(accelerator)
    if accelerator in ("gpu", "cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"accelerator={accelerator}: no CUDA GPU on this machine; use accelerator=cpu or auto")
        return torch.device("cuda")
    if accelerator == "cpu":
        return torch.device("cpu")
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def use_bf16(precision: str, device) -> bool:
    """bf16 on a GPU, or on a CPU with native bf16 arithmetic (about twice as fast there); else float32."""
    check_choices(precision=precision)
    if str(precision) == "auto":
        return bf16_on(device.type)[0]
    return str(precision) == "bf16"


def _on_cpu(accelerator: str) -> bool:
    if accelerator == "cpu" or accelerator == "auto" and not cuda_present():
        return True
    return choose_device(accelerator).type == "cpu"


def search_network(net, device, bf16: bool, backend: str = "auto") -> PageNetwork:
    """What the search runs for a PyTorch first stage in memory: its cheaper exact graph in PyTorch, or on a CPU
    with OpenVINO installed (backend=auto or openvino) that graph compiled by OpenVINO."""
    check_choices(backend=backend)
    _check_openvino(backend, device.type == "cpu")
    if backend == "openvino" or backend == "auto" and device.type == "cpu" and openvino_backend.available():
        return openvino_backend.compile_network(net, bf16)
    return fast_page_network(net, bf16)


def _check_openvino(backend: str, on_cpu: bool) -> None:
    if backend == "openvino" and not openvino_backend.available():
        raise UserError(
            "backend=openvino: OpenVINO is not installed; pip install openvino (a dependency of this project), "
            "or use backend=torch"
        )
    if backend == "openvino" and not on_cpu:
        raise UserError("backend=openvino runs on the CPU; use accelerator=cpu, or backend=torch on the GPU")


def described(net: PageNetwork, bf16: bool, precision: str = "auto") -> str:
    """Which backend runs the search, where, and in which precision (on a CPU with precision=auto, why), in words."""
    openvino = isinstance(net, openvino_backend.OpenVINONetwork)
    device = "cpu" if openvino else str(getattr(net, "device", "cpu"))
    said = f"{'OpenVINO' if openvino else 'PyTorch'} on the {device}, {'bf16' if bf16 else 'float32'}"
    if str(precision) == "auto" and device == "cpu":
        said += " (native here)" if bf16 else " (no native bf16 here)"
    return said


def load_for_search(
    path,
    accelerator: str = "auto",
    precision: str = "auto",
    backend: str = "auto",
    setting: str | None = "ckpt",
    second_stage: bool = True,
) -> tuple[PageNetwork, SecondStage | None, bool]:
    """A checkpoint file as the search runs it: its first stage, its second stage (None when the file has none
    or `second_stage` is off), and whether they run in bf16. OpenVINO on a CPU where it is installed (backend=auto
    or openvino), from its cache without PyTorch once converted; else PyTorch, on the chosen device."""
    check_choices(accelerator, precision, backend)
    on_cpu = _on_cpu(accelerator)
    _check_openvino(backend, on_cpu)
    if on_cpu and backend != "torch" and openvino_backend.available():
        bf16 = openvino_backend.native_bf16() if str(precision) == "auto" else str(precision) == "bf16"
        return (*openvino_backend.load_checkpoint(path, bf16, second_stage, setting), bf16)

    import torch

    from waldo_pl.models.checkpoint import network_from, read_checkpoint, second_stage_from

    device = choose_device(accelerator)
    bf16 = use_bf16(precision, device)
    checkpoint = read_checkpoint(path, setting)
    where = f"{setting}={path}" if setting else str(path)
    net = network_from(checkpoint, where).to(device, memory_format=torch.channels_last)
    stage = second_stage_from(checkpoint, where) if second_stage else None
    return search_network(net, device, bf16, "torch"), stage, bf16
