"""What train() settles before the first step: the method, the device (one that exists on
this machine), the seed, and whether the model's output fits the data (logits, not
probabilities)."""
from __future__ import annotations

import random

import numpy as np
import torch
from torch import nn

from fastadv import methods as methods_lib
from fastadv._checks import check_device, check_int, check_labels
from fastadv.models.mode import bn_mode


def resolve_method(method, options):
    """A method instance from a registered name plus ``options``, or the instance given."""
    if isinstance(method, str):
        return methods_lib.get(method, **(options or {}))
    if options:
        raise ValueError("method_options applies only when method is given by name; pass the "
                         "hyperparameters to the method instance instead")
    if not callable(getattr(method, "loss", None)):
        raise TypeError(f"method must be a name (one of {methods_lib.available()}) or a method "
                        f"instance with a loss(model, x, y), got {type(method).__name__}")
    return method


def resolve_device(device, model: nn.Module) -> torch.device:
    """``device`` (checked to exist: :func:`fastadv._checks.check_device`) or, when None, the
    device of the model's first parameter (else CPU)."""
    if device is None:
        first = next(model.parameters(), None)
        return first.device if first is not None else torch.device("cpu")
    return check_device("device", device)


def seed_everything(seed) -> None:
    """Seed torch, python and numpy: the run's shuffles, random starts and noise."""
    check_int("seed", seed)
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)


def check_model_output(model: nn.Module, x: torch.Tensor, num_classes, label_sets) -> int:
    """Run the model on two images: it must return [batch, classes] logits matching the
    data's classes and labels (a warning when they look like probabilities, as evaluate()
    gives: a final softmax flattens every method's loss). Returns the number of classes."""
    with torch.no_grad(), bn_mode(model, "eval"):
        out = model(x[:2])
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != min(2, x.shape[0]):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"the model must return logits of shape [batch, classes]; on a batch "
                         f"of {min(2, x.shape[0])} it returned {shape}")
    # imported here: fastadv.evaluation imports from fastadv.training (distributed runs)
    from fastadv.evaluation.sanity import warn_if_probabilities

    warn_if_probabilities(out)
    classes = out.shape[1]
    if num_classes is not None and classes != num_classes:
        raise ValueError(f"the model outputs {classes} logits but the data has "
                         f"num_classes={num_classes}")
    for name, y in label_sets:
        if y is not None:
            check_labels(name, y, classes)
    return classes
