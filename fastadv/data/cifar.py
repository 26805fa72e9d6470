"""CIFAR-10 and CIFAR-100 from the standard "python version" archives on disk (no download).

Krizhevsky, "Learning Multiple Layers of Features from Tiny Images", 2009. The archives
unpack to cifar-10-batches-py/ (data_batch_1..5, test_batch) and cifar-100-python/ (train,
test); each file is a pickled dict whose b"data" is uint8 [N, 3072] (the red, green, blue
32x32 planes of each image in turn) and whose labels are b"labels" (CIFAR-10) or
b"fine_labels" (CIFAR-100). mean / std are the usual per-channel statistics of the training
images in [0, 1] units.
"""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import torch

from .image_data import ImageData

_SETS = {
    "cifar10": dict(
        folder="cifar-10-batches-py",
        files={"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]},
        label_key=b"labels", num_classes=10,
        mean=(0.4914, 0.4822, 0.4465), std=(0.2471, 0.2435, 0.2616),
        url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    ),
    "cifar100": dict(
        folder="cifar-100-python",
        files={"train": ["train"], "test": ["test"]},
        label_key=b"fine_labels", num_classes=100,
        mean=(0.5071, 0.4865, 0.4409), std=(0.2673, 0.2564, 0.2762),
        url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
    ),
}


def default_root() -> Path:
    """$FASTADV_DATA when set, else ./data."""
    return Path(os.environ.get("FASTADV_DATA", "data"))


def _find_folder(root: Path, info: dict, split: str) -> Path:
    needed = info["files"][split]
    # root may be the archive folder itself or the folder that contains it
    candidates = [root, root / info["folder"]]
    for folder in candidates:
        if all((folder / f).is_file() for f in needed):
            return folder
    expected = root / info["folder"] if root.name != info["folder"] else root
    missing = [str(expected / f) for f in needed if not (expected / f).is_file()]
    raise FileNotFoundError(
        f"CIFAR files for split {split!r} not found: missing {missing}. fastadv does not "
        f"download data: get {info['url']}, unpack it (tar xzf) into {root} (giving "
        f"{expected}), and pass that folder or its parent: --data-dir on the command line, "
        f"root= in Python (or set FASTADV_DATA)")


def _read_batch(path: Path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    with open(path, "rb") as handle:
        # the archives were pickled by Python 2; bytes keys keep them readable unchanged
        batch = pickle.load(handle, encoding="bytes")
    if not isinstance(batch, dict) or b"data" not in batch or label_key not in batch:
        raise ValueError(f"{path} is not a CIFAR python batch (needs keys b'data' and "
                         f"{label_key!r})")
    data = np.asarray(batch[b"data"], dtype=np.uint8)
    labels = np.asarray(batch[label_key], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or data.shape[0] != labels.shape[0]:
        raise ValueError(f"{path}: expected data [N, 3072] and N labels, got data "
                         f"{data.shape} and {labels.shape[0]} labels")
    return data.reshape(-1, 3, 32, 32), labels


def load_cifar(name: str, *, root=None, split: str = "train") -> ImageData:
    info = _SETS[name]
    root = default_root() if root is None else Path(root).expanduser()
    folder = _find_folder(root, info, split)
    parts = [_read_batch(folder / f, info["label_key"]) for f in info["files"][split]]
    x = torch.from_numpy(np.ascontiguousarray(np.concatenate([p[0] for p in parts])))
    y = torch.from_numpy(np.concatenate([p[1] for p in parts]))
    return ImageData(x, y, num_classes=info["num_classes"], mean=info["mean"], std=info["std"],
                     name=name)
