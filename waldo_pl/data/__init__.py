"""Pages and their labels, the crop stream, and the LightningDataModule.

Names are imported on first use, so that reading a page (predict.py, the app) does not import Lightning
or the crop stream's torchvision transforms."""

import importlib

_HOMES = {
    "CropLoader": "crops",
    "CropStream": "crops",
    "WaldoDataModule": "datamodule",
    "load_csv": "formats",
    "load_npy": "formats",
    "load_pages": "formats",
    "load_voc": "formats",
    "Page": "page",
    "read_image": "page",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
