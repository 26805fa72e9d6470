"""Checkpoints of a training run, written atomically, and loading a trained model back.

A run directory holds ``config.json``, ``metrics.jsonl`` and ``checkpoints/{last,best}.pt``.
A checkpoint is a torch.save'd dict with at least "model_state", "model_spec" (keyword
arguments for fastadv.models.get including "name", or None for a user-supplied model),
"dataset", "epoch" (epochs completed) and "config"; ``last.pt`` also holds what resuming
needs (fastadv.training.run_state: optimizer, scaler, iteration, RNG states, guard and
best-so-far state, history).

Atomic write: the bytes go to a temporary file in the same directory, are flushed and
fsync'ed, then ``os.replace`` swaps the file in; a crash mid-write leaves the previous
checkpoint intact. Everything stored is plain data (tensors, numbers, strings, lists,
dicts), so checkpoints load with ``weights_only=True``.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Tuple, Union

import torch

CHECKPOINT_NAMES = ("best", "last")


def save_atomic(obj, path: Union[str, Path]) -> Path:
    """torch.save ``obj`` to ``path`` via tmp file + fsync + os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass
    return path


def checkpoint_path(path_or_run_dir: Union[str, Path], which: str = "best") -> Path:
    """The checkpoint file for a run directory (``which`` = "best" or "last") or a file."""
    if which not in CHECKPOINT_NAMES:
        raise ValueError(f"which must be one of {CHECKPOINT_NAMES}, got {which!r}")
    path = Path(path_or_run_dir)
    if path.is_dir():
        candidate = path / "checkpoints" / f"{which}.pt"
        if not candidate.is_file():
            raise FileNotFoundError(f"no checkpoint {candidate} in run directory {path}")
        return candidate
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint or run directory {str(path)!r} does not exist")
    return path


def load_checkpoint(path_or_run_dir, *, which: str = "best", map_location="cpu") -> dict:
    path = checkpoint_path(path_or_run_dir, which)
    checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(checkpoint, dict) or "model_state" not in checkpoint:
        raise ValueError(f"{path} is not a fastadv checkpoint (no 'model_state')")
    return checkpoint


def load_model(path_or_run_dir, *, which: str = "best", device="cpu") -> Tuple[torch.nn.Module, dict]:
    """Rebuild the model of a checkpoint (or of a run directory's best/last checkpoint) in
    eval mode on ``device``; returns (model, checkpoint dict)."""
    checkpoint = load_checkpoint(path_or_run_dir, which=which, map_location=device)
    spec = checkpoint.get("model_spec")
    if not spec:
        raise ValueError("this checkpoint has no model_spec (the model was not built by "
                         "fastadv.models.get); build the model yourself and call "
                         "model.load_state_dict(checkpoint['model_state'])")
    model = model_from_spec(spec)
    model.load_state_dict(checkpoint["model_state"])
    return model.to(device).eval(), checkpoint


def model_from_spec(spec: dict) -> torch.nn.Module:
    """A fresh (untrained) fastadv model from a checkpoint's ``model_spec``."""
    from fastadv import models

    spec = dict(spec)
    return models.get(spec.pop("name"), **spec)
