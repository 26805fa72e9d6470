"""train() under DDP on two CPU processes (gloo): attack passes leave DDP's all-reduce alone,
gradients are averaged over ranks, a 2-rank run equals a one-process run over the same global
batch, the data is sharded, errors are clear, a killed run resumes under torchrun, and
``torchrun -m fastadv train`` works.

The two ranks run tests/training/distributed_scenarios.py once per session (tests/ranks.py);
the one-process references run here, in the pytest process.
"""
import json
import os
import re
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
import torch

import fastadv
from fastadv import methods
from tests import ranks
from tests.training import distributed_scenarios as scenarios
from tests.training import resume_script

REPO = Path(__file__).resolve().parents[2]
METHODS = methods.available()


@pytest.fixture(scope="module")
def results():
    rank0, rank1, exit_codes = ranks.scenario_results()
    return rank0, rank1, exit_codes


def _assert_same_state(a, b, **tolerance):
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], **tolerance, msg=key)


def _largest_difference(a, b):
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


@pytest.mark.parametrize("name", METHODS)
def test_attack_passes_start_no_all_reduce_and_each_bucket_is_reduced_once(results, name):
    for rank_results in results[:2]:
        for step in rank_results["reducer_per_method"][name]:
            assert step["during_loss"] == 0  # input-gradient passes, double backward included
            assert step["buckets"] and sorted(step["buckets"]) == list(range(len(step["buckets"])))
            assert step["error"] < 1e-6  # the gradient is the mean of the ranks' gradients


@pytest.mark.parametrize("name", METHODS)
def test_ranks_end_identical_and_unlike_rank0_alone(results, name):
    rank0, rank1 = results[0]["different_data_per_method"][name], \
        results[1]["different_data_per_method"][name]
    _assert_same_state(rank0, rank1, rtol=0, atol=0)  # weights and batch-norm buffers
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        alone = fastadv.train(scenarios.tiny_model(), name, scenarios.rank_batches(0),
                              method_options=scenarios.OPTIONS[name], **scenarios.TRAIN)
    assert _largest_difference(rank0, alone.model.state_dict()) > 1e-4


@pytest.mark.parametrize("name", METHODS)
def test_two_ranks_equal_one_process_over_the_global_batch(results, name):
    with scenarios.zero_starts():
        one = fastadv.train(scenarios.plain_model(), name, scenarios.shared_data(),
                            batch_size=2 * scenarios.PER_RANK_BATCH,
                            method_options=scenarios.OPTIONS[name], **scenarios.TRAIN)
    for rank_results in results[:2]:
        _assert_same_state(rank_results["global_batch_per_method"][name],
                           one.model.state_dict(), rtol=1e-5, atol=1e-6)


def test_dataloader_and_imagedata_are_sharded_and_reshuffled_per_epoch(results):
    rank0, rank1 = results[0]["loaders_and_config"], results[1]["loaders_and_config"]
    for label in ("dataloader", "imagedata"):
        _assert_same_state(rank0[label]["weights"], rank1[label]["weights"], rtol=0, atol=0)
        config = rank0[label]["config"]
        assert config["world_size"] == 2 and config["batch_size"] == scenarios.PER_RANK_BATCH
        assert config["global_batch_size"] == 2 * scenarios.PER_RANK_BATCH
    # the DeviceLoader's global batches (shuffle and augmentation of each epoch) are those of a
    # one-process run at the global batch size
    with scenarios.zero_starts():
        one = fastadv.train(scenarios.plain_model(), "fast_at", scenarios.shared_images(),
                            batch_size=2 * scenarios.PER_RANK_BATCH,
                            method_options=scenarios.OPTIONS["fast_at"],
                            **{**scenarios.TRAIN, "epochs": 2})
    _assert_same_state(rank0["imagedata"]["weights"], one.model.state_dict(),
                       rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case,match", [
    ("wrapped", "already wrapped in DataParallel"),
    ("too_few", "world_size=2 ranks x batch_size=8"),
    ("mismatch", r"\['lr'\] differ between rank 0 and rank\(s\) \[1\]"),
    ("sync_bn_cpu", "sync_bn=True needs CUDA"),
    # raised by rank 0 alone (it owns the run directory), told to rank 1 at once
    ("run_dir_taken", "already holds a run .* pass overwrite=True"),
    ("bad_label", r"label.*7"),
])
def test_distributed_user_errors_are_clear_on_every_rank(results, case, match):
    for rank_results in results[:2]:
        kind, message = rank_results["errors"][case]
        assert kind == "ValueError" and re.search(match, message), message
    if case == "run_dir_taken":
        assert results[1]["errors"][case][1].startswith("rank 0 of 2 failed, so rank 1 stops")
        for rank_results in results[:2]:  # no collective was left half done
            assert rank_results["errors"]["after_refusal"] is None


def test_ddp_forwards_sync_buffers_through_the_version_keeping_override(results):
    # TRADES (3 steps) runs 6 DDP forwards: a no-grad target pass, 3 attack passes and 2 loss
    # passes; DDP broadcasts rank 0's buffers before each forward that records a graph (torch
    # 2.13 skips the no-grad one), always through BufferSyncedDDP's override
    for rank_results in results[:2]:
        assert rank_results["buffer_sync"]["calls"] in (5, 6)


def test_a_dead_rank_makes_the_others_fail_fast_with_a_clear_error(results):
    assert results[2] == (0, 3)  # rank 0 returned, rank 1 died as the scenario made it
    found = results[0]["dead_rank"]
    kind, message = found["error"]
    assert kind == "RuntimeError" and "rank 0 of 2" in message and "died" in message
    assert found["seconds"] < ranks.GROUP_TIMEOUT_SECONDS  # no hang until the timeout


def _torchrun(*args, cwd=REPO, timeout=240):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO),
           "FASTADV_DIST_TIMEOUT": "60"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", "2", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def _without_timings(history):
    return [{k: v for k, v in record.items()
             if k not in ("seconds", "images_per_second", "peak_memory_mb")} for record in history]


def test_a_run_killed_and_resumed_under_torchrun_ends_where_an_uninterrupted_one_does(
        results, tmp_path):
    script = str(Path(resume_script.__file__).relative_to(REPO))
    killed = _torchrun(script, "kill", str(tmp_path))
    assert killed.returncode != 0  # rank 0 was killed after epoch 1
    with open(tmp_path / "run" / "metrics.jsonl") as handle:
        assert [json.loads(line)["epoch"] for line in handle] == [1]
    resumed = _torchrun(script, "resume", str(tmp_path))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    final = torch.load(tmp_path / "final.pt", weights_only=False)
    uninterrupted = results[0]["resume_uninterrupted"]
    _assert_same_state(final["weights"], uninterrupted["weights"], rtol=0, atol=0)
    assert _without_timings(final["history"]) == _without_timings(uninterrupted["history"])
    assert len(final["history"]) == resume_script.EPOCHS


def test_torchrun_m_fastadv_train_on_the_digits(tmp_path):
    run_dir = tmp_path / "run"
    done = _torchrun("-m", "fastadv", "train", "--method", "fast_at", "--epochs", "1",
                     "--run-dir", str(run_dir), "--eval-steps", "2", "--no-progress")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("best checkpoint (epoch 1)") == 1  # printed by rank 0 alone
    config = json.loads((run_dir / "config.json").read_text())
    assert config["world_size"] == 2
    assert config["global_batch_size"] == 2 * config["batch_size"]
    assert json.loads((run_dir / "test_results.json").read_text())["best_epoch"] == 1


def test_the_process_group_train_starts_outlives_it_and_is_destroyed_at_exit(tmp_path):
    script = tmp_path / "exit_check.py"
    script.write_text(textwrap.dedent(f"""
        import atexit, os
        import torch.distributed as dist
        import fastadv
        from tests.training.helpers import tiny_data, tiny_model
        log = open(os.path.join({str(tmp_path)!r}, "rank" + os.environ["RANK"] + ".txt"), "w")
        # registered before train(): atexit runs it after the handler train() registers
        atexit.register(lambda: print(f"at exit: {{dist.is_initialized()}}", file=log, flush=True))
        fastadv.train(tiny_model(), "fast_at", tiny_data(n=32), epochs=1, batch_size=8,
                      val_size=0, guard=False, progress=False)
        print(f"after train: {{dist.is_initialized()}} {{dist.get_world_size()}}", file=log)
    """))
    done = _torchrun(str(script))
    assert done.returncode == 0, done.stderr[-3000:]
    for rank in (0, 1):
        # still up for the caller's use after train(), then destroyed as the process exits
        assert (tmp_path / f"rank{rank}.txt").read_text().splitlines() == [
            "after train: True 2", "at exit: False"]
