"""The bundled 8x8 handwritten digits: a small real data set that needs no files.

Alpaydin & Kaynak, "Optical Recognition of Handwritten Digits" (UCI, 1998): 1,797 grey
images of 10 classes, 8x8 pixels. scripts/make_digits.py wrote digits.npz once: uint8
pixels (the original counts 0..16 scaled to 0..255), a fixed stratified split of 1,437
training and 360 test images, and the per-channel mean/std of the training images.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .image_data import ImageData

DIGITS_FILE = Path(__file__).resolve().parent / "digits.npz"


def load_digits(split: str = "train") -> ImageData:
    if not DIGITS_FILE.is_file():
        raise FileNotFoundError(
            f"the bundled digits file {DIGITS_FILE} is missing; reinstall fastadv, or run "
            f"scripts/make_digits.py from the repository (needs scikit-learn)")
    with np.load(DIGITS_FILE) as arrays:
        x = torch.from_numpy(np.ascontiguousarray(arrays[f"x_{split}"]))
        y = torch.from_numpy(np.ascontiguousarray(arrays[f"y_{split}"])).long()
        mean = tuple(arrays["mean"].tolist())
        std = tuple(arrays["std"].tolist())
    return ImageData(x, y, num_classes=10, mean=mean, std=std, name="digits")
