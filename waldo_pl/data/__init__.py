"""Labelled pages, their formats and download, and the stream of training crops."""

from waldo_pl.data.crops import CropLoader, CropStream
from waldo_pl.data.datamodule import WaldoDataModule
from waldo_pl.data.formats import load_csv, load_npy, load_pages, load_voc
from waldo_pl.data.page import Page, read_image

__all__ = ["CropLoader", "CropStream", "Page", "WaldoDataModule", "load_csv", "load_npy", "load_pages", "load_voc", "read_image"]
