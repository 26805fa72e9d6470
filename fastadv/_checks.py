"""The one home of argument checks in fastadv.

Rule everywhere: a value of the wrong type raises TypeError, a value of the right type that is
out of range raises ValueError, and the message names the argument and the offending value.
Public functions validate once at their entry; what they call may then trust its inputs.

Metadata checks (type, dtype, shape, device) never read a tensor's values, so they cost no
host synchronisation on a GPU. The value checks (:func:`check_pixels`, :func:`check_labels`)
read data and therefore run once where data enters fastadv (train/evaluate inputs, loaders,
data sets), never inside the per-step ops.
"""
from __future__ import annotations

import math
import numbers
from typing import Optional

import torch

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
RANGE_SLACK = 1e-6  # pixels may exceed [0, 1] by float rounding of a /255 conversion


def describe(value) -> str:
    """'Tensor(shape=(2, 3), dtype=torch.float32)' for tensors, repr(value) otherwise."""
    if isinstance(value, torch.Tensor):
        return f"Tensor(shape={tuple(value.shape)}, dtype={value.dtype})"
    return f"{type(value).__name__} ({value!r})"


def check_float(name: str, value, *, minimum=None, maximum=None,
                strictly_positive=False) -> float:
    """``value`` as a finite float, within [minimum, maximum] and > 0 when asked."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} ({value!r})")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if strictly_positive and value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


def check_optional_float(name: str, value, **limits) -> Optional[float]:
    """None, or :func:`check_float` of ``value``."""
    return None if value is None else check_float(name, value, **limits)


def check_int(name: str, value, *, minimum: Optional[int] = None,
              maximum: Optional[int] = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} ({value!r})")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value!r}")
    return value


def check_choice(name: str, value, choices) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__} ({value!r})")
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return value


def check_bool(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__} ({value!r})")
    return value


def check_optional_bool(name: str, value) -> Optional[bool]:
    if value is not None and not isinstance(value, bool):
        raise TypeError(f"{name} must be None or a bool, got {type(value).__name__} "
                        f"({value!r})")
    return value


def check_eps(value, name: str = "eps") -> float:
    """An L-inf radius in pixel units of [0, 1] images."""
    value = check_float(name, value)
    if value < 0:
        raise ValueError(f"{name} must be >= 0 (pixel units of [0, 1] images, e.g. 8/255), "
                         f"got {value!r}")
    if value > 1:
        raise ValueError(f"{name} must be <= 1 (pixel units of [0, 1] images): write 8/255, "
                         f"not 8; got {value!r}")
    return value


def check_model(name: str, model):
    if not callable(model):
        raise TypeError(f"{name} must be a callable model returning logits, got "
                        f"{type(model).__name__}")
    return model


def check_module(name: str, model) -> torch.nn.Module:
    """A torch.nn.Module (what train() needs: a callable is not enough to be trained)."""
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module, got {type(model).__name__}")
    return model


def check_tensor(name: str, t) -> torch.Tensor:
    """A floating-point tensor (metadata only)."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be a floating tensor (float16, bfloat16, float32 or "
                        f"float64), got dtype {t.dtype}")
    return t


def check_like(name: str, t, ref_name: str, ref: torch.Tensor) -> torch.Tensor:
    """A floating tensor with ``ref``'s shape, device and dtype (metadata only)."""
    check_tensor(name, t)
    if t.shape != ref.shape:
        raise ValueError(f"{name} has shape {tuple(t.shape)} but {ref_name} has shape "
                         f"{tuple(ref.shape)}; they must match")
    if t.device != ref.device:
        raise ValueError(f"{name} is on {t.device} but {ref_name} is on {ref.device}")
    if t.dtype != ref.dtype:
        raise TypeError(f"{name} has dtype {t.dtype} but {ref_name} has dtype {ref.dtype}")
    return t


def check_label_tensor(name: str, y) -> torch.Tensor:
    """A 1-D integer tensor of class labels (metadata only)."""
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of class labels, got {type(y).__name__}")
    if y.dtype.is_floating_point or y.dtype == torch.bool or y.is_complex():
        raise TypeError(f"{name} must be an integer tensor of class labels, got dtype {y.dtype}")
    if y.dim() != 1:
        raise ValueError(f"{name} must be a 1-D tensor of class labels, got shape "
                         f"{tuple(y.shape)}")
    return y


def check_batch(x, y, *, x_name: str = "x", y_name: str = "y") -> None:
    """x: a floating [B, ...] tensor; y: integer labels [B] on x's device (metadata only)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{x_name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{x_name} must be a floating-point tensor of pixels in [0, 1], got "
                        f"dtype {x.dtype} (convert uint8 images with x.float() / 255)")
    if x.dim() < 2:
        raise ValueError(f"{x_name} must have a batch dimension and at least one feature "
                         f"dimension, got shape {tuple(x.shape)}")
    check_label_tensor(y_name, y)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"{x_name} and {y_name} have mismatched lengths: {x.shape[0]} images "
                         f"but {y.shape[0]} labels")
    if x.device != y.device:
        raise ValueError(f"{x_name} is on {x.device} but {y_name} is on {y.device}")


def check_pixels(name: str, x: torch.Tensor) -> None:
    """x is free of NaN and inside [0, 1] up to RANGE_SLACK. Reads the tensor (one host sync
    on a GPU): call it where data enters, once per data set or batch, never per op call."""
    if x.numel() == 0 or x.device.type == "meta" or x.dtype == torch.uint8:
        return
    lo, hi = torch.aminmax(x.detach())
    lo, hi = float(lo), float(hi)
    if math.isnan(lo) or math.isnan(hi):
        raise ValueError(f"{name} contains NaN")
    if lo < -RANGE_SLACK or hi > 1.0 + RANGE_SLACK:
        raise ValueError(f"{name} must lie in [0, 1] (pixel units), got values in "
                         f"[{lo:.6g}, {hi:.6g}]; normalize inside the model, not the data")


def check_labels(name: str, y: torch.Tensor, num_classes: Optional[int] = None) -> None:
    """Labels lie in [0, num_classes) (or are >= 0 when num_classes is None). Reads y."""
    if y.numel() == 0:
        return
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or (num_classes is not None and hi >= num_classes):
        bound = f"[0, {num_classes})" if num_classes is not None else ">= 0"
        raise ValueError(f"{name} must lie in {bound}, got labels in [{lo}, {hi}]")


def check_channel_values(name: str, values, channels: Optional[int] = None) -> tuple:
    """Per-channel statistics (a number, a sequence or a tensor) as a tuple of finite floats,
    with ``channels`` entries when given."""
    if isinstance(values, torch.Tensor):
        values = values.detach().flatten().tolist()
    elif isinstance(values, numbers.Real):
        values = [values]
    try:
        result = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a sequence of numbers, got {values!r}") from None
    if not result:
        raise ValueError(f"{name} must have one value per channel, got an empty sequence")
    if not all(math.isfinite(v) for v in result):
        raise ValueError(f"{name} must be finite, got {result}")
    if channels is not None and len(result) != channels:
        raise ValueError(f"{name} must have one value per channel ({channels}), got {result}")
    return result


def check_images(name: str, x: torch.Tensor) -> torch.Tensor:
    """A batch of images: a 4-D tensor (N, C, H, W) (metadata only)."""
    if x.dim() != 4:
        hint = ("; add the channel dimension (x.unsqueeze(1) for (N, H, W) grey images)"
                if x.dim() == 3 else "")
        raise ValueError(f"{name} must be a batch of images of shape (N, C, H, W), got "
                         f"shape {tuple(x.shape)}{hint}")
    return x


# device types whose torch module reports how many devices this machine has
_COUNTED_DEVICE_TYPES = ("cuda", "mps", "xpu")


def available_devices() -> list:
    """The devices this machine has, as torch spells them: 'cpu', 'cuda:0', ..."""
    found = ["cpu"]
    for kind in _COUNTED_DEVICE_TYPES:
        module = getattr(torch, kind, None)
        if module is not None and module.is_available():
            found += [f"{kind}:{i}" for i in range(module.device_count())]
    return found


def check_device(name: str, device) -> torch.device:
    """``device`` (a str, torch.device or, as torch reads it, an int CUDA index) as a
    torch.device that exists on this machine; a missing GPU is a ValueError naming what is
    available, not an AssertionError deep in torch at the first transfer."""
    if isinstance(device, bool) or not isinstance(device, (str, torch.device, int)):
        raise TypeError(f"{name} must be a str or torch.device, got {type(device).__name__} "
                        f"({device!r})")
    try:
        parsed = torch.device(device)
    except RuntimeError:  # a str that names no device type
        raise ValueError(f"{name} must name a torch device such as 'cpu' or 'cuda:0', got "
                         f"{device!r}") from None
    module = getattr(torch, parsed.type, None)
    if parsed.type in _COUNTED_DEVICE_TYPES and module is not None:
        count = module.device_count() if module.is_available() else 0
        if (parsed.index or 0) >= count:
            have = (f"no {parsed.type} device" if count == 0 else
                    f"{count} {parsed.type} device{'s' if count > 1 else ''}")
            if parsed.type == "cuda" and count == 0 and torch.version.cuda is None:
                have += " (this torch build has no CUDA support)"
            raise ValueError(f"{name}={str(parsed)!r} does not exist: this machine has {have}; "
                             f"available: {', '.join(available_devices())}")
    return parsed
