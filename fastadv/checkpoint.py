"""Checkpoints of a training run: written atomically, read back through one function.

A run directory holds ``config.json``, ``metrics.jsonl`` and ``checkpoints/{last,best}.pt``.
A checkpoint is a torch.save'd dict with at least "model_state", "model_spec" (keyword
arguments for fastadv.models.get including "name", or None for a user-supplied model),
"dataset", "epoch" (epochs completed) and "config"; ``last.pt`` also holds what resuming
needs (fastadv.training.run_state: optimizer, scaler, iteration, RNG states, guard and
best-so-far state, history).

Atomic write: the bytes go to a temporary file ``.NAME.XXXXXXXX.tmp`` in the same directory,
are flushed and fsync'ed, then ``os.replace`` swaps the file in; a crash mid-write leaves the
previous file intact, and the temporary file a killed write leaves behind is removed by the
next save of that file. Files get the permissions of the umask, like any file a program writes.

Reading: every load goes through :func:`load_checkpoint`. Everything stored is plain data
(tensors, numbers, strings, lists, dicts), so checkpoints load with ``weights_only=True`` and
never run code from the file. A file that cannot be read raises one ValueError that names the
file, says what is wrong with it (empty, truncated, damaged, not a fastadv checkpoint) and
which other checkpoint of the run is intact; :func:`load_weights` names the first tensor of
another model's weights that does not fit.
"""
from __future__ import annotations

import glob
import os
import pickle
import secrets
import zipfile
from pathlib import Path
from typing import Callable, Optional, Tuple, Union

import torch

from fastadv._checks import check_choice

CHECKPOINT_NAMES = ("best", "last")
ZIP_MAGIC = b"PK\x03\x04"  # torch.save's format is a zip archive


class _Unreadable(Exception):
    """A checkpoint file that is damaged or foreign; its message says how."""


def write_atomic(path: Union[str, Path], write: Callable) -> Path:
    """Write a file by calling ``write(binary_handle)`` on a temporary file in its directory,
    fsync it, and rename it over ``path``: readers see the old file or the new one, never a
    part. Temporary files of ``path`` left by killed writes are removed first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    tmp, fd = _create_temporary(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
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


def save_atomic(obj, path: Union[str, Path]) -> Path:
    """torch.save ``obj`` to ``path`` atomically (:func:`write_atomic`)."""
    return write_atomic(path, lambda handle: torch.save(obj, handle))


def temporaries(path: Union[str, Path]) -> list:
    """The temporary files :func:`write_atomic` creates for ``path`` (``.NAME.*.tmp``)."""
    path = Path(path)
    return sorted(path.parent.glob(f".{glob.escape(path.name)}.*.tmp"))


def remove_stale_temporaries(path: Union[str, Path]) -> None:
    """Delete the temporary files of ``path``. Any that exist come from a killed write: a run
    directory has one writer at a time (fastadv.training.run_lock)."""
    for stale in temporaries(path):
        stale.unlink(missing_ok=True)


def _create_temporary(path: Path) -> Tuple[Path, int]:
    # os.open with mode 0o666 lets the umask decide the permissions; tempfile.mkstemp would
    # create every checkpoint 0600 whatever the umask says
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            return tmp, os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue


def checkpoint_path(path_or_run_dir: Union[str, Path], which: str = "best") -> Path:
    """The checkpoint file for a run directory (``which`` = "best" or "last") or a file."""
    check_choice("which", which, CHECKPOINT_NAMES)
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
    """The checkpoint dict of a file or of a run directory's best/last checkpoint, loaded as
    plain data (``weights_only=True``). A damaged or foreign file raises ValueError naming the
    file, what is wrong with it and what else of the run is intact; a missing one
    FileNotFoundError."""
    path = checkpoint_path(path_or_run_dir, which)
    try:
        return _read(path, map_location)
    except _Unreadable as problem:
        # `from None`: PyTorch's own message would recommend weights_only=False, which runs
        # arbitrary code from the file
        raise ValueError(f"cannot load checkpoint {path}: {problem}{_intact_others(path)}") \
            from None


def _read(path: Path, map_location) -> dict:
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:
        problem = _what_is_wrong(path, error)
        if problem is None:  # the file is sound: the failure is not the file's (e.g. a device)
            raise
        raise _Unreadable(problem) from None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("model_state"), dict):
        raise _Unreadable("it is not a fastadv checkpoint (a torch file without the "
                          "'model_state' dict every fastadv checkpoint holds)")
    return checkpoint


def _what_is_wrong(path: Path, error: Exception) -> Optional[str]:
    """Why torch.load failed on ``path``, from the file itself; None when the file is sound."""
    size = path.stat().st_size
    if size == 0:
        return "the file is empty (0 bytes)"
    with open(path, "rb") as handle:
        head = handle.read(8)
    if not head.startswith(ZIP_MAGIC):
        return (f"it is not a fastadv checkpoint (not a zip-format torch.save file: it begins "
                f"{head!r})")
    if not zipfile.is_zipfile(path):  # the archive's directory sits at its end
        return f"the file is truncated ({size} bytes: the end of its archive is missing)"
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        return f"the file is damaged ({size} bytes; its archive cannot be read)"
    if damaged is not None:
        return f"the file is damaged (its part {damaged!r} fails its checksum)"
    if not any(name.endswith("data.pkl") for name in names):
        return "it is not a fastadv checkpoint (a zip archive, but not a torch.save file)"
    if isinstance(error, pickle.UnpicklingError):
        return ("it is not a fastadv checkpoint: it holds objects other than plain data "
                "(tensors, numbers, strings, lists, dicts), and fastadv never runs code "
                "from a checkpoint file")
    return None


def _intact_others(path: Path) -> str:
    """'; checkpoints/best.pt is intact (epoch 3)' for the run's other checkpoints."""
    if path.parent.name != "checkpoints":
        return ""
    notes = []
    for which in CHECKPOINT_NAMES:
        other = path.parent / f"{which}.pt"
        if other.name == path.name or not other.is_file():
            continue
        label = f"checkpoints/{other.name}"
        try:
            notes.append(f"{label} is intact (epoch {_read(other, 'cpu').get('epoch')})")
        except _Unreadable:
            notes.append(f"{label} is damaged too")
    return "; " + ", ".join(notes) if notes else "; the run has no other checkpoint"


def load_weights(model: torch.nn.Module, state: dict, *, source) -> None:
    """``model.load_state_dict(state)`` once every key and shape fits; otherwise a ValueError
    naming ``source``, the first tensor that differs and both shapes (PyTorch lists them all)."""
    expected = model.state_dict()
    for key, tensor in expected.items():
        if key not in state:
            raise ValueError(f"{source} holds another model's weights: it has no {key!r} "
                             f"(shape {tuple(tensor.shape)} in this model)")
        theirs = tuple(getattr(state[key], "shape", ()))
        if theirs != tuple(tensor.shape):
            raise ValueError(f"{source} holds another model's weights: {key!r} has shape "
                             f"{theirs} there but {tuple(tensor.shape)} in this model")
    for key in state:
        if key not in expected:
            raise ValueError(f"{source} holds another model's weights: it has {key!r}, which "
                             "this model lacks")
    model.load_state_dict(state)


def load_model(path_or_run_dir, *, which: str = "best",
               device="cpu") -> Tuple[torch.nn.Module, dict]:
    """Rebuild the model of a checkpoint (or of a run directory's best/last checkpoint) in
    eval mode on ``device``; returns (model, checkpoint dict)."""
    path = checkpoint_path(path_or_run_dir, which)
    checkpoint = load_checkpoint(path, map_location=device)
    spec = checkpoint.get("model_spec")
    if not spec:
        raise ValueError(f"{path} has no model_spec (the model was not built by "
                         "fastadv.models.get); build the model yourself and call "
                         "fastadv.checkpoint.load_weights(model, checkpoint['model_state'], "
                         "source=path)")
    model = model_from_spec(spec)
    load_weights(model, checkpoint["model_state"], source=path)
    return model.to(device).eval(), checkpoint


def model_from_spec(spec: dict) -> torch.nn.Module:
    """A fresh (untrained) fastadv model from a checkpoint's ``model_spec``."""
    from fastadv import models

    spec = dict(spec)
    return models.get(spec.pop("name"), **spec)
