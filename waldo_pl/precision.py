"""Which precision this machine computes fastest in, for training (a Lightning precision) and for the search (bf16
or not). One rule for both: bf16 where the hardware has it (a CUDA GPU that supports it, a CPU with AVX-512 or AMX,
where oneDNN runs bf16 natively), float32 elsewhere, where bf16 is emulated and many times slower."""

from __future__ import annotations

AUTO = "auto"


def cpu_bf16() -> bool:
    """Whether this CPU runs bf16 natively in oneDNN (AVX-512 or AMX); not on an AVX2-only CPU."""
    import torch

    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def cuda_bf16() -> bool:
    import torch

    return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())


def bf16_on(device_type: str) -> tuple[bool, str]:
    """Whether bf16 pays on a device of this type ("cuda" or "cpu"), and why, in a few words for a log."""
    if device_type == "cuda":
        return (True, "a GPU with bf16") if cuda_bf16() else (False, "a GPU without bf16")
    import torch

    capability = torch.backends.cpu.get_cpu_capability()
    if cpu_bf16():
        return True, f"a CPU with native bf16, {capability}"
    return False, f"a CPU without native bf16, {capability}, where bf16 is emulated and many times slower"


def training_precision(precision, device_type: str) -> tuple[str, str]:
    """The Lightning precision to train in, and why: `precision` as the user set it, or for "auto" bf16-mixed where
    bf16 pays on the device and 32-true elsewhere."""
    if str(precision) != AUTO:
        return str(precision), "as set"
    bf16, why = bf16_on(device_type)
    return ("bf16-mixed" if bf16 else "32-true"), f"auto: {why}"


def is_bf16(precision, device_type: str = "cpu") -> bool:
    """Whether a run of this Lightning `precision` (auto: chosen for the device) computes in bf16."""
    return training_precision(precision, device_type)[0].startswith("bf16")


def trainer_device_type(accelerator) -> str:
    """The device type a Trainer with this `accelerator` trains on ("cuda" or "cpu")."""
    import torch

    if str(accelerator) in ("gpu", "cuda"):
        return "cuda"
    return "cuda" if str(accelerator) == "auto" and torch.cuda.is_available() else "cpu"
