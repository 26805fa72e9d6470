"""Run directories are never overwritten by accident, never shared by two processes, and a
resume continues only the run it was given (fastadv.training.run_state, run_lock)."""
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import fastadv
from fastadv import checkpoint as ckpt
from fastadv.training import run_lock
from tests.training.helpers import tiny_data, tiny_model

REPO = Path(__file__).resolve().parents[2]
# the cheapest real runs: 48 images, 3 batches an epoch, no validation
QUICK = dict(batch_size=16, lr=0.05, progress=False, val_size=0)


def quick_run(run_dir, *, epochs=2, stop_after=None, n=48, method="standard", model=None,
              **kwargs):
    """A real run of ``epochs`` (interrupted after epoch ``stop_after``) into ``run_dir``."""
    if stop_after is not None:
        kwargs["callback"] = lambda record: record["epoch"] < stop_after
    return fastadv.train(model or tiny_model(), method, tiny_data(n=n), epochs=epochs,
                         run_dir=run_dir, **{**QUICK, **kwargs})


def snapshot(directory: Path) -> dict:
    """Every file under ``directory``: its bytes and modification time."""
    return {str(p.relative_to(directory)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(directory.rglob("*")) if p.is_file()}


def epochs_in_metrics(run_dir: Path) -> list:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["epoch"] for line in lines]


def test_a_fresh_run_into_a_run_refuses_and_writes_nothing(tmp_path):
    run_dir = tmp_path / "run"
    quick_run(run_dir, epochs=1)
    before = snapshot(run_dir)
    with pytest.raises(ValueError) as refused:
        quick_run(run_dir, epochs=1, method="fast_at", method_options={"eps": 0.1})
    message = str(refused.value)
    for names in ("resume=", "--resume", "overwrite=True", "--overwrite", str(run_dir)):
        assert names in message
    assert snapshot(run_dir) == before


@pytest.mark.parametrize("leftover", ["config.json", "metrics.jsonl", "checkpoints/best.pt"])
def test_any_file_of_a_run_counts_as_a_run(tmp_path, leftover):
    # e.g. a run killed before its first checkpoint still left config.json
    (tmp_path / leftover).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / leftover).write_text("{}")
    before = snapshot(tmp_path)
    with pytest.raises(ValueError, match="already holds a run"):
        quick_run(tmp_path, epochs=1)
    assert snapshot(tmp_path) == before


def test_overwrite_replaces_only_fastadvs_files(tmp_path):
    quick_run(tmp_path, epochs=2)
    (tmp_path / "test_results.json").write_text("{}")  # what `fastadv train` adds
    (tmp_path / "checkpoints" / ".last.pt.deadbeef.tmp").write_bytes(b"killed write")
    (tmp_path / "notes.txt").write_text("mine")
    quick_run(tmp_path, epochs=1, method="fast_at", method_options={"eps": 0.1}, overwrite=True)
    assert json.loads((tmp_path / "config.json").read_text())["method"]["method"] == "fast_at"
    assert epochs_in_metrics(tmp_path) == [1]
    last = ckpt.load_checkpoint(tmp_path, which="last")
    assert last["epoch"] == 1 and last["config"]["method"]["method"] == "fast_at"
    assert not (tmp_path / "test_results.json").exists()
    assert not list((tmp_path / "checkpoints").glob("*.tmp"))
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_overwrite_cannot_delete_the_run_being_resumed(tmp_path):
    quick_run(tmp_path, stop_after=1)
    with pytest.raises(ValueError, match="not both"):
        quick_run(tmp_path, resume=tmp_path, overwrite=True)
    with pytest.raises(TypeError, match="overwrite"):
        quick_run(tmp_path / "new", overwrite="yes")


def test_resuming_into_another_run_directory_refuses_to_overwrite_it(tmp_path):
    quick_run(tmp_path / "a", stop_after=1)
    quick_run(tmp_path / "b", epochs=1)
    before = snapshot(tmp_path / "b")
    with pytest.raises(ValueError, match="other than the one resumed"):
        quick_run(tmp_path / "b", resume=tmp_path / "a")
    assert snapshot(tmp_path / "b") == before
    # a last.pt inside a run directory continues that directory when run_dir is not given
    quick_run(None, resume=tmp_path / "a" / "checkpoints" / "last.pt")
    assert epochs_in_metrics(tmp_path / "a") == [1, 2]


def test_the_lock_is_released_when_train_returns_or_raises(tmp_path):
    def crash(record):
        raise RuntimeError("callback failed")

    with pytest.raises(RuntimeError, match="callback failed"):
        fastadv.train(tiny_model(), "standard", tiny_data(n=48), epochs=2, run_dir=tmp_path,
                      callback=crash, **QUICK)
    run_lock.RunLock.check_free(tmp_path)  # free again
    quick_run(tmp_path, resume=tmp_path)
    run_lock.RunLock.check_free(tmp_path)
    assert (tmp_path / run_lock.LOCK_NAME).read_text() == ""  # no PID of an ended run


HOLD_THE_LOCK = textwrap.dedent("""
    import importlib.util, sys, time
    # run_lock.py needs only the standard library: load it alone, so this helper starts fast
    spec = importlib.util.spec_from_file_location("run_lock", sys.argv[1])
    run_lock = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run_lock)
    run_lock.RunLock(sys.argv[2]).acquire()
    print("locked", flush=True)
    time.sleep(120)
""")


def test_a_run_directory_locked_by_another_process_is_refused_until_it_is_killed(tmp_path):
    quick_run(tmp_path, stop_after=1)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_THE_LOCK, run_lock.__file__, str(tmp_path)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = snapshot(tmp_path)
        for attempt in (dict(resume=tmp_path), dict(overwrite=True), {}):
            with pytest.raises(ValueError, match=f"in use by another process \\(PID {holder.pid}"):
                quick_run(tmp_path, **attempt)
        assert snapshot(tmp_path) == before
    finally:
        os.kill(holder.pid, signal.SIGKILL)  # like kill -9 of a training run
        holder.wait()
    # the OS dropped the lock with the process: the run resumes at once
    result = quick_run(tmp_path, resume=tmp_path)
    assert [r["epoch"] for r in result.history] == [1, 2] == epochs_in_metrics(tmp_path)


TRAIN_INTO = textwrap.dedent("""
    import sys
    import fastadv
    from tests.training.helpers import tiny_data, tiny_model
    for how in ({}, {"resume": sys.argv[1]}):
        try:
            fastadv.train(tiny_model(), "standard", tiny_data(n=48), epochs=2, batch_size=16,
                          progress=False, val_size=0, run_dir=sys.argv[1], **how)
            print("trained")
        except ValueError as error:
            print(error)
""")


def test_a_second_training_process_is_refused_with_the_holders_pid(tmp_path):
    outputs = []

    def start_second_process(record):  # while this process trains in tmp_path
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(REPO), os.environ.get("PYTHONPATH", "")])}
        second = subprocess.run([sys.executable, "-c", TRAIN_INTO, str(tmp_path)], cwd=REPO,
                                env=env, capture_output=True, text=True, timeout=120)
        outputs.append(second)

    quick_run(tmp_path, callback=start_second_process, epochs=1)
    second = outputs[0]
    lines = second.stdout.strip().splitlines()
    assert len(lines) == 2, second.stdout + second.stderr  # the fresh try, the resuming try
    for line in lines:
        assert f"in use by another process (PID {os.getpid()}" in line
    assert epochs_in_metrics(tmp_path) == [1]


def test_resume_refuses_another_batch_size_data_set_or_model(tmp_path):
    quick_run(tmp_path, stop_after=1)
    before = {k: v[0] for k, v in snapshot(tmp_path).items()}
    with pytest.raises(ValueError, match="batch_size=16, this call gives batch_size=8"):
        quick_run(tmp_path, resume=tmp_path, batch_size=8)
    with pytest.raises(ValueError, match="n_train=48, this call gives n_train=64"):
        quick_run(tmp_path, resume=tmp_path, n=64)
    with pytest.raises(ValueError, match=r"'0.weight' has shape \(4, 1, 3, 3\) there but "
                                         r"\(4, 2, 3, 3\) in this model"):
        fastadv.train(tiny_model(channels=2), "standard", tiny_data(n=48, channels=2),
                      epochs=2, resume=tmp_path, **QUICK)
    spec_model = tiny_model()
    spec_model.spec = {"name": "tiny", "width": 4}
    with pytest.raises(ValueError, match="model_spec=None, this call gives model_spec="):
        quick_run(tmp_path, resume=tmp_path, model=spec_model)
    assert {k: v[0] for k, v in snapshot(tmp_path).items()} == before


def test_resuming_a_completed_run_says_so_and_a_larger_epochs_extends_it(tmp_path):
    quick_run(tmp_path, epochs=2)
    with pytest.warns(UserWarning, match="already completed 2 epochs.*larger epochs"):
        result = quick_run(tmp_path, resume=tmp_path, epochs=1)
    assert len(result.history) == 2
    # config.json still describes the run in last.pt, not the epochs=1 of the call
    assert json.loads((tmp_path / "config.json").read_text())["epochs"] == 2
    extended = quick_run(tmp_path, resume=tmp_path, epochs=3)
    assert [r["epoch"] for r in extended.history] == [1, 2, 3] == epochs_in_metrics(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["epochs"] == 3
