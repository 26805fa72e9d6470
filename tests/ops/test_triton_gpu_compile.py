"""Every Triton kernel compiles for the GPUs fastadv targets (sm_80, sm_90), in every dtype
and variant its launchers use, on this machine without a GPU: the checks the CPU
interpreter cannot make (tests/ops/triton_gpu_compile.py says how)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ops import triton_gpu_compile

pytest.importorskip("triton")
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # ~80 compiles: ~30 s on 2 cores
def test_every_triton_kernel_compiles_to_a_cubin_for_sm80_and_sm90():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    done = subprocess.run([sys.executable, "-m", "tests.ops.triton_gpu_compile"], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=600)
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    failed = [f"{r['kernel']} {r['target']}: {r['error']}" for r in rows if not r["ok"]]
    assert not failed, "\n".join(failed)
    assert done.returncode == 0, done.stderr[-3000:]
    variants = sum(1 for _ in triton_gpu_compile.launches())
    assert len(rows) == variants * len(triton_gpu_compile.TARGETS)
    assert {r["target"] for r in rows} == {"sm_80", "sm_90"}
    assert all(r["cubin_bytes"] > 0 for r in rows)
