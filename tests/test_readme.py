"""README.md's Python blocks run as written, and its training block trains, bit for bit, the
model that `fastadv train` trains from the same settings (the same config.json, thread
count included).

Each block runs in this process (no interpreter start-up per block) in a fresh temporary
directory, so the run directories it writes go there; torch's thread count, which the
training block sets, is restored afterwards.
"""
import json
import re
from pathlib import Path

import pytest
import torch

from fastadv.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
TRAINING_RUN_DIR = "runs/bs-digits"  # the block `fastadv train` is compared with writes here


def python_blocks():
    return PYTHON_BLOCK.findall(README.read_text())


def run_block(code: str, name: str) -> None:
    exec(compile(code, name, "exec"), {"__name__": "__readme__"})


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    threads = torch.get_num_threads()
    # tiny digits batches: extra OpenMP threads only spin, slowing the blocks several-fold on
    # shared cores (the reason `fastadv train` uses one thread on the digits, too)
    torch.set_num_threads(1)
    yield tmp_path
    torch.set_num_threads(threads)


def test_readme_has_python_blocks():
    blocks = python_blocks()
    assert len(blocks) >= 4
    assert sum(TRAINING_RUN_DIR in block for block in blocks) == 1


@pytest.mark.parametrize("index", [i for i, block in enumerate(python_blocks())
                                   if TRAINING_RUN_DIR not in block])
def test_readme_python_block_runs(index, sandbox):
    run_block(python_blocks()[index], f"README.md python block {index + 1}")


def test_readme_training_block_trains_the_cli_model(sandbox, capsys):
    block = next(b for b in python_blocks() if TRAINING_RUN_DIR in b)
    epochs = re.search(r"epochs=(\d+)", block).group(1)
    torch.set_num_threads(2)  # not the CLI's count: the block must set its own
    run_block(block, "README.md training block")
    assert main(["train", "--epochs", epochs, "--run-dir", "cli-run", "--no-progress",
                 "--eval-steps", "1"]) == 0
    python_run, cli_run = sandbox / TRAINING_RUN_DIR, sandbox / "cli-run"
    configs = [json.loads((run / "config.json").read_text()) for run in (python_run, cli_run)]
    assert configs[0] == configs[1] and configs[0]["threads"] == 1
    states = [torch.load(run / "checkpoints" / "last.pt", weights_only=True)["model_state"]
              for run in (python_run, cli_run)]
    assert states[0].keys() == states[1].keys()
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
