"""The state of one training run: what a checkpoint holds, how a run resumes, and the files of
its run directory.

A run directory holds ``config.json`` (the run's settings), ``metrics.jsonl`` (one record per
finished epoch) and ``checkpoints/{last,best}.pt`` (written atomically by
fastadv.checkpoint.save_atomic). ``last.pt`` holds everything resuming needs: weights,
optimizer, GradScaler, iteration, RNG states (torch CPU/CUDA, python, numpy), the history,
the best-so-far and the overfitting guard's state; so a killed run continues bit-exactly.
metrics.jsonl is rewritten from the checkpoint's history on resume, so it never holds an
epoch twice.
"""
from __future__ import annotations

import json
import random
import warnings
from pathlib import Path
from typing import List, Optional

import numpy as np
import torch

from fastadv import checkpoint as ckpt

RESUME_KEYS = ("optimizer_state", "iteration", "rng")


class RunState:
    """Progress of a run (epoch, iteration, history, stop flag) and its run directory.

    The loop owns the model, optimizer, precision, best tracker and guard; RunState gathers
    their states into checkpoints (:meth:`save`) and hands them back on resume
    (:meth:`resume`)."""

    def __init__(self, run_dir, config: dict, *, model_spec=None, dataset=None):
        self.run_path = Path(run_dir) if run_dir is not None else None
        self.config, self.model_spec, self.dataset = config, model_spec, dataset
        self.epoch = self.iteration = 0
        self.history: List[dict] = []
        self.stopped = False
        self._rng = None

    def resume(self, resume, *, model, optimizer, precision, best, guard, device) -> None:
        """Load ``resume`` (a run directory or a last.pt) into the run's parts. The RNG state is
        restored later, by :meth:`start`, after everything else that may draw numbers."""
        state = ckpt.load_checkpoint(resume, which="last", map_location=device)
        missing = [k for k in RESUME_KEYS if k not in state]
        if missing:
            raise ValueError(f"resume={str(resume)!r} is not a resumable checkpoint (it lacks "
                             f"{missing}); pass the run directory or its checkpoints/last.pt")
        previous = (state.get("config") or {}).get("method")
        if isinstance(previous, dict) and previous != self.config["method"]:
            warnings.warn(f"resuming a run trained with method {previous} using a different "
                          f"method or hyperparameters {self.config['method']}", stacklevel=3)
        model.load_state_dict(state["model_state"])
        optimizer.load_state_dict(state["optimizer_state"])
        precision.load_state_dict(state.get("scaler_state"))
        best.load_state_dict(state)
        if guard is not None and state.get("guard"):
            guard.load_state_dict(state["guard"])
        self.epoch, self.iteration = int(state["epoch"]), int(state["iteration"])
        self.history = list(state.get("history", []))
        self.stopped = bool(state.get("stopped", False))
        self._rng = state["rng"]
        if self.run_path is None and Path(resume).is_dir():
            self.run_path = Path(resume)

    def start(self) -> None:
        """Write config.json and metrics.jsonl (from the history), then restore the resumed
        RNG state: last, because everything before may have drawn random numbers."""
        if self.run_path is not None:
            (self.run_path / "checkpoints").mkdir(parents=True, exist_ok=True)
            (self.run_path / "config.json").write_text(json.dumps(self.config, indent=2) + "\n")
            with open(self.run_path / "metrics.jsonl", "w") as handle:
                for record in self.history:
                    handle.write(json.dumps(record) + "\n")
        if self._rng is not None:
            restore_rng(self._rng)
        if self.stopped:
            warnings.warn("the resumed run had been stopped by the overfitting guard; not "
                          "training")

    def finish_epoch(self, record: dict, *, improved: bool, model, optimizer, precision, best,
                     guard) -> None:
        """Append the epoch's record and write metrics.jsonl, best.pt (if improved), last.pt."""
        self.history.append(record)
        self.epoch += 1
        if self.run_path is None:
            return
        with open(self.run_path / "metrics.jsonl", "a") as handle:
            handle.write(json.dumps(record) + "\n")
        snapshot = {"model_state": model.state_dict(), "model_spec": self.model_spec,
                    "dataset": self.dataset, "epoch": self.epoch, "config": self.config}
        if improved:
            ckpt.save_atomic({**snapshot, **best.state_dict()},
                             self.run_path / "checkpoints" / "best.pt")
        last = {**snapshot, **best.state_dict(), "optimizer_state": optimizer.state_dict(),
                "scaler_state": precision.state_dict(), "iteration": self.iteration,
                "rng": capture_rng(), "history": self.history, "stopped": self.stopped,
                "guard": guard.state_dict() if guard is not None else None}
        ckpt.save_atomic(last, self.run_path / "checkpoints" / "last.pt")

    @property
    def run_dir(self) -> Optional[str]:
        return str(self.run_path) if self.run_path is not None else None


def capture_rng() -> dict:
    """All RNG states a training run draws from, as plain data (loads with weights_only)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": _to_lists(random.getstate()),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict) -> None:
    torch.set_rng_state(state["torch"].cpu())
    random.setstate(_to_tuples(state["python"]))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["cached_gaussian"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def _to_lists(value):
    return [_to_lists(v) for v in value] if isinstance(value, (tuple, list)) else value


def _to_tuples(value):
    return tuple(_to_tuples(v) for v in value) if isinstance(value, list) else value
