"""How train() runs one training step: eagerly, with the model compiled (``compile=``), or
replayed from a CUDA graph (``cuda_graphs=``).

    options = StepOptions.resolve(compile, cuda_graphs, device)
    step = TrainingStep(method, model, optimizer, params, precision, options)
    out = step(x, y, lr)        # the method's StepOutput; lr is this step's learning rate

Eager (the default): set the LR, zero the gradients, ``method.loss`` under autocast, then the
backward, the optional clipping and the optimizer step (training.precision).

``compile=`` (True, a torch.compile mode, or a dict of torch.compile arguments such as
``{"backend": "aot_eager"}``): the method sees a :class:`PassRouter`, an nn.Module around the
model that runs each of the method's network passes compiled or eagerly. AOTAutograd cannot
differentiate a compiled graph twice, so a pass whose graph the method differentiates with
``create_graph=True`` (Fast-BAT's g_z, GradAlign's g2, whatever a user's method does) must run
on the eager module. And a compiled graph's backward computes every gradient it was compiled
for, so a pass the method takes only an input gradient from (every attack step) must be
compiled with the parameters frozen, or its input-only backward becomes a full one. Both are
observed, not listed: the first step runs every pass eagerly while hooks record, per pass,
whether a backward through it ran in grad mode (inside the autograd engine, grad mode on means
create_graph) and whether a backward through it computed a parameter gradient; from then on
the create_graph passes run eagerly, the input-only ones compiled with frozen parameters and
the rest compiled (PassRouter.plan). The fused ops run eagerly between the passes: they are
torch.library custom ops and trace into a compiled graph without a break
(tests/training/test_compile.py compiles model passes and op calls with fullgraph=True), but
torch.autograd.grad, which every attack calls between passes, is where a trace would stop.
Inductor's own CUDA graphs stay off in every mode ("max-autotune" becomes
"max-autotune-no-cudagraphs"): they would hold only single passes, and fastadv captures the
whole step instead.

``cuda_graphs=True`` (or the compile mode "reduce-overhead"): on CUDA the whole step (the
method's passes and ops, the backward, the clipping and, for torch.optim.SGD, the optimizer
step) becomes one CUDA graph (:class:`GraphedStep`): a few eager warm-up steps on a side
stream, one capture on static input buffers, then per batch a copy into them and a replay.
What a replay cannot change is handled so: the batch shape is fixed (fastadv's loaders drop
the last partial batch; a batch of another shape runs eagerly); the random starts draw from
torch's device generator, whose Philox offset lives on the device and advances on every replay
(fastadv.ops.random_start switches to it while a capture is on), so every step draws new
noise; the learning rate is a device tensor the captured SGD step reads, refilled before each
replay. fp16 (its GradScaler reads a device flag on the host every step), an optimizer other
than SGD (its step then runs eagerly after each replay) and a CPU device are said in a warning
and fall back.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import warnings
from typing import Callable, List, Optional, Tuple

import torch
from torch import nn

from fastadv import ops
from fastadv._checks import check_bool, check_choice
from fastadv.methods import StepOutput
from fastadv.training.precision import Precision

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
COMPILE_KEYS = ("backend", "mode", "fullgraph", "dynamic", "options")
# eager steps before the capture: the first one also learns which passes stay eager, the
# next ones compile the remaining variants and fill the allocator, autotuners and the
# optimizer's momentum buffers (torch's own examples warm up for 3 steps too)
WARMUP_STEPS = 3


@dataclasses.dataclass(frozen=True)
class StepOptions:
    """What train() made of ``compile=`` and ``cuda_graphs=`` on one device.

    compile_kwargs: the keyword arguments of torch.compile, None for an eager model.
    cuda_graphs: whether the step is captured into a CUDA graph.
    """
    compile_kwargs: Optional[dict] = None
    cuda_graphs: bool = False

    @classmethod
    def resolve(cls, compile=False, cuda_graphs: bool = False, device="cpu") -> "StepOptions":
        """``compile``: False (or None), True, one of COMPILE_MODES, or a dict with keys from
        COMPILE_KEYS. Mode "reduce-overhead" means cuda_graphs=True: fastadv captures the
        whole step itself, so inductor's own CUDA graphs (which would cover only the model
        passes, and would nest inside that capture) are off in every mode.
        ``cuda_graphs`` on a device other than CUDA warns and is dropped."""
        check_bool("cuda_graphs", cuda_graphs)
        kwargs = _compile_kwargs(compile)
        mode = (kwargs or {}).get("mode")
        asked = "cuda_graphs=True" if cuda_graphs else f"compile mode {mode!r}"
        if mode == "reduce-overhead":
            cuda_graphs = True
            kwargs = {k: v for k, v in kwargs.items() if k != "mode"}
        elif mode == "max-autotune":
            kwargs = {**kwargs, "mode": "max-autotune-no-cudagraphs"}
        if cuda_graphs and torch.device(device).type != "cuda":
            warnings.warn(f"{asked} needs a CUDA device (CUDA graphs); on {torch.device(device)} "
                          f"the step runs without CUDA graphs", stacklevel=3)
            cuda_graphs = False
        return cls(kwargs, cuda_graphs)

    def describe(self) -> dict:
        """The run config's record of the fast-path options."""
        if self.compile_kwargs is None:
            compiled = False
        else:
            compiled = {"backend": "inductor", "mode": "default", **self.compile_kwargs}
        return {"compile": compiled, "cuda_graphs": self.cuda_graphs}


def _compile_kwargs(compile) -> Optional[dict]:
    if compile is None or compile is False:
        return None
    if compile is True:
        return {}
    if isinstance(compile, str):
        return {"mode": check_choice("compile", compile, COMPILE_MODES)}
    if isinstance(compile, dict):
        for key in compile:
            check_choice("a key of compile", key, COMPILE_KEYS)
        if "mode" in compile and compile["mode"] is not None:
            check_choice("compile['mode']", compile["mode"], COMPILE_MODES)
        return dict(compile)
    raise TypeError(f"compile must be a bool, a torch.compile mode ({', '.join(COMPILE_MODES)}) "
                    f"or a dict of torch.compile arguments, got {type(compile).__name__} "
                    f"({compile!r})")


EAGER, COMPILED, INPUT_ONLY = "eager", "compiled", "input-only"


class PassRouter(nn.Module):
    """The model as a method sees it under compile= (see the module docstring): pass i of a
    step runs as ``plan[i]`` says, learnt in the first step (None until it ends):

    - "eager": a create_graph backward goes through it (a compiled graph cannot be
      differentiated twice);
    - "input-only": compiled, with the parameters frozen while it runs: no backward through it
      asked for a parameter gradient (an attack's pass), and a compiled graph's backward would
      otherwise compute every parameter gradient it was compiled for, turning the attack's
      input-only backwards into full ones;
    - "compiled": compiled as it is.

    The eager model is a registered submodule, so bn_mode(), .parameters() and hooks reach
    the real model; the compiled wrapper (which shares its parameters) is not, so nothing is
    listed twice."""

    def __init__(self, model: nn.Module, compile_kwargs: dict):
        super().__init__()
        self.model = model
        self.__dict__["compiled"] = torch.compile(model, **compile_kwargs)
        # the input-only passes go through a compiled function of their own, captured whole
        # (fullgraph): dynamo keeps its graphs per code object, so a graph traced with the
        # parameters frozen can never serve a pass that needs their gradients. Guards cannot
        # be trusted with that: torch 2.11 does not re-check a parameter's requires_grad (its
        # dict-tag guards skip it), and a frozen graph then silently returned no parameter
        # gradient. Whole, because a graph break would compile the rest of the model's
        # forward on the model's own code objects, shared with the full passes again.
        self.__dict__["compiled_input_only"] = compile_input_only(compile_kwargs)
        self.__dict__["model_buffers"] = tuple(model.buffers())
        self.__dict__["trainable"] = tuple(p for p in model.parameters() if p.requires_grad)
        # DDP expects the gradients of the parameters it saw require grad in a forward
        self.freezes = not isinstance(model, nn.parallel.DistributedDataParallel)
        self.plan: Optional[List[str]] = None
        self.all_eager = False
        self._calls = 0
        self._probe: Optional[_FirstStepProbe] = None

    def forward(self, *args, **kwargs):
        index = self._calls
        self._calls += 1
        if self.plan is None:
            out = self.model(*args, **kwargs)
            self._probe.watch(out)
            return out
        how = EAGER if self.all_eager or index >= len(self.plan) else self.plan[index]
        if how == EAGER:
            return self.model(*args, **kwargs)
        frozen = how == INPUT_ONLY and self.freezes and torch.is_grad_enabled()
        # A compiled train-mode pass writes the batch-norm statistics back with copy_, which
        # bumps their version counters; eager batch norm writes them in its kernel, without.
        # Graphs that eager passes saved earlier in the step hold those buffers, and a double
        # backward through them would then refuse to run; so the pass updates them as eager
        # batch norm does (train-mode batch norm's gradient does not read them).
        with torch.autograd._unsafe_preserve_version_counter(self.model_buffers):
            if frozen:
                with frozen_parameters(self.trainable):
                    return self._input_only(*args, **kwargs)
            return self.compiled(*args, **kwargs)

    def _input_only(self, *args, **kwargs):
        """An input-only pass: compiled as one graph, or eagerly from the first time dynamo
        cannot capture the model whole (said once in a warning)."""
        compiled = self.__dict__["compiled_input_only"]
        if compiled is not None:
            try:
                return compiled(self.model, *args, **kwargs)
            except torch._dynamo.exc.Unsupported as exc:  # a graph break in the model
                warnings.warn(f"compile: the model's forward has a graph break, so its "
                              f"input-only passes (the attack steps) run eagerly; the other "
                              f"passes stay compiled. ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0]})", stacklevel=4)
                self.__dict__["compiled_input_only"] = None
        return self.model(*args, **kwargs)

    def start_step(self) -> None:
        self._calls = 0
        if self.plan is None and self._probe is None:
            self._probe = _FirstStepProbe(self.trainable)

    def finish_step(self, method_name: str) -> None:
        if self.plan is None:
            self.plan, self._probe = self._probe.plan(), None
        elif self._calls != len(self.plan) and not self.all_eager:
            # the passes are matched by their order in the step; a method whose number of
            # passes changes cannot be matched, and a compiled pass that a create_graph
            # backward reaches would fail, so the rest of the run stays eager
            warnings.warn(f"compile: {method_name} ran {self._calls} network passes in a step "
                          f"after {len(self.plan)} in its first; its passes run eagerly from "
                          f"now on", stacklevel=3)
            self.all_eager = True

    def compiled_passes(self) -> Optional[Tuple[int, int]]:
        """(compiled passes, passes) per step, once the first step has run."""
        if self.plan is None:
            return None
        compiled = 0 if self.all_eager else sum(how != EAGER for how in self.plan)
        return compiled, len(self.plan)


def _input_only_pass(model: nn.Module, *args, **kwargs):
    """``model(*args, **kwargs)`` in a code object that no other pass runs through."""
    return model(*args, **kwargs)


def compile_input_only(compile_kwargs: dict) -> Callable:
    """``f(model, *args)``: the model's pass compiled for use with its parameters frozen
    (:func:`frozen_parameters`), as one graph of its own (see PassRouter.__init__ for why a
    compiled model must not serve these passes); a model with a graph break raises
    torch._dynamo.exc.Unsupported."""
    return torch.compile(_input_only_pass, **{**compile_kwargs, "fullgraph": True})


@contextlib.contextmanager
def frozen_parameters(params):
    """``params`` do not require grad inside the block: a forward there records no path to
    them, so a backward through it computes input gradients only."""
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


class _FirstStepProbe:
    """What PassRouter learns in the first step, all passes eager: per pass, whether its
    output requires grad, whether a backward through it ran in grad mode (inside the autograd
    engine, grad mode on means create_graph), and which backward calls (graph tasks) went
    through it; hooks on the parameters record the calls that computed a parameter gradient."""

    def __init__(self, params):
        self.passes: List[dict] = []
        self.parameter_tasks = set()
        self.handles = [p.register_hook(self._parameter_grad) for p in params]

    def watch(self, out) -> None:
        seen = {"grad": isinstance(out, torch.Tensor) and out.requires_grad,
                "create_graph": False, "tasks": set()}
        self.passes.append(seen)
        if seen["grad"]:
            out.register_hook(functools.partial(self._backward_through, seen))

    @staticmethod
    def _backward_through(seen: dict, grad) -> None:
        seen["tasks"].add(torch._C._current_graph_task_id())
        if torch.is_grad_enabled():
            seen["create_graph"] = True

    def _parameter_grad(self, grad) -> None:
        self.parameter_tasks.add(torch._C._current_graph_task_id())

    def plan(self) -> List[str]:
        for handle in self.handles:
            handle.remove()
        return [EAGER if seen["create_graph"] else
                INPUT_ONLY if seen["grad"] and not seen["tasks"] & self.parameter_tasks else
                COMPILED for seen in self.passes]


class CudaGraphRunner:
    """torch.cuda.CUDAGraph as GraphedStep uses it: warm-up work on a side stream, capture and
    replay with the step's device made current (a graph launches on the current device's
    stream), capture errors counted for this thread only (other threads may use CUDA)."""

    def __init__(self, device):
        self.device = torch.device(device)
        self.graph = None
        self.side_stream = None

    def warmup(self, fn: Callable):
        with torch.cuda.device(self.device):
            if self.side_stream is None:
                self.side_stream = torch.cuda.Stream()
            self.side_stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(self.side_stream):
                out = fn()
            torch.cuda.current_stream().wait_stream(self.side_stream)
        return out

    def capture(self, fn: Callable):
        with torch.cuda.device(self.device):
            torch.cuda.synchronize()  # once per run: the warm-up work is done before capture
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                out = fn()
        self.graph = graph
        return out

    def replay(self) -> None:
        with torch.cuda.device(self.device):
            self.graph.replay()


def captures_optimizer(optimizer: torch.optim.Optimizer) -> bool:
    """Whether the optimizer step can join the graph: torch.optim.SGD, stepped by its fused
    kernel, which reads the LR from a device tensor (its default foreach step turns a tensor
    LR into a host number, which a capture forbids)."""
    if type(optimizer) is not torch.optim.SGD:
        return False
    return all(p.is_floating_point() and not group.get("differentiable", False)
               for group in optimizer.param_groups for p in group["params"])


class GraphedStep:
    """The step as one CUDA graph (see the module docstring). ``body(x, y, step_optimizer)``
    is TrainingStep's eager step without the zero_grad; ``runner`` is a CudaGraphRunner (a
    test may pass a stand-in with the same three methods)."""

    def __init__(self, body: Callable, optimizer: torch.optim.Optimizer,
                 params: List[torch.Tensor], runner, method_name: str,
                 warmup_steps: int = WARMUP_STEPS):
        self.body, self.optimizer, self.params, self.runner = body, optimizer, params, runner
        self.method_name = method_name
        self.warmup_steps = warmup_steps
        self.optimizer_in_graph = captures_optimizer(optimizer)
        if not self.optimizer_in_graph:
            warnings.warn(f"cuda_graphs: {type(optimizer).__name__}'s step runs eagerly after "
                          f"each replay (the graph holds the optimizer step of torch.optim.SGD "
                          f"only)", stacklevel=3)
        self.steps = 0
        self.outputs: Optional[StepOutput] = None
        self.failure: Optional[str] = None
        self.static_x = self.static_y = self.lr = None
        self.grads: List[Optional[torch.Tensor]] = []
        self.eager_batches = 0  # batches of another shape than the captured one

    @property
    def captured(self) -> bool:
        return self.outputs is not None

    def __call__(self, x: torch.Tensor, y: torch.Tensor, lr: float) -> StepOutput:
        if not self.captured and self.failure is None and self.steps >= self.warmup_steps:
            self._capture(x, y, lr)
        self.steps += 1
        if not self.captured:
            if self.failure is not None:
                return self._eager(x, y)
            return self.runner.warmup(functools.partial(self._eager, x, y))
        if x.shape != self.static_x.shape or y.shape != self.static_y.shape or \
                x.dtype != self.static_x.dtype:
            self.eager_batches += 1
            return self._eager(x, y)
        self.static_x.copy_(x)
        self.static_y.copy_(y)
        self.lr.fill_(lr)
        self.runner.replay()
        if not self.optimizer_in_graph:
            # the graph wrote the gradients into its own tensors; the eager step reads .grad
            for p, g in zip(self.params, self.grads):
                p.grad = g
            self.optimizer.step()
        return self.outputs

    def _eager(self, x, y) -> StepOutput:
        self.optimizer.zero_grad(set_to_none=True)
        return self.body(x, y, step_optimizer=True)

    def _capture(self, x, y, lr) -> None:
        self.static_x = x.clone()  # clone keeps a dense layout: channels_last stays so
        self.static_y = y.clone()
        self.lr = torch.tensor(float(lr), dtype=torch.float32, device=x.device)
        saved = [(group["lr"], group.get("fused"), group.get("foreach"))
                 for group in self.optimizer.param_groups]
        if self.optimizer_in_graph:
            for group in self.optimizer.param_groups:
                group.update(lr=self.lr, fused=True, foreach=False)
        # the gradients the backward allocates during capture belong to the graph
        self.optimizer.zero_grad(set_to_none=True)
        try:
            out = self.runner.capture(functools.partial(
                self.body, self.static_x, self.static_y, step_optimizer=self.optimizer_in_graph))
        except Exception as exc:  # any capture failure leaves a working eager step
            self.failure = f"{type(exc).__name__}: {exc}"
            self.optimizer.zero_grad(set_to_none=True)
            warnings.warn(f"cuda_graphs: capturing the {self.method_name} step failed "
                          f"({self.failure}); the step runs eagerly", stacklevel=3)
            return
        finally:
            # the captured kernels keep reading self.lr; the groups go back to plain numbers
            # so checkpoints and eager steps see what they always see
            for group, (group_lr, fused, foreach) in zip(self.optimizer.param_groups, saved):
                group.update(lr=float(lr) if self.optimizer_in_graph else group_lr,
                             fused=fused, foreach=foreach)
        self.grads = [p.grad for p in self.params]
        self.outputs = StepOutput(out.loss.detach(), out.logits.detach(),
                                  {k: v.detach() for k, v in out.metrics.items()})


class TrainingStep:
    """One optimisation step of train() on a batch that is already on the device (see the
    module docstring). ``runner`` replaces the CudaGraphRunner (tests)."""

    def __init__(self, method, model: nn.Module, optimizer: torch.optim.Optimizer,
                 params: List[torch.Tensor], precision, options: StepOptions, *,
                 runner=None):
        self.method, self.model, self.optimizer = method, model, optimizer
        self.params, self.precision, self.options = list(params), precision, options
        self.method_name = getattr(method, "name", type(method).__name__)
        self.router = (PassRouter(model, options.compile_kwargs)
                       if options.compile_kwargs is not None else None)
        self.graphed: Optional[GraphedStep] = None
        if options.cuda_graphs or runner is not None:
            blocker = precision.host_read_per_step()
            if isinstance(model, nn.parallel.DistributedDataParallel):
                # DDP's gradient all-reduce runs from autograd hooks on its own streams
                blocker = "a DistributedDataParallel model's all-reduce is not captured"
            if blocker is not None:
                warnings.warn(f"cuda_graphs: {blocker}; the step runs without CUDA graphs",
                              stacklevel=2)
            else:
                device = self.params[0].device if self.params else torch.device("cuda")
                self.graphed = GraphedStep(self._body, optimizer, self.params,
                                           runner or CudaGraphRunner(device), self.method_name)

    def __call__(self, x: torch.Tensor, y: torch.Tensor, lr: float) -> StepOutput:
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        if self.graphed is not None:
            return self.graphed(x, y, lr)
        self.optimizer.zero_grad(set_to_none=True)
        return self._body(x, y)

    def _body(self, x: torch.Tensor, y: torch.Tensor, step_optimizer: bool = True) -> StepOutput:
        network = self.router if self.router is not None else self.model
        if self.router is not None:
            self.router.start_step()
        with self.precision.autocast():
            out = self.method.loss(network, x, y)
        if out.loss.dim() != 0:
            raise ValueError(f"method {self.method_name} returned a loss of shape "
                             f"{tuple(out.loss.shape)}; it must be a scalar")
        self.precision.backward(out.loss, self.optimizer, self.params)
        if step_optimizer:
            self.precision.apply(self.optimizer)
        if self.router is not None:
            self.router.finish_step(self.method_name)
        return out

    def describe(self) -> dict:
        return self.options.describe()


def fast_path_summary(device, image_channels: int, *, amp=None, compile=False,
                      cuda_graphs: bool = False) -> str:
    """One line naming what a run on ``device`` uses: autocast, memory format, loader, fused
    ops backend, compile and CUDA graphs (fastadv train prints it before training)."""
    device = torch.device(device)
    with warnings.catch_warnings():  # train() itself warns about what it drops
        warnings.simplefilter("ignore")
        precision = Precision(amp, None, device, image_channels).describe()
        options = StepOptions.resolve(compile, cuda_graphs, device)
    backend = ops.available_backends(device)[0]
    compiled = options.describe()["compile"]
    parts = [f"{precision['amp']} autocast" if precision["amp"] else "full precision",
             "channels_last" if precision["channels_last"] else "contiguous (NCHW) images",
             "device-resident loader",
             f"fused ops ({backend})" if backend != "reference"
             else "reference ops (no fused backend built)",
             f"compiled ({compiled['backend']}, {compiled['mode']})" if compiled
             else "not compiled",
             "CUDA graphs" if options.cuda_graphs else "no CUDA graphs"]
    return f"fast path on {device}: " + ", ".join(parts)
