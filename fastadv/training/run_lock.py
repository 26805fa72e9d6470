"""The lock of a run directory: one process at a time trains in it.

An OS advisory lock (``fcntl.flock``) on ``RUN_DIR/.lock``, taken before the run writes
anything and held for the run's whole life. The OS drops it when the process ends, however
it ends (kill -9 included), so a killed run can be resumed at once: there is no stale lock to
delete. While held, the file holds the holder's PID, so a refused process can name it.

The lock file itself is never deleted: if it were, a process that had opened the old file
and a process that creates a new one could each hold "the" lock.

:func:`releases_run_locks` decorates train(): the locks its run takes are released when the
call returns or raises. Where ``fcntl`` does not exist (Windows), runs are not locked.
"""
from __future__ import annotations

import contextvars
import functools
import os
import time
from pathlib import Path
from typing import List, Optional

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None

LOCK_NAME = ".lock"
PID_WAIT_SECONDS = 1.0  # how long to wait for a holder that has the lock but no PID written yet

# the locks taken inside the current releases_run_locks call (None outside of one)
_held: contextvars.ContextVar[Optional[List["RunLock"]]] = contextvars.ContextVar(
    "fastadv_run_locks", default=None)


class RunLock:
    """The lock of one run directory. ``acquire`` raises ValueError naming the holder's PID
    when another process holds it; usable as a context manager."""

    def __init__(self, run_dir):
        self.run_path = Path(run_dir)
        self.path = self.run_path / LOCK_NAME
        self._fd: Optional[int] = None

    @staticmethod
    def check_free(run_dir) -> None:
        """Raise ValueError if another process holds ``run_dir``'s lock; creates and writes
        nothing (a refused run must leave the directory as it was)."""
        path = Path(run_dir) / LOCK_NAME
        if fcntl is None:
            return
        try:
            fd = os.open(path, os.O_RDONLY)
        except (FileNotFoundError, NotADirectoryError):
            return
        try:
            _lock_or_refuse(fd, path)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def acquire(self) -> "RunLock":
        if self._fd is not None:
            return self
        self.run_path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            if fcntl is not None:
                _lock_or_refuse(fd, self.path)
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        held = _held.get()
        if held is not None:
            held.append(self)
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)  # still locked here, so no later holder's PID is erased
        except OSError:
            pass
        finally:
            os.close(fd)  # closing the file drops the lock

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def releases_run_locks(function):
    """Decorator: every RunLock acquired during a call of ``function`` is released when the
    call returns or raises (the try/finally around a whole training run)."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        token = _held.set([])
        try:
            return function(*args, **kwargs)
        finally:
            for lock in _held.get():
                lock.release()
            _held.reset(token)

    return wrapper


def _lock_or_refuse(fd: int, path: Path) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise ValueError(
            f"run directory {str(path.parent)!r} is in use by another process "
            f"({_holder(path)}, lock file {path}): two runs in one directory would mix their "
            "metrics and checkpoints; wait for it to end (or stop it), or use another "
            "run directory") from None


def _holder(path: Path) -> str:
    """'PID 1234' of the lock's holder (read from the lock file)."""
    deadline = time.monotonic() + PID_WAIT_SECONDS
    while True:
        try:
            text = path.read_text().strip()
        except OSError:
            text = ""
        if text.isdigit():
            return f"PID {text}"
        if time.monotonic() > deadline:
            return "PID unknown"
        time.sleep(0.05)  # it holds the lock but has not written its PID yet
