"""The training-step benchmark: one step of every method and of standard training on the same
model and batch, in one run; the fused backend against the reference; eager, compiled and (on
CUDA) CUDA-graphed; next to each method's step written with its official code's pass
structure (official_steps.py) and to the cost of the passes it cannot avoid.

Used by benchmarks/test_bench_train.py (pytest-benchmark rows) and benchmarks/gpu_check.py,
and from the shell:

    python benchmarks/step_cases.py --setting small_cnn-b128 --methods fast_at,trades

Settings: on CPU the small CNN at 3x32x32, batch 128, and PreActResNet-18 at batch 32; on CUDA
PreActResNet-18 at batch 128 and 512 in bf16 (channels_last). The step is fastadv's own
(fastadv.training.compiled.TrainingStep: the LR, zero_grad, method.loss under autocast,
backward, SGD step), at a learning rate too small to move the model, so every row times the
same network. What each row records (:meth:`Bench.row`):
- passes: forwards / input-only backwards / full backwards / double backwards (and
  create_graph backwards, no-grad forwards) of one eager step, counted by hooks
  (pass_counts.py);
- images_per_s, and ratio_to_standard: the step over one standard training step of the same
  backend and mode measured in the same run;
- passes_ms: the pass counts times per-pass costs measured in the same run (pass_costs.py: a
  forward, an input-only backward, a full backward, the extra cost of create_graph, a double
  backward), and step_over_passes: the step over that sum, the overhead of everything that is
  not a pass; pass_costs_ms: those costs;
- official rows: fastadv_over_official, fastadv's eager fused step over the official one,
  both timed in alternation (:func:`interleaved_medians`), so that a load that changes while
  the run goes on (shared machines) slows both alike.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import statistics
import time
from typing import Callable, Dict, List, Optional

import torch

import fastadv
from fastadv import methods, ops
from fastadv.data.cifar import _SETS as CIFAR_SETS
from fastadv.ops.benchmark import median_seconds, synchronized
from fastadv.training.compiled import StepOptions, TrainingStep
from fastadv.training.precision import Precision

import official_steps
from pass_costs import PassCosts
from pass_counts import PassCounts, count_passes

METHODS = ("standard", "fast_at", "n_fgsm", "pgd2_at", "pgd_at", "trades", "fast_trades",
           "backward_smoothing", "fast_bat", "grad_align")
BACKENDS = ("fused", "reference")  # fused: the "auto" choice (cpp on CPU, triton on CUDA)
LR = 1e-7  # small enough that the timed steps leave the network as it was
WARMUP = {"eager": 1, "compiled": 3, "graphed": 5}  # untimed calls: compiling, capturing
CIFAR10 = CIFAR_SETS["cifar10"]
# every knob of the whole benchmark on CPU (the slow rows: compiled PreActResNet-18 on CPU,
# the reference backend compiled, the epoch at batch 512) is off unless this is set
RUN_ALL = bool(os.environ.get("FASTADV_BENCH_ALL"))


@dataclasses.dataclass(frozen=True)
class Setting:
    device: str
    model: str
    batch: int
    amp: Optional[str] = None

    @property
    def name(self) -> str:
        return f"{self.model}-b{self.batch}" + (f"-{self.amp}" if self.amp else "")

    @property
    def modes(self) -> tuple:
        return ("eager", "compiled", "graphed") if self.device == "cuda" else ("eager", "compiled")


SETTINGS = {
    "cpu": (Setting("cpu", "small_cnn", 128), Setting("cpu", "preact_resnet18", 32)),
    "cuda": (Setting("cuda", "preact_resnet18", 128, "bf16"),
             Setting("cuda", "preact_resnet18", 512, "bf16")),
}


def settings(device: str) -> tuple:
    return SETTINGS["cuda" if torch.device(device).type == "cuda" else "cpu"]


def setting_named(name: str) -> Setting:
    for group in SETTINGS.values():
        for setting in group:
            if setting.name == name:
                return setting
    raise ValueError(f"unknown setting {name!r}; known: "
                     f"{[s.name for g in SETTINGS.values() for s in g]}")


def default_cases(setting: Setting) -> List[tuple]:
    """(method, backend, mode) rows of a default run. On CPU, unless FASTADV_BENCH_ALL is set,
    the reference backend is timed eagerly only (compiling leaves the ops as they are) and on
    the small CNN only, and PreActResNet-18 (seconds a step on 2 cores, a minute of inductor
    per compiled variant) runs eagerly on the fused ops only."""
    cases = []
    for mode in setting.modes:
        for backend in BACKENDS:
            slow = setting.device == "cpu" and (
                (mode != "eager" or backend == "reference") if setting.model != "small_cnn"
                else (mode != "eager" and backend == "reference"))
            if not slow or RUN_ALL:
                cases.extend((name, backend, mode) for name in METHODS)
    return cases


def make_method(name: str):
    return methods.get(name, eps=8 / 255)


def compile_options(mode: str, device) -> StepOptions:
    """eager, compiled (inductor, static shapes: one graph per batch size) or graphed (also
    the whole step as a CUDA graph)."""
    compile = {"eager": False, "compiled": {"dynamic": False},
               "graphed": {"dynamic": False, "mode": "reduce-overhead"}}[mode]
    return StepOptions.resolve(compile, False, device)


class Bench:
    """One setting's model, batch and the measurements of one run (cached, so a row's ratios
    use the numbers other rows of the same run measured)."""

    def __init__(self, setting: Setting):
        self.setting = setting
        # A run compiles the same model in train and eval mode, with and without input
        # gradients (the steps and the pass costs), at two batch sizes: more variants than
        # dynamo's default of 8 per function, past which it would silently run the rest
        # eagerly. Raised here, by the benchmark that needs it, not when this module loads.
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
        self.device = torch.device(setting.device)
        torch.manual_seed(0)
        self.model = fastadv.models.get(setting.model, num_classes=10, mean=CIFAR10["mean"],
                                        std=CIFAR10["std"]).to(self.device)
        self.precision = Precision(setting.amp or False, None, self.device, 3)
        self.precision.prepare_model(self.model)
        g = torch.Generator().manual_seed(0)
        x = torch.rand(setting.batch, 3, 32, 32, generator=g).to(self.device)
        self.x = self.precision.prepare_batch(x)
        self.y = torch.randint(0, 10, (setting.batch,), generator=g).to(self.device)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self._steps: Dict[tuple, TrainingStep] = {}
        self.medians: Dict[tuple, float] = {}
        self._passes: Dict[tuple, PassCounts] = {}
        self._costs: Dict[str, PassCosts] = {}
        # rounds of the fastadv / official comparison (PreActResNet-18 steps take seconds on CPU)
        self.pairs = 1 if setting.device == "cpu" and setting.model != "small_cnn" else 3

    # --- what is timed ---------------------------------------------------------------------

    def optimizer(self):
        return torch.optim.SGD(self.params, lr=LR, momentum=0.9, weight_decay=5e-4)

    def training_step(self, name: str, mode: str) -> TrainingStep:
        key = (name, mode)
        if key not in self._steps:
            self._steps[key] = TrainingStep(make_method(name), self.model, self.optimizer(),
                                            self.params, self.precision,
                                            compile_options(mode, self.device))
        return self._steps[key]

    def step(self, name: str, backend: str, mode: str) -> Callable[[], object]:
        """One fastadv training step, synchronized on CUDA."""
        step = self.training_step(name, mode)
        use = "auto" if backend == "fused" else backend

        def run():
            with ops.use_backend(use):
                return step(self.x, self.y, LR)
        return synchronized(run, self.setting.device)

    def official(self, name: str) -> Callable[[], object]:
        """The official code's step for method ``name`` (plain PyTorch, eager)."""
        fn, method, optimizer = official_steps.STEPS[name], make_method(name), self.optimizer()
        return synchronized(lambda: fn(self.model, optimizer, self.x, self.y, method,
                                       self.precision.autocast), self.setting.device)

    def warm(self, fn: Callable[[], object], mode: str) -> None:
        for _ in range(WARMUP[mode]):
            fn()

    # --- what a row records -------------------------------------------------------------------

    def passes(self, name: str, structure: str = "fastadv") -> PassCounts:
        """The passes of one eager step, counted by hooks on a copy of the model (hooks on
        the timed model would make dynamo recompile its compiled variants) and on two images
        of the batch (the passes of a step do not depend on its size)."""
        key = (name, structure)
        if key not in self._passes:
            model = copy.deepcopy(self.model)
            params = [p for p in model.parameters() if p.requires_grad]
            optimizer = torch.optim.SGD(params, lr=LR)
            if structure == "official":
                fn, method = official_steps.STEPS[name], make_method(name)

                def run():
                    fn(model, optimizer, self.x[:2], self.y[:2], method, self.precision.autocast)
            else:
                step = TrainingStep(make_method(name), model, optimizer, params,
                                    self.precision, StepOptions())

                def run():
                    step(self.x[:2], self.y[:2], LR)
            self._passes[key] = count_passes(model, run)
        return self._passes[key]

    def median(self, name: str, backend: str, mode: str, repeat: int = 3) -> float:
        """The step's median seconds: the one its own row measured in this run, else a
        quick measurement now."""
        key = (name, backend, mode)
        if key not in self.medians:
            fn = self.official(name) if mode == "official" else self.step(name, backend, mode)
            self.warm(fn, "eager" if mode == "official" else mode)
            self.medians[key] = median_seconds(fn, repeat=repeat, warmup=0)
        return self.medians[key]

    def pass_costs(self, mode: str) -> PassCosts:
        """The per-pass costs of this run: eager, or compiled for the compiled and graphed
        rows (graphs remove launch gaps, not pass work)."""
        kind = "eager" if mode in ("eager", "official") else "compiled"
        if kind not in self._costs:
            self._costs[kind] = PassCosts(self.model, self.x, self.y, self.precision.autocast,
                                          self.setting.device, compiled=kind == "compiled")
        return self._costs[kind]

    def row(self, name: str, backend: str, mode: str, seconds: float) -> dict:
        """extra_info of a fastadv step row (mode eager/compiled/graphed) or an official row
        (mode "official"); ``seconds`` is the row's own median."""
        self.medians[(name, backend, mode)] = seconds
        structure = "official" if mode == "official" else "fastadv"
        counts = self.passes(name, structure)
        info = {"setting": self.setting.name, "model": self.setting.model,
                "batch": self.setting.batch, "amp": self.setting.amp, "method": name,
                "backend": backend, "mode": mode, "structure": structure,
                "passes": counts.as_dict(), "median_ms": round(1e3 * seconds, 3),
                "images_per_s": round(self.setting.batch / seconds, 1)}
        # an official row is compared with fastadv's eager standard step on the fused ops
        standard = ("standard", "fused", "eager") if mode == "official" else \
            ("standard", backend, mode)
        info["ratio_to_standard"] = round(seconds / self.median(*standard), 3)
        passes = self.pass_costs(mode).of(counts)
        info["passes_ms"] = round(1e3 * passes, 3)
        info["step_over_passes"] = round(seconds / passes, 3) if passes > 0 else None
        info["pass_costs_ms"] = self.pass_costs(mode).as_dict()
        if mode == "official":
            fastadv = self.step(name, "fused", "eager")
            if (name, "fused", "eager") not in self.medians:  # its row did not run before
                self.warm(fastadv, "eager")
            fastadv, official = interleaved_medians([fastadv, self.official(name)], self.pairs)
            info["fastadv_over_official"] = round(fastadv / official, 3)
        return info


def interleaved_medians(fns, repeat: int) -> List[float]:
    """The median seconds of each of ``fns`` (warm already), called in turn ``repeat``
    times."""
    samples = [[] for _ in fns]
    for _ in range(repeat):
        for fn, times in zip(fns, samples):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return [statistics.median(times) for times in samples]


_BENCHES: Dict[Setting, Bench] = {}


def bench(setting: Setting) -> Bench:
    """The run's Bench of ``setting``, built once (the one model every row of it times)."""
    if setting not in _BENCHES:
        _BENCHES[setting] = Bench(setting)
    return _BENCHES[setting]


def measure_rows(setting: Setting, cases, *, repeat: int = 3, official: bool = True,
                 report: Callable[[dict], None] = lambda row: None) -> List[dict]:
    """The rows of ``cases`` ((method, backend, mode) triples) and, with ``official``, the
    official row of each method that has one: what the script and gpu_check.py run.
    ``report`` sees every row as it is measured."""
    b = bench(setting)
    rows = []
    todo = list(cases) + ([(n, "official", "official") for n, _, m in cases
                           if m == "eager" and _ == "fused" and n in official_steps.STEPS]
                          if official else [])
    for name, backend, mode in sorted(todo, key=lambda c: c[0] != "standard"):
        fn = b.official(name) if mode == "official" else b.step(name, backend, mode)
        b.warm(fn, "eager" if mode == "official" else mode)
        seconds = median_seconds(fn, repeat=repeat, warmup=0)
        row = b.row(name, backend, mode, seconds)
        rows.append(row)
        report(row)
    return rows


def format_row(row: dict) -> str:
    """One printed line of a row: what it timed, ms, images/s, steps of standard training,
    passes (forwards+no-grad, input-only, full and double backwards), step over passes."""
    p = row["passes"]
    passes = (f"{p['forwards']}+{p['no_grad_forwards']}f {p['input_backwards']}i "
              f"{p['full_backwards']}b {p['double_backwards']}d")
    extra = (f" fastadv/official {row['fastadv_over_official']}"
             if "fastadv_over_official" in row else "")
    return (f"{row['setting']:>24} {row['method']:>18} {row['backend']:>9} {row['mode']:>8} "
            f"{row['median_ms']:>10.2f} ms {row['images_per_s']:>9.0f} img/s  "
            f"x{row['ratio_to_standard']:<6} passes {passes:<16} "
            f"step/passes {row['step_over_passes']}{extra}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--setting", default=None, help="e.g. small_cnn-b128 (default: the "
                        "device's settings)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--modes", default=None, help="eager,compiled,graphed")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", default=None, help="also write the rows to this file")
    args = parser.parse_args(argv)
    chosen = [setting_named(args.setting)] if args.setting else settings(args.device)
    rows = []
    for setting in chosen:
        modes = args.modes.split(",") if args.modes else setting.modes
        cases = [(n, b, m) for m in modes for b in args.backends.split(",")
                 for n in args.methods.split(",")]
        rows += measure_rows(setting, cases, repeat=args.repeat,
                             report=lambda row: print(format_row(row), flush=True))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
