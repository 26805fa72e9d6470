"""The state of one training run: what a checkpoint holds, how a run resumes, and the files of
its run directory.

A run directory holds ``config.json`` (the run's settings), ``metrics.jsonl`` (one record per
finished epoch), ``checkpoints/{last,best}.pt`` (written atomically by
fastadv.checkpoint.save_atomic) and ``.lock`` (fastadv.training.run_lock). ``last.pt`` holds
everything resuming needs: weights, optimizer, GradScaler, iteration, RNG states (torch
CPU/CUDA, python, numpy), the history, the best-so-far and the overfitting guard's state; so
a killed run continues bit-exactly.

Safety: a run claims its directory before writing anything: it takes the directory's lock
(one process per run directory), and a fresh run refuses a directory that already holds a
run unless ``overwrite=True``, which first deletes that run's fastadv files. A resumed run
must match the run it continues in model, batch size and training-set size (the LR schedule,
the batch order and the validation split depend on them). config.json and metrics.jsonl are
written only once the directory is claimed, and always describe the run in last.pt: on
resume they are rewritten from the checkpoint (its config, its history: no epoch twice), and
after each epoch they are updated only once last.pt is saved.
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
from fastadv._checks import check_bool
from fastadv.training.run_lock import RunLock

RESUME_KEYS = ("optimizer_state", "iteration", "rng")
# what fastadv writes into a run directory (train, eval and plot), the files overwrite deletes
RUN_FILES = ("config.json", "metrics.jsonl", "test_results.json", "curves.png")
CHECKPOINT_FILES = tuple(f"{which}.{suffix}" for which in ckpt.CHECKPOINT_NAMES
                         for suffix in ("pt", "eval.json"))
# what a resumed run must share with the run it continues: (config key, why, how to match)
RESUME_MUST_MATCH = (
    ("model_spec", "the weights belong to the run's model", "the run's model"),
    ("batch_size", "the LR schedule and the batch order depend on it",
     "batch_size={before} (--batch-size {before})"),
    ("n_train", "the number of training images after the validation split: another data "
     "set, subset or val_size would change the data under the run",
     "the run's data set and val_size"),
    ("world_size", "the global batch, the batch order and the LR schedule depend on it",
     "world_size={before} ranks (torchrun --nnodes x --nproc_per_node)"),
)


class RunState:
    """Progress of a run (epoch, iteration, history, stop flag) and its run directory.

    The loop owns the model, optimizer, precision, best tracker and guard; RunState gathers
    their states into checkpoints (:meth:`finish_epoch`) and hands them back on resume
    (:meth:`resume`). It claims the run directory (lock, overwrite rules) in :meth:`resume`
    or :meth:`start`, whichever comes first, and releases it in :meth:`close` (train() does
    that through fastadv.training.run_lock.releases_run_locks)."""

    def __init__(self, run_dir, config: dict, *, model_spec=None, dataset=None,
                 overwrite: bool = False, writes: bool = True):
        """``writes``: False on the ranks other than 0 of a distributed run, which read the
        resumed checkpoint but neither lock, write nor warn (rank 0 does)."""
        self.writes = check_bool("writes", writes)
        self.run_path = Path(run_dir) if run_dir is not None and writes else None
        self.config, self.model_spec, self.dataset = config, model_spec, dataset
        self.overwrite = check_bool("overwrite", overwrite)
        self.epoch = self.iteration = 0
        self.history: List[dict] = []
        self.stopped = False
        self._rng = None
        self._lock: Optional[RunLock] = None
        self._resumed_config: Optional[dict] = None  # the config in the resumed last.pt
        self._config_on_disk: Optional[dict] = None  # what config.json holds

    def resume(self, resume, *, model, optimizer, precision, best, guard, device) -> None:
        """Load ``resume`` (a run directory or a last.pt) into the run's parts. The RNG state is
        restored later, by :meth:`start`, after everything else that may draw numbers."""
        source = ckpt.checkpoint_path(resume, "last")
        if self.run_path is None and self.writes:
            self.run_path = _run_dir_of(source)
        self._claim(source)
        state = ckpt.load_checkpoint(source, map_location=device)
        missing = [k for k in RESUME_KEYS if k not in state]
        if missing:
            raise ValueError(f"resume={str(resume)!r} is not a resumable checkpoint (it lacks "
                             f"{missing}); pass the run directory or its checkpoints/last.pt")
        previous = state.get("config") if isinstance(state.get("config"), dict) else {}
        self._refuse_another_run(previous, source)
        if self.writes and isinstance(previous.get("method"), dict) and \
                previous["method"] != self.config["method"]:
            warnings.warn(f"resuming a run trained with method {previous['method']} using a "
                          f"different method or hyperparameters {self.config['method']}",
                          stacklevel=4)
        ckpt.load_weights(model, state["model_state"], source=source)
        optimizer.load_state_dict(state["optimizer_state"])
        precision.load_state_dict(state.get("scaler_state"))
        best.load_state_dict(state)
        if guard is not None and state.get("guard"):
            guard.load_state_dict(state["guard"])
        self.epoch, self.iteration = int(state["epoch"]), int(state["iteration"])
        self.history = list(state.get("history", []))
        self.stopped = bool(state.get("stopped", False))
        self._rng = state["rng"]
        self._resumed_config = previous

    def start(self) -> None:
        """Claim the run directory (if :meth:`resume` has not), write config.json and
        metrics.jsonl (from the history), then restore the resumed RNG state: last, because
        everything before may have drawn random numbers."""
        resumed = self._resumed_config is not None
        finished = resumed and (self.stopped or self.epoch >= self.config["epochs"])
        if self.run_path is not None:
            self._claim(None)  # a fresh run's claim; a resumed run claimed in resume()
            (self.run_path / "checkpoints").mkdir(parents=True, exist_ok=True)
            # a resumed run keeps the config of its last.pt until the next save replaces it
            self._write_config(self._resumed_config or self.config)
            _write_text(self.run_path / "metrics.jsonl",
                        "".join(json.dumps(record) + "\n" for record in self.history))
        if self._rng is not None:
            restore_rng(self._rng)
        if not self.writes:
            return
        if self.stopped:
            warnings.warn("the resumed run had been stopped by the overfitting guard; not "
                          "training")
        elif finished:
            done = f"{self.epoch} epoch{'s' if self.epoch != 1 else ''}"
            warnings.warn(f"the resumed run has already completed {done} and "
                          f"epochs={self.config['epochs']} asks for no more, so nothing is "
                          f"trained; to extend it, resume with a larger epochs (e.g. "
                          f"epochs={self.epoch + 5}, --epochs {self.epoch + 5})", stacklevel=4)

    def finish_epoch(self, record: dict, *, improved: bool, model, optimizer, precision, best,
                     guard) -> None:
        """Append the epoch's record, write best.pt (if improved), last.pt, metrics.jsonl."""
        self.history.append(record)
        self.epoch += 1
        if self.run_path is None:
            return
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
        # after last.pt: config.json and metrics.jsonl never describe what no checkpoint holds
        self._write_config(self.config)
        with open(self.run_path / "metrics.jsonl", "a") as handle:
            handle.write(json.dumps(record) + "\n")

    def close(self) -> None:
        """Release the run directory's lock."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    @property
    def run_dir(self) -> Optional[str]:
        return str(self.run_path) if self.run_path is not None else None

    def _claim(self, source: Optional[Path]) -> None:
        """Lock the run directory and apply the overwrite rules, before anything is written.
        ``source``: the last.pt being resumed (None for a fresh run)."""
        if self._lock is not None or self.run_path is None:  # claimed, or nothing to claim
            return
        RunLock.check_free(self.run_path)
        self._refuse_or_clear(source, clear=False)  # a refusal here has written nothing
        self._lock = RunLock(self.run_path).acquire()
        try:  # again under the lock: another process may have written a run in between
            self._refuse_or_clear(source, clear=True)
        except BaseException:
            self.close()
            raise

    def _refuse_or_clear(self, source: Optional[Path], *, clear: bool) -> None:
        path = self.run_path
        found = run_files(path)
        if not found:
            return
        if source is not None and _same_dir(_run_dir_of(source), path):
            if self.overwrite:
                raise ValueError(f"overwrite=True would delete the run being resumed "
                                 f"({path}); pass resume= or overwrite=True, not both")
            return
        if not self.overwrite:
            other = (f"a run other than the one resumed from {source}" if source is not None
                     else "a run")
            raise ValueError(
                f"run_dir {str(path)!r} already holds {other} ({', '.join(found)}); nothing "
                f"was written. Continue it with resume={str(path)!r} (--resume {path}), or "
                f"pass overwrite=True (--overwrite) to delete it and start afresh")
        if clear:
            clear_run(path)

    def _write_config(self, config: dict) -> None:
        if config != self._config_on_disk:
            _write_text(self.run_path / "config.json", json.dumps(config, indent=2) + "\n")
            self._config_on_disk = config

    def _refuse_another_run(self, previous: dict, source: Path) -> None:
        """Refuse to resume a run with another model, batch size or training-set size."""
        for key, why, how in RESUME_MUST_MATCH:
            if key not in previous:  # a checkpoint from before fastadv recorded it
                continue
            before, now = previous[key], self.config.get(key)
            if key == "n_train" and (before is None or now is None):  # a loader of unknown size
                continue
            if before != now:
                raise ValueError(f"cannot resume {source}: the run was trained with "
                                 f"{key}={before!r}, this call gives {key}={now!r} ({why}); "
                                 f"resume with {how.format(before=before)}, or start a new "
                                 "run in another run directory")


def run_files(run_dir) -> List[str]:
    """The files that show ``run_dir`` holds a run: config.json, metrics.jsonl, checkpoints."""
    path = Path(run_dir)
    found = [name for name in ("config.json", "metrics.jsonl") if (path / name).is_file()]
    checkpoints = path / "checkpoints"
    if checkpoints.is_dir():
        found += sorted(f"checkpoints/{p.name}" for p in checkpoints.glob("*.pt") if p.is_file())
    return found


def clear_run(run_dir) -> None:
    """Delete fastadv's own files of the run in ``run_dir`` (nothing else the user keeps
    there), including temporary files of killed writes."""
    path = Path(run_dir)
    files = [path / name for name in RUN_FILES]
    files += [path / "checkpoints" / name for name in CHECKPOINT_FILES]
    for file in files:
        ckpt.remove_stale_temporaries(file)
        file.unlink(missing_ok=True)


def _run_dir_of(checkpoint_file: Path) -> Optional[Path]:
    """RUN for RUN/checkpoints/NAME.pt, None for a checkpoint kept elsewhere."""
    return checkpoint_file.parent.parent if checkpoint_file.parent.name == "checkpoints" else None


def _same_dir(a: Optional[Path], b: Path) -> bool:
    return a is not None and a.resolve() == b.resolve()


def _write_text(path: Path, text: str) -> None:
    ckpt.write_atomic(path, lambda handle: handle.write(text.encode()))


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
        # a run saved on more GPUs than this machine has restores the states it can use
        states = state["cuda"][:torch.cuda.device_count()]
        torch.cuda.set_rng_state_all([s.cpu() for s in states])


def _to_lists(value):
    return [_to_lists(v) for v in value] if isinstance(value, (tuple, list)) else value


def _to_tuples(value):
    return tuple(_to_tuples(v) for v in value) if isinstance(value, list) else value
