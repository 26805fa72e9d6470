"""Turn what a user passes to train() into batches on the device, a held-out validation set
and the overfitting guard's fixed batch.

Accepted training data:
- a fastadv.data.ImageData: split into train / validation (``val_size`` held out, seeded),
  batched by a fastadv.data.DeviceLoader (on-device augmentation);
- (x, y) tensors (x uint8 or float in [0, 1], N C H W): split the same way, batched on the
  device with a per-epoch seeded shuffle, no augmentation;
- a fastadv.data.DeviceLoader or any iterable of batches (a torch DataLoader): used as
  given, no split (pass ``val_data`` to validate). A batch is an (x, y) tuple/list or a dict
  with the images under "x", "image" or "images" and the labels under "y", "label" or
  "labels".

Images must be 4-D (N, C, H, W). Floating images of another precision (float64 from numpy,
float16) are cast to float32, the dtype the models' parameters have (mixed precision, when
on, is applied by autocast inside the step, not to the data).

Pixel values (NaN, outside [0, 1]) are checked once where data enters: uint8 sources need no
check, tensors are checked once up front (ImageData and DeviceLoader check their own), and
the floating batches of an arbitrary iterable are checked as each batch arrives, on the host
before the transfer, together with its labels (:func:`batch_to_device`); the methods' ops
never read values.
"""
from __future__ import annotations

import dataclasses
import numbers
from typing import Optional, Tuple

import torch

from fastadv._checks import (check_float, check_images, check_int, check_label_tensor,
                             check_labels, check_pixels)
from fastadv.data import DeviceLoader, ImageData, as_float_images


def _labels(y, n: int, name: str) -> torch.Tensor:
    check_label_tensor(name, y)
    if y.shape[0] != n:
        raise ValueError(f"{name} has {y.shape[0]} labels but there are {n} images")
    return y.long()


def _training_images(x, name: str) -> torch.Tensor:
    """Images as training uses them: 4-D, float32 in [0, 1] (uint8 scaled by 1/255)."""
    return check_images(name, as_float_images(x, name)).float()


def holdout_count(val_size, n: int) -> int:
    """How many of ``n`` splittable examples ``val_size`` holds out for validation: a float
    is a fraction in [0, 1), an int a count; None holds out none. Also what `fastadv train`
    reports before training starts."""
    if val_size is None:
        return 0
    if isinstance(val_size, bool) or not isinstance(val_size, numbers.Real):
        raise TypeError(f"val_size must be a fraction in (0, 1) or an int count, got "
                        f"{type(val_size).__name__} ({val_size!r})")
    if isinstance(val_size, numbers.Integral):
        count = check_int("val_size", val_size, minimum=0)
    else:
        fraction = check_float("val_size", val_size, minimum=0)
        if fraction >= 1:  # 2.0 is not read as 2 images: a fraction was probably meant
            raise ValueError(f"val_size={val_size!r} is a float >= 1: a fraction must lie in "
                             f"(0, 1) and a count must be an int (val_size={int(fraction)})")
        count = int(round(fraction * n))
    if count >= n:
        raise ValueError(f"val_size={val_size!r} holds out {count} of the {n} training examples; "
                         f"leave some to train on")
    return count


class TensorBatches:
    """Shuffled mini-batches of device-resident tensors; the shuffle of epoch e depends only on
    (seed, e), so a resumed run sees the same batches. Drops the last partial batch."""

    def __init__(self, x, y, batch_size: int, *, seed: int = 0, drop_last: bool = True):
        self.x, self.y, self.batch_size, self.seed = x, y, batch_size, seed
        self.drop_last = drop_last and x.shape[0] >= batch_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        n = self.x.shape[0]
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.x.shape[0], generator=generator).to(self.x.device)
        for b in range(len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            yield self.x[idx], self.y[idx]


@dataclasses.dataclass
class PreparedData:
    loader: object
    val: Optional[Tuple[torch.Tensor, torch.Tensor]]
    guard_batch: Tuple[torch.Tensor, torch.Tensor]
    num_classes: Optional[int]
    dataset: Optional[str]
    n_train: Optional[int]
    # batches come from an arbitrary iterable: check pixels and labels of each as it arrives
    check_batches: bool = False

    @property
    def n_val(self) -> int:
        return self.val[0].shape[0] if self.val is not None else 0

    def label_sets(self):
        """(name, labels) of every label tensor known before training, to check against the
        model's number of classes."""
        return [("training labels", getattr(self.loader, "y", None)),
                ("training labels", getattr(self.loader, "labels", None)),
                ("validation labels", self.val[1] if self.val else None),
                ("labels of the first batch", self.guard_batch[1])]


def _split_tensors(x, y, count, seed):
    order = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed))
    hold, rest = order[:count].to(x.device), order[count:].to(x.device)
    return (x[rest], y[rest]), (x[hold], y[hold])


def _to_pair(data, device, name):
    if isinstance(data, ImageData):  # validated by ImageData itself: uint8 x, int64 labels
        return as_float_images(data.x).to(device), data.y.to(device)
    if isinstance(data, (tuple, list)) and len(data) == 2:
        x = _training_images(data[0], f"{name}[0]")
        check_pixels(f"{name}[0]", x)
        return x.to(device), _labels(data[1], x.shape[0], f"{name}[1]").to(device)
    raise TypeError(f"{name} must be an ImageData or an (x, y) pair of tensors, got "
                    f"{type(data).__name__}")


def prepare(train_data, *, batch_size: int, val_size, val_data, device, seed: int,
            guard_size: int) -> PreparedData:
    """batch_size is checked by the caller (train)."""
    num_classes = dataset = n_train = None
    val = None
    check_batches = False
    if isinstance(train_data, ImageData):
        n = len(train_data)
        if n == 0:
            raise ValueError("train_data is empty")
        num_classes, dataset = train_data.num_classes, train_data.name
        count = holdout_count(val_size, n)
        rest = train_data
        if count and val_data is None:
            rest, holdout = train_data.split(count, seed=seed)
            val = _to_pair(holdout, device, "validation split")
        loader = DeviceLoader(rest, batch_size, train=True, device=device, seed=seed)
        guard_batch = (as_float_images(rest.x[:guard_size]).to(device), rest.y[:guard_size].to(device))
        n_train = len(rest)
    elif isinstance(train_data, (tuple, list)) and len(train_data) == 2 and \
            isinstance(train_data[0], torch.Tensor):
        x, y = _to_pair(train_data, device, "train_data")
        if x.shape[0] == 0:
            raise ValueError("train_data is empty (0 examples)")
        count = holdout_count(val_size, x.shape[0])
        if count and val_data is None:
            (x, y), val = _split_tensors(x, y, count, seed)
        loader = TensorBatches(x, y, batch_size, seed=seed)
        guard_batch = (x[:guard_size], y[:guard_size])
        n_train = x.shape[0]
    elif hasattr(train_data, "__iter__"):
        loader = train_data
        if isinstance(train_data, DeviceLoader):
            x, y = train_data.images[:guard_size], train_data.labels[:guard_size]
        else:
            try:
                first = next(iter(train_data))
            except StopIteration:
                raise ValueError("train_data yields no batches (empty data)") from None
            x, y = _batch_pair(first)
            x, y = x[:guard_size], y[:guard_size]
            check_batches = True
        if x.shape[0] == 0:
            raise ValueError("train_data is empty")
        guard_batch = (_training_images(x, "the first batch of train_data").to(device),
                       _labels(y, x.shape[0], "labels of the first batch").to(device))
        dataset = getattr(train_data, "name", None)
        num_classes = getattr(train_data, "num_classes", None)
        n_train = getattr(train_data, "dataset_size", None)
    else:
        raise TypeError("train_data must be a fastadv.data.ImageData, a DeviceLoader, a torch "
                        f"DataLoader or an (x, y) pair of tensors, got {type(train_data).__name__}")
    if val_data is not None:
        val = _to_pair(val_data, device, "val_data")
    if val is not None and val[0].shape[0] == 0:
        val = None
    return PreparedData(loader, val, guard_batch, num_classes, dataset, n_train, check_batches)


def _batch_pair(batch):
    """(x, y) of a batch: a tuple/list whose first two entries are images and labels, or a
    dict with keys "x"/"image"/"images" and "y"/"label"/"labels"."""
    if isinstance(batch, dict):
        x = next((batch[k] for k in ("x", "image", "images") if k in batch), None)
        y = next((batch[k] for k in ("y", "label", "labels") if k in batch), None)
        if x is None or y is None:
            raise TypeError(f"a dict batch must hold images under 'x', 'image' or 'images' and "
                            f"labels under 'y', 'label' or 'labels'; got keys {sorted(batch)}")
        return x, y
    if isinstance(batch, (tuple, list)) and len(batch) >= 2:
        return batch[0], batch[1]
    raise TypeError(f"a batch must be an (x, y) pair or a dict with 'x' and 'y', got "
                    f"{type(batch).__name__}")


def batch_to_device(batch, device, *, index: int = 0, num_classes: Optional[int] = None,
                    check: bool = False):
    """(x float in [0, 1], y int64) of ``batch`` on ``device``. With ``check`` (batches of an
    arbitrary iterable) the pixels and labels are checked first, naming the batch."""
    x, y = _batch_pair(batch)
    name = f"batch {index} of train_data"
    x = as_float_images(x, f"images of {name}")
    if check:
        check_images(f"images of {name}", x)
        check_label_tensor(f"labels of {name}", y)
        check_pixels(f"images of {name}", x)
        check_labels(f"labels of {name}", y, num_classes)
    # float64 / float16 batches become float32 in the same copy that moves them
    return (x.to(device, torch.float32, non_blocking=True),
            y.to(device, non_blocking=True).long())
