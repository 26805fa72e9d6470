"""Run the distributed test scenarios on two CPU processes, once per pytest session.

Each process gets the environment torchrun gives its workers (RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR, MASTER_PORT), so fastadv's own detection starts the gloo process group. The
scenarios (the SCENARIOS lists of the modules in SCENARIO_MODULES) run in order in one
process group, so that the two interpreters start once for all distributed tests; each
rank saves what every scenario returned after each one, and the tests compare those results
with one-process runs made in the pytest process itself.
"""
import functools
import importlib
import os
import shutil
import socket
import tempfile
from pathlib import Path

import torch
import torch.multiprocessing as mp

WORLD_SIZE = 2
# the training module last: its last scenario kills a rank
SCENARIO_MODULES = ("tests.evaluation.distributed_scenarios",
                    "tests.training.distributed_scenarios")
TIMEOUT_SECONDS = 300  # the whole session of scenarios; a hang fails instead of blocking CI
GROUP_TIMEOUT_SECONDS = 60  # FASTADV_DIST_TIMEOUT inside the scenarios


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def torchrun_environment(rank: int, world_size: int, port: int) -> dict:
    return {"RANK": str(rank), "WORLD_SIZE": str(world_size), "LOCAL_RANK": str(rank),
            "LOCAL_WORLD_SIZE": str(world_size), "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1",
            "FASTADV_DIST_TIMEOUT": str(GROUP_TIMEOUT_SECONDS)}


def _worker(rank: int, world_size: int, port: int, out: str) -> None:
    os.environ.update(torchrun_environment(rank, world_size, port))
    torch.set_num_threads(1)
    results = {}
    for name in SCENARIO_MODULES:
        for scenario in importlib.import_module(name).SCENARIOS:
            results[scenario.__name__] = scenario(rank, world_size, Path(out))
            torch.save(results, Path(out) / f"rank{rank}.pt")


@functools.lru_cache(maxsize=None)
def scenario_results():
    """(results of rank 0, results of rank 1, exit codes): {scenario name: its return}."""
    out = tempfile.mkdtemp(prefix="fastadv-ranks-")
    context = mp.get_context("spawn")
    port = free_port()
    processes = [context.Process(target=_worker, args=(rank, WORLD_SIZE, port, out))
                 for rank in range(WORLD_SIZE)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(TIMEOUT_SECONDS)
    for process in processes:
        if process.is_alive():  # a hang: stop it, the tests then fail on missing results
            process.kill()
            process.join()
    results = [torch.load(Path(out) / f"rank{rank}.pt", weights_only=False)
               if (Path(out) / f"rank{rank}.pt").exists() else {} for rank in range(WORLD_SIZE)]
    shutil.rmtree(out, ignore_errors=True)
    return results[0], results[1], tuple(p.exitcode for p in processes)
