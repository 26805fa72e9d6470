"""fastadv.training: train(), the one loop shared by every method, and what only it uses.

- loop.py        train() and TrainResult: reads top to bottom, ~100 lines
- setup.py       method, device, seed, model-output checks before the first step
- data.py        what users pass -> device batches, validation split, guard batch
- precision.py   AMP (autocast + GradScaler), channels_last, backward + clip + step
- optimizer.py   SGD defaults or the caller's optimizer
- schedules.py   per-iteration LR schedules (Schedule, LRSchedule)
- validation.py  held-out PGD validation (Validation) and best-epoch choice (BestTracker)
- guard.py       Fast AT's catastrophic-overfitting guard (Guard, OverfitGuard)
- metrics.py     per-epoch metrics accumulated on the device, read once per epoch
- run_state.py   resume, checkpoint contents, the run directory's files, RNG states
- run_lock.py    the OS lock that keeps two processes out of one run directory
- distributed.py DDP under torchrun: process group, sharding, rank-0 writes, shared decisions
- compiled.py    the training step: eager, torch.compile'd or a CUDA graph
- progress.py    progress output (bar or lines) shared with evaluate(); the run's bar
- presets.py     per-data-set defaults (the digits presets), shared by CLI, tests, benchmarks
"""
from fastadv.training.guard import Guard
from fastadv.training.loop import TrainResult, train
from fastadv.training.schedules import SCHEDULES, Schedule
from fastadv.training.validation import Validation, clean_and_pgd_accuracy

__all__ = ["train", "TrainResult", "Schedule", "SCHEDULES", "Validation", "Guard",
           "clean_and_pgd_accuracy"]
