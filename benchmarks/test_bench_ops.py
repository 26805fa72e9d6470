"""Each fused op x backend at 128 and 512 x 3x32x32 (logits 512x10 and 512x100) next to a
plain copy of the same bytes. Target on the 2-core CPU: the cpp pgd_step >= 3x faster than
the reference and >= half the copy's GB/s; measured numbers are in benchmarks/README.md."""
import pytest

from conftest import DEVICES, record
from fastadv.ops.benchmark import op_cases, synchronized, timed_backends

CASES = []
for _device in DEVICES:
    for _case in op_cases(_device):
        backends = ["torch"] if _case.op == "copy" else timed_backends(_device)
        CASES.extend((_device, _case, b) for b in backends)


@pytest.mark.parametrize("device,case,backend", CASES,
                         ids=[f"{d}-{c.name}-{b}" for d, c, b in CASES])
def test_op(benchmark, device, case, backend):
    benchmark(synchronized(case.make(backend), device))
    record(benchmark, device, bytes_moved=case.bytes_moved, op=case.op, size=case.size,
           backend=backend)
