"""A 3-epoch Fast AT run on two ranks with validation and the overfitting guard, for the
kill-and-resume test of tests/training/test_distributed.py.

    torchrun --nproc_per_node 2 tests/training/resume_script.py kill OUT
    torchrun --nproc_per_node 2 tests/training/resume_script.py resume OUT

mode "kill": rank 0 kills itself (SIGKILL) once epoch 1's checkpoint is written; "resume":
continue the run in OUT/run; "full": the same run uninterrupted (run inside tests/ranks.py).
Returns (and rank 0 saves as OUT/final.pt) the final weights and the history.
"""
import os
import signal
import sys
from pathlib import Path

import torch

import fastadv
from fastadv.training import Validation
from tests.training.helpers import tiny_data, tiny_model

EPOCHS = 3


def run(mode: str, out: Path):
    torch.set_num_threads(1)
    rank = int(os.environ.get("RANK", "0"))

    def kill_after_first_epoch(record):
        if mode == "kill" and rank == 0 and record["epoch"] == 1:
            os.kill(os.getpid(), signal.SIGKILL)

    x, y = tiny_data(n=48, seed=3)
    result = fastadv.train(tiny_model(), "fast_at", (x, y), epochs=EPOCHS, batch_size=8,
                           lr=0.05, val_size=8, validation=Validation(steps=2), guard=True,
                           method_options={"eps": 0.1}, progress=False,
                           run_dir=out / "run", resume=out / "run" if mode == "resume" else None,
                           callback=kill_after_first_epoch)
    final = {"weights": result.model.state_dict(), "history": result.history}
    if rank == 0:
        torch.save(final, out / "final.pt")
    return final


if __name__ == "__main__":
    run(sys.argv[1], Path(sys.argv[2]))
