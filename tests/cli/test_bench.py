"""`fastadv bench` runs every requested op on every timed backend and prints one row each."""
from fastadv.cli import main
from fastadv.ops.benchmark import timed_backends


def test_bench_prints_a_row_per_backend(capsys):
    assert main(["bench", "--repeat", "1", "--ops", "masked_scale"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines()
            if line.startswith("masked_scale[")]
    assert len(rows) == 2 * len(timed_backends("cpu"))  # two image sizes
    assert all("x" in row.split()[-1] for row in rows)  # a speed-up against the reference
