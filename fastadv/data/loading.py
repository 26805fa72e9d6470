"""fastadv.data.load(name, root=..., split=...): every data set by name."""
from __future__ import annotations

from .cifar import load_cifar
from .digits import load_digits
from .image_data import ImageData

_NAMES = ("digits", "cifar10", "cifar100")
_SPLITS = ("train", "test")


def available() -> tuple[str, ...]:
    """The names fastadv.data.load accepts."""
    return _NAMES


def load(name: str, *, root=None, split: str = "train") -> ImageData:
    """Load data set `name` ("digits", "cifar10", "cifar100"), split "train" or "test".

    "digits" is bundled with fastadv (root is ignored). CIFAR is read from the standard
    python-version archive folders under `root` (the folder itself or its parent; default
    $FASTADV_DATA or ./data); nothing is downloaded.
    """
    if not isinstance(name, str) or name not in _NAMES:
        raise ValueError(f"unknown data set {name!r}; available: {list(_NAMES)}")
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {list(_SPLITS)}, got {split!r}")
    if name == "digits":
        return load_digits(split)
    return load_cifar(name, root=root, split=split)
