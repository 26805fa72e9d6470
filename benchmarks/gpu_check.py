"""The GPU check behind benchmarks/gpu_check.sh: after the install, each stage runs in its own
process with its own time budget, printing as it goes, then one JSON and one Markdown summary
go to OUTDIR (device, driver, torch / triton / CUDA versions, commit, every stage's outcome and
rows). The exit status is non-zero when the install or a GPU test failed, or no GPU is seen.

    python benchmarks/gpu_check.py --out OUTDIR [--cpu-dry-run]

Stages (budgets in seconds, FASTADV_CHECK_<STAGE>_S overrides; the default total fits with
the install in 8 minutes):
- environment: what the summary's header says, and which fastadv backends load on CUDA;
- gpu-tests: ``pytest tests/gpu tests/ops -k "(gpu or cuda) and not cubin"``: every op on
  triton and cuda against the reference (float32, float16, bfloat16; contiguous and
  channels_last; odd shapes), a few steps of every method in bf16 + channels_last without a
  host sync, a compiled step, CUDA-graph steps with the different-noise replay test;
- op-bench: benchmarks/test_bench_ops.py (GB/s against a copy of the same bytes);
- steps-128, steps-512: step_cases.py on PreActResNet-18 in bf16, most telling rows first
  (eager fused and official, then eager reference, then compiled and CUDA-graphed fast
  single-step methods, then the rest), each row written as soon as it is measured, so a
  stage cut by its budget keeps what it measured;
- epochs: a quarter epoch per method (epoch_cases.py) at batch 128 and 512, then compiled
  Fast AT.
--cpu-dry-run runs the same stages on CPU-sized work (the GPU tests skip), to check the
script itself on a machine without a GPU.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"
# worst case, every stage cut at its budget: with the install's 150 s and the environment's
# few seconds, 475 s (the 8 minutes of the issue)
BUDGETS = {"environment": 60, "gpu-tests": 130, "op-bench": 20, "steps-128": 85,
           "steps-512": 40, "epochs": 45}
GPU_SETTINGS = {"steps-128": "preact_resnet18-b128-bf16", "steps-512": "preact_resnet18-b512-bf16"}
FAST_METHODS = ("standard", "fast_at", "n_fgsm")


def budget(stage: str) -> int:
    return int(os.environ.get(f"FASTADV_CHECK_{stage.upper().replace('-', '_')}_S",
                              BUDGETS[stage]))


# --- running a stage ------------------------------------------------------------------------

def run_stage(name: str, command, out: Path, seconds: int) -> dict:
    """Run ``command`` in its own process group, echo and log its output, kill it at the
    budget. Returns the stage's record."""
    print(f"== {name} (budget {seconds} s): {' '.join(map(str, command))}", flush=True)
    log = open(out / f"{name}.log", "w")
    start = time.perf_counter()
    proc = subprocess.Popen([str(c) for c in command], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def echo():
        for line in proc.stdout:
            log.write(line)
            print(f"  [{name}] {line}", end="", flush=True)

    reader = threading.Thread(target=echo, daemon=True)
    reader.start()
    try:
        rc = proc.wait(timeout=seconds)
        status = "ok" if rc == 0 else "failed"
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        rc = proc.wait()
        status = "timeout"
    reader.join(timeout=5)
    log.close()
    elapsed = round(time.perf_counter() - start, 1)
    print(f"== {name}: {status} (rc {rc}) in {elapsed} s", flush=True)
    return {"stage": name, "status": status, "rc": rc, "seconds": elapsed, "budget_s": seconds}


def python(*args):
    return [sys.executable, *args]


# --- the stages' own work (run as `gpu_check.py --stage ...`) ----------------------------------

def stage_environment(args) -> int:
    import torch

    import fastadv
    from fastadv import ops

    info = {"python": platform.python_version(), "platform": platform.platform(),
            "torch": torch.__version__, "torch_cuda": torch.version.cuda,
            "cuda_available": torch.cuda.is_available(), "fastadv": fastadv.__version__,
            "fastadv_path": str(Path(fastadv.__file__).parent),
            "commit": commit(), "cpu_dry_run": args.cpu_dry_run}
    try:
        import triton
        info["triton"] = triton.__version__
    except Exception as exc:  # noqa: BLE001  (recorded, not fatal)
        info["triton"] = f"not importable: {exc}"
    info["nvcc"] = first_line(["nvcc", "--version"], last=True)
    info["driver"] = first_line(["nvidia-smi", "--query-gpu=driver_version",
                                 "--format=csv,noheader"])
    if torch.cuda.is_available():
        info["device"] = torch.cuda.get_device_name()
        info["capability"] = "sm_%d%d" % torch.cuda.get_device_capability()
        info["backends_cuda"] = list(ops.available_backends("cuda"))
    else:
        info["device"] = f"{platform.machine()} CPU ({os.cpu_count()} cores), no CUDA device"
    info["backends_cpu"] = list(ops.available_backends("cpu"))
    info["backend_load_errors"] = ops.backend_load_errors()
    print(json.dumps(info, indent=1))
    (Path(args.out) / "environment.json").write_text(json.dumps(info, indent=1))
    if not info["cuda_available"] and not args.cpu_dry_run:
        print("no CUDA device: this check needs a GPU (or --cpu-dry-run)")
        return 1
    if info["cuda_available"] and "cuda" not in info.get("backends_cuda", []):
        print("the CUDA extension (fastadv._C_cuda) did not load:",
              info["backend_load_errors"].get("cuda"))
    return 0


def stage_steps(args) -> int:
    import step_cases

    if args.cpu_dry_run:
        setting = step_cases.setting_named("small_cnn-b128")
        cases = [[(n, "fused", "eager") for n in ("standard", "fast_at", "fast_bat")]]
    else:
        setting = step_cases.setting_named(args.setting)
        cases = prioritised_cases(step_cases, full=setting.batch == 128)
    rows_file = Path(args.out) / f"steps-{setting.name}.jsonl"

    def report(row):
        with open(rows_file, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(step_cases.format_row(row), flush=True)

    # one batch of rows at a time, so the official rows come right after the eager ones
    for group in cases:
        step_cases.measure_rows(setting, group, repeat=1 if args.cpu_dry_run else 10,
                                official=group is cases[0], report=report)
    return 0


def prioritised_cases(step_cases, full: bool):
    """Groups of (method, backend, mode) rows, the most telling first."""
    methods = step_cases.METHODS
    slow = [m for m in methods if m not in FAST_METHODS]
    groups = [[(m, "fused", "eager") for m in methods]]
    groups.append([(m, "reference", "eager") for m in methods])
    groups.append([(m, "fused", mode) for mode in ("compiled", "graphed") for m in FAST_METHODS])
    if full:
        groups.append([(m, "fused", mode) for mode in ("compiled", "graphed") for m in slow])
        groups.append([(m, "reference", "compiled") for m in methods])
    return groups


def stage_epochs(args) -> int:
    import torch

    import epoch_cases

    device = "cpu" if args.cpu_dry_run else "cuda"
    data = epoch_cases.synthetic_cifar(device)
    rows_file = Path(args.out) / "epochs.jsonl"
    runs = [(m, b, False) for b in (128, 512) for m in epoch_cases.METHODS]
    runs.append(("fast_at", 128, True))
    if args.cpu_dry_run:
        runs = [("fast_at", 128, False)]
    for name, batch, compiled in runs:
        result = epoch_cases.epoch_seconds(name, batch, device=device,
                                           fraction=0.0 if args.cpu_dry_run else 0.25,
                                           compile=compiled, data=data,
                                           warmup=1 if args.cpu_dry_run else 2)
        with open(rows_file, "a") as f:
            f.write(json.dumps(result) + "\n")
        print(epoch_cases.describe(result), flush=True)
        if device == "cuda":
            torch.cuda.empty_cache()
    return 0


# --- the summary ---------------------------------------------------------------------------------

def commit() -> str:
    if os.environ.get("FASTADV_COMMIT"):
        return os.environ["FASTADV_COMMIT"]
    head = first_line(["git", "-C", str(ROOT), "rev-parse", "HEAD"])
    if not head or "not" in head:
        return "unknown (not a git checkout; set FASTADV_COMMIT)"
    dirty = first_line(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"])
    return head + (" (with uncommitted changes)" if dirty else "")


def first_line(command, last=False) -> str:
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"not available ({type(exc).__name__})"
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    return (lines[-1] if last else lines[0]) if lines else ""


def read_jsonl(path: Path) -> list:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def junit_counts(path: Path) -> dict:
    import xml.etree.ElementTree as ET

    if not path.exists():
        return {"tests": 0, "passed": 0, "failed": 0, "errors": 0, "skipped": 0,
                "failures": ["no junit report: the stage did not finish"]}
    counts = {"tests": 0, "failed": 0, "errors": 0, "skipped": 0, "failures": []}
    for case in ET.parse(path).getroot().iter("testcase"):
        counts["tests"] += 1
        name = f"{case.get('classname')}::{case.get('name')}"
        if case.find("failure") is not None:
            counts["failed"] += 1
            counts["failures"].append(name)
        elif case.find("error") is not None:
            counts["errors"] += 1
            counts["failures"].append(name)
        elif case.find("skipped") is not None:
            counts["skipped"] += 1
    counts["passed"] = counts["tests"] - counts["failed"] - counts["errors"] - counts["skipped"]
    return counts


def op_rows(path: Path) -> list:
    if not path.exists():
        return []
    rows = []
    for entry in json.loads(path.read_text()).get("benchmarks", []):
        info = entry.get("extra_info", {})
        rows.append({"name": entry["name"], "median_us": round(1e6 * entry["stats"]["median"], 1),
                     "gb_per_s": info.get("gb_per_s"), "op": info.get("op"),
                     "size": info.get("size"), "backend": info.get("backend"),
                     "device": info.get("device")})
    return rows


def markdown(summary: dict) -> str:
    env = summary["environment"]
    lines = ["# fastadv GPU check", "",
             f"- device: {env.get('device')}"
             + (f" ({env['capability']})" if env.get("capability") else "")
             + f", driver {env.get('driver')}",
             f"- torch {env.get('torch')} (CUDA {env.get('torch_cuda')}),"
             f" triton {env.get('triton')}, nvcc: {env.get('nvcc')}",
             f"- fastadv {env.get('fastadv')} at commit {env.get('commit')}",
             f"- backends: cuda {env.get('backends_cuda')}, cpu {env.get('backends_cpu')}",
             f"- result: **{'PASS' if summary['ok'] else 'FAIL'}**"
             + (" (CPU dry run: GPU tests skipped)" if env.get("cpu_dry_run") else ""), "",
             "| stage | status | seconds | budget |", "|---|---|---|---|"]
    lines += [f"| {s['stage']} | {s['status']} | {s['seconds']} | {s['budget_s']} |"
              for s in summary["stages"]]
    t = summary["gpu_tests"]
    lines += ["", f"GPU tests: {t['passed']} passed, {t['failed']} failed, {t['errors']} errors, "
              f"{t['skipped']} skipped"] + [f"- FAILED {name}" for name in t["failures"]]
    if summary["op_rows"]:
        lines += ["", "| op case | backend | median µs | GB/s |", "|---|---|---|---|"]
        lines += [f"| {r['op']} {r['size']} | {r['backend']} | {r['median_us']} | "
                  f"{r['gb_per_s'] or ''} |" for r in summary["op_rows"]]
    if summary["step_rows"]:
        lines += ["", "| setting | method | backend | mode | ms | img/s | / standard | "
                  "/ passes | fastadv / official | passes f/nf/i/b/d |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r in summary["step_rows"]:
            p = r["passes"]
            lines.append(f"| {r['setting']} | {r['method']} | {r['backend']} | {r['mode']} | "
                         f"{r['median_ms']} | {r['images_per_s']} | {r['ratio_to_standard']} | "
                         f"{r['step_over_passes']} | {r.get('fastadv_over_official', '')} | "
                         f"{p['forwards']}/{p['no_grad_forwards']}/{p['input_backwards']}/"
                         f"{p['full_backwards']}/{p['double_backwards']} |")
    if summary["epoch_rows"]:
        lines += ["", "| method | batch | compiled | s per epoch | timed steps |",
                  "|---|---|---|---|---|"]
        lines += [f"| {r['method']} | {r['batch']} | {bool(r['compile'])} | "
                  f"{r['seconds_per_epoch']} | {r['timed_steps']} of {r['steps_per_epoch']} |"
                  for r in summary["epoch_rows"]]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--cpu-dry-run", action="store_true")
    parser.add_argument("--install-status", type=int, default=0)
    parser.add_argument("--stage", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--setting", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(BENCHMARKS))
    if args.stage:
        return {"environment": stage_environment, "steps": stage_steps,
                "epochs": stage_epochs}[args.stage](args)

    dry = ["--cpu-dry-run"] if args.cpu_dry_run else []
    me = [str(Path(__file__).resolve()), "--out", str(out), *dry]
    stages = [run_stage("environment", python(*me, "--stage", "environment"), out,
                        budget("environment"))]
    # (the GPU-less compile check of the Triton kernels is CI's: ~100 compiles, not GPU time)
    tests = python("-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/gpu", "tests/ops",
                   "-k", "(gpu or cuda) and not cubin", f"--junitxml={out / 'gpu_tests.xml'}")
    stages.append(run_stage("gpu-tests", tests, out, budget("gpu-tests")))
    op_bench = python("-m", "pytest", "-q", "-p", "no:cacheprovider",
                      "benchmarks/test_bench_ops.py", "--benchmark-only",
                      f"--benchmark-json={out / 'ops.json'}", "--benchmark-max-time=0.1",
                      *(["-k", "128x3x32x32 and cpp"] if args.cpu_dry_run else ["-k", "cuda"]))
    stages.append(run_stage("op-bench", op_bench, out, budget("op-bench")))
    step_stages = ["steps-128"] if args.cpu_dry_run else ["steps-128", "steps-512"]
    for stage in step_stages:
        stages.append(run_stage(stage, python(*me, "--stage", "steps", "--setting",
                                              GPU_SETTINGS[stage]), out, budget(stage)))
    stages.append(run_stage("epochs", python(*me, "--stage", "epochs"), out, budget("epochs")))

    environment = json.loads((out / "environment.json").read_text()) \
        if (out / "environment.json").exists() else {}
    tests_summary = junit_counts(out / "gpu_tests.xml")
    step_rows = [row for path in sorted(out.glob("steps-*.jsonl")) for row in read_jsonl(path)]
    ok = (args.install_status == 0 and stages[0]["status"] == "ok"
          and stages[1]["status"] == "ok" and tests_summary["failed"] == 0
          and tests_summary["errors"] == 0)
    summary = {"ok": ok, "install_status": args.install_status, "environment": environment,
               "stages": stages, "gpu_tests": tests_summary, "op_rows": op_rows(out / "ops.json"),
               "step_rows": step_rows, "epoch_rows": read_jsonl(out / "epochs.jsonl")}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    (out / "summary.md").write_text(markdown(summary))
    print(f"== summary: {out / 'summary.json'} and {out / 'summary.md'}: "
          f"{'PASS' if ok else 'FAIL'}", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
