"""The bundled model: the network trained by this project's recipe, in half precision, and its record."""

from importlib import resources
from pathlib import Path

BUNDLED = "waldo.pt"


def bundled_model() -> Path:
    return Path(str(resources.files(__name__) / BUNDLED))
