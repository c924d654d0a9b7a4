"""The search's network compiled by OpenVINO for the CPU (pip install -e '.[openvino]'): the same log-odds as
PyTorch within bf16 rounding, several times faster there (bench/predict_speed.py).

The network is converted once per set of weights (models/fast_graph.py's graph) and kept in a cache folder
($WALDO_PL_CACHE, else ~/.cache/waldo_pl/openvino), so a later run only loads it.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from waldo_pl.models.fast_graph import fast_graph


def available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def cache_folder() -> Path:
    return Path(os.environ.get("WALDO_PL_CACHE", Path.home() / ".cache" / "waldo_pl")).expanduser() / "openvino"


def weights_key(net: nn.Module) -> str:
    digest = hashlib.sha256(type(net).__name__.encode())
    for name, tensor in sorted(net.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


class OpenVINONetwork(nn.Module):
    """Called like the PyTorch network: (B, 3, H, W) in [0, 1] -> (B, 1, H, W) Waldo log-odds, on the CPU."""

    def __init__(self, compiled):
        super().__init__()
        self.compiled = compiled
        self.register_buffer("where", torch.zeros(0))  # the search asks the network for its device

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.compiled(np.ascontiguousarray(x.float().cpu().numpy()))[0]
        return torch.from_numpy(np.asarray(out, dtype=np.float32))


def compile_network(net: nn.Module, bf16: bool, cache: Path | None = None) -> OpenVINONetwork:
    """`net` (a TutorialNet) converted, saved in the cache under its weights' hash, and compiled for the CPU."""
    import openvino as ov

    cache = cache or cache_folder()
    path = cache / f"tutorial_net-{weights_key(net)}.xml"
    core = ov.Core()
    if not path.is_file():
        graph = fast_graph(net.cpu()).to(memory_format=torch.contiguous_format)
        model = ov.convert_model(graph, example_input=torch.rand(1, 3, 64, 64), input=[-1, 3, -1, -1])
        cache.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.xml")
        ov.save_model(model, tmp, compress_to_fp16=False)
        os.replace(tmp.with_suffix(".bin"), path.with_suffix(".bin"))
        os.replace(tmp, path)
    compiled = core.compile_model(path, "CPU", {"INFERENCE_PRECISION_HINT": "bf16" if bf16 else "f32"})
    return OpenVINONetwork(compiled)
