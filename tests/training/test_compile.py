"""compile= and cuda_graphs= of train() (fastadv/training/compiled.py), on CPU.

Compiled steps use the "aot_eager" backend (AOTAutograd without code generation: what
compile= changes about autograd, at a fraction of inductor's compile time); inductor compiles
one Fast-BAT step (compiled passes beside its eager double-backward pass) in one slow test, and
the benchmarks' compiled rows. CUDA graphs cannot run here:
what is tested is the option handling, the fallbacks and GraphedStep's bookkeeping with a
stand-in runner whose replay re-runs the captured step; the capture itself, the replays'
different noise and the device LR are tested on a GPU (tests/gpu/test_gpu_training.py).
"""

import pytest
import torch
import torch.nn.functional as F

import fastadv
from fastadv import methods, ops
from fastadv.training.compiled import WARMUP_STEPS, PassRouter, StepOptions, TrainingStep
from fastadv.training.precision import Precision
from tests.methods.helpers import make
from tests.training.helpers import FAST, tiny_data, tiny_model

AOT = {"backend": "aot_eager"}
CPU = torch.device("cpu")
# how pass i of a step runs: eager where a create_graph backward goes through it, compiled
# with frozen parameters where only input gradients are taken from it, else compiled
E, I, C = "eager", "input-only", "compiled"
PLANS = {
    "fast_at": [I, C],
    "fast_bat": [I, E, C],  # z0, z (g_z with create_graph), delta* (input and parameters)
    "grad_align": [I, E, C],  # x + d0, x + eta (g2 with create_graph), x + d
    "trades": [C, I, I, C, C],  # no-grad clean target, 2 attack steps, the two loss passes
}
OPTIONS = {"fast_bat": {"alpha": 0.3}, "trades": {"steps": 2}}


# --- the options ------------------------------------------------------------------------

@pytest.mark.parametrize("compile,error,words", [
    (3, TypeError, "compile must be a bool"),
    ("fastest", ValueError, "compile must be one of"),
    ({"backen": "aot_eager"}, ValueError, "a key of compile must be one of"),
    ({"mode": "turbo"}, ValueError, "compile['mode'] must be one of"),
])
def test_compile_is_checked(compile, error, words):
    with pytest.raises(error, match=words.replace("[", r"\[").replace("]", r"\]")):
        StepOptions.resolve(compile, False, CPU)


def test_cuda_graphs_is_checked():
    with pytest.raises(TypeError, match="cuda_graphs must be a bool, got str"):
        StepOptions.resolve(False, "yes", CPU)


def test_reduce_overhead_is_the_whole_step_as_a_cuda_graph():
    options = StepOptions.resolve("reduce-overhead", False, "cuda")
    assert options.cuda_graphs and options.compile_kwargs == {}
    for graphs in (True, False):  # inductor's own CUDA graphs stay off
        assert StepOptions.resolve("max-autotune", graphs, "cuda").compile_kwargs == {
            "mode": "max-autotune-no-cudagraphs"}
    assert StepOptions.resolve(True, False, CPU).describe() == {
        "compile": {"backend": "inductor", "mode": "default"}, "cuda_graphs": False}


def test_cuda_graphs_on_cpu_warn_and_the_run_trains_eagerly():
    x, y = tiny_data()
    with pytest.warns(UserWarning, match="cuda_graphs=True needs a CUDA device"):
        result = fastadv.train(tiny_model(), "fast_at", (x, y), epochs=1, guard=False,
                               cuda_graphs=True, method_options={"eps": 0.1}, **FAST)
    assert result.config["cuda_graphs"] is False and result.config["compile"] is False
    with pytest.warns(UserWarning, match="needs a CUDA device"):
        assert not StepOptions.resolve("reduce-overhead", False, CPU).cuda_graphs


# --- compiled passes --------------------------------------------------------------------

def run_steps(name, compile_kwargs, steps=3, watch=None):
    """(model, step outputs, router) after ``steps`` training steps of the float64 tiny
    network of the method tests, with the same seeds whatever ``compile_kwargs``;
    ``watch(router)`` runs before the first step."""
    model, x, y = make(3)
    params = list(model.parameters())
    optimizer = torch.optim.SGD(params, lr=0.05, momentum=0.9)
    step = TrainingStep(methods.get(name, eps=0.1, **OPTIONS.get(name, {})), model, optimizer,
                        params, Precision(None, None, CPU, 2), StepOptions(compile_kwargs))
    if watch is not None:
        watch(step.router)
    torch.manual_seed(0)
    outputs = [step(x, y, 0.05).loss.detach() for _ in range(steps)]
    return model, outputs, step.router


@pytest.mark.parametrize("name", sorted(PLANS))
def test_compiled_passes_leave_the_double_backward_passes_eager(name):
    _, _, router = run_steps(name, AOT)
    assert router.plan == PLANS[name]
    compiled = len(PLANS[name]) - PLANS[name].count(E)
    assert router.compiled_passes() == (compiled, len(PLANS[name]))
    assert all(p.requires_grad for p in router.parameters())  # unfrozen between passes


@pytest.mark.parametrize("name", sorted(PLANS))
def test_frozen_and_full_passes_never_share_a_compiled_function(name):
    # torch 2.11's guards do not re-check a parameter's requires_grad: a graph traced with
    # the parameters frozen served a later full pass, which then silently returned no
    # parameter gradient. So each compiled function must only ever see one of the states.
    states = {"compiled": set(), "compiled_input_only": set()}

    def watch(router):
        for key in states:
            function = router.__dict__[key]

            def spy(*args, _key=key, _function=function, **kwargs):
                states[_key].add(all(p.requires_grad for p in router.trainable))
                return _function(*args, **kwargs)
            router.__dict__[key] = spy

    run_steps(name, AOT, watch=watch)
    assert states["compiled_input_only"] <= {False}  # frozen whenever it runs
    assert states["compiled"] == {True}
    assert bool(states["compiled_input_only"]) == (I in PLANS[name])


class GraphBreaking(torch.nn.Module):
    """A model whose forward dynamo cannot capture whole (a print or .item() would do)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        torch._dynamo.graph_break()
        return self.inner(x)


def test_a_model_with_a_graph_break_runs_its_input_only_passes_eagerly():
    def steps(compile_kwargs):
        model, x, y = make(3)
        net = GraphBreaking(model)
        params = list(net.parameters())
        step = TrainingStep(methods.get("fast_at", eps=0.1), net,
                            torch.optim.SGD(params, lr=0.05, momentum=0.9), params,
                            Precision(None, None, CPU, 2), StepOptions(compile_kwargs))
        torch.manual_seed(0)
        return net, [step(x, y, 0.05).loss.detach() for _ in range(3)], step.router

    eager_net, eager_losses, _ = steps(None)
    with pytest.warns(UserWarning, match="graph break, so its input-only passes"):
        net, losses, router = steps(AOT)
    assert router.plan == PLANS["fast_at"] and router.compiled_input_only is None
    torch.testing.assert_close(losses, eager_losses, rtol=1e-9, atol=1e-12)
    for a, b in zip(net.state_dict().values(), eager_net.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", ["fast_at", "fast_bat", "grad_align", "trades"])
def test_a_compiled_step_updates_the_model_as_an_eager_step(name):
    eager_model, eager_losses, _ = run_steps(name, None)
    compiled_model, compiled_losses, _ = run_steps(name, AOT)
    torch.testing.assert_close(compiled_losses, eager_losses, rtol=1e-9, atol=1e-12)
    for a, b in zip(compiled_model.state_dict().values(), eager_model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


class ChangingPasses(methods.Standard):
    """One pass in its first step, two in the next ones."""

    def loss(self, model, x, y):
        if getattr(self, "seen", False):
            model(x)
        object.__setattr__(self, "seen", True)
        return super().loss(model, x, y)


def test_a_method_whose_passes_change_runs_eagerly_with_a_warning():
    model, x, y = make(0)
    params = list(model.parameters())
    step = TrainingStep(ChangingPasses(), model, torch.optim.SGD(params, lr=0.1), params,
                        Precision(None, None, CPU, 2), StepOptions(AOT))
    step(x, y, 0.1)
    with pytest.warns(UserWarning, match="ran 2 network passes in a step after 1"):
        step(x, y, 0.1)
    assert step.router.all_eager and step.router.compiled_passes() == (0, 1)


def test_the_router_shows_the_model_once():
    model, _, _ = make(0)
    router = PassRouter(model, AOT)
    assert list(router.parameters()) == list(model.parameters())
    router.eval()
    assert not model.training and not model.bn.training


def test_train_with_compile_matches_eager_training():
    x, y = tiny_data()
    runs = [fastadv.train(tiny_model(), "fast_bat", (x, y), epochs=1, compile=compile,
                          method_options={"eps": 0.1, "alpha": 0.3}, **FAST)
            for compile in (False, AOT)]
    assert runs[1].config["compile"] == {"backend": "aot_eager", "mode": "default"}
    assert runs[1].history[0]["train_loss"] == pytest.approx(runs[0].history[0]["train_loss"],
                                                             rel=1e-5)


# --- the fused ops in a compiled graph ----------------------------------------------------

def test_model_passes_and_fused_ops_compile_into_one_graph():
    ops.available_backends("cpu")  # loads the backends first: the loader's lock is no trace
    model = tiny_model(channels=3, size=6).train()
    x = torch.rand(4, 3, 6, 6)
    y = torch.tensor([0, 1, 2, 0])
    graphs = []

    def keep_graph(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    def loss_at(x_adv, x, y, grad):
        x_adv = ops.pgd_step(x_adv, grad, x, alpha=0.02, eps=0.1)
        x_star, mask = ops.pgd_step_with_mask(x_adv, grad, x, alpha=0.02, eps=0.1)
        x_star = x_star + ops.masked_scale(grad, mask, 0.1)
        logits = model(x_star)
        return F.cross_entropy(logits, y) + ops.kl_div_logits(logits, model(x))

    def attack_and_loss(x, y, grad):
        return loss_at(ops.random_start(x, 0.1), x, y, grad)

    grad = torch.randn_like(x)
    torch.compile(attack_and_loss, backend=keep_graph, fullgraph=True)(x, y, grad)
    targets = {str(node.target) for node in graphs[0].graph.nodes
               if node.op == "call_function"}
    assert len(graphs) == 1
    assert {"fastadv.pgd_step.default", "fastadv.pgd_step_with_mask.default",
            "fastadv.masked_scale.default", "fastadv.kl_div_logits.default"} <= targets
    # with AOTAutograd the custom ops' backward (the fused KL's) runs in the compiled graph
    x_adv = (x + 0.05).clamp(0, 1)
    compiled = torch.compile(loss_at, backend="aot_eager", fullgraph=True)(x_adv, x, y, grad)
    eager = loss_at(x_adv, x, y, grad)
    torch.testing.assert_close(compiled, eager)
    for g_compiled, g_eager in zip(torch.autograd.grad(compiled, list(model.parameters())),
                                   torch.autograd.grad(eager, list(model.parameters()))):
        torch.testing.assert_close(g_compiled, g_eager)


def test_a_traced_random_start_draws_from_torchs_generator():
    x = torch.full((64, 3, 4, 4), 0.5)
    starts = [torch.compile(lambda t: ops.random_start(t, 0.1), backend="aot_eager",
                            fullgraph=True)(x) for _ in range(2)]
    assert not torch.equal(starts[0], starts[1])  # not a seed frozen into the graph
    for start in starts:
        assert (start - x).abs().max() <= 0.1 and start.std() > 0.02


# --- CUDA-graph bookkeeping, with a stand-in runner ------------------------------------------

class ReplayingRunner:
    """Stands in for CudaGraphRunner on CPU. A capture records without running anything, so
    the stand-in runs the step once for its outputs and then puts back what that changed (the
    model's tensors, the optimizer's momentum, the RNG); a replay runs the step again and
    writes its results into the tensors the capture returned, as a real replay rewrites its
    static outputs (and its gradients)."""

    def __init__(self, fail=False):
        self.fail, self.warmups, self.replays = fail, 0, 0
        self.model = self.optimizer = None

    def warmup(self, fn):
        self.warmups += 1
        return fn()

    def capture(self, fn):
        if self.fail:
            raise RuntimeError("operation not permitted when stream is capturing")
        saved = [t.detach().clone() for t in self.tensors()]
        rng = torch.get_rng_state()
        self.fn, self.out = fn, fn()
        with torch.no_grad():
            for t, before in zip(self.tensors(), saved):
                t.copy_(before)
        torch.set_rng_state(rng)
        return self.out

    def tensors(self):
        state = [t for entry in self.optimizer.state.values() for t in entry.values()
                 if isinstance(t, torch.Tensor)]
        return [*self.model.state_dict().values(), *state]

    def replay(self):
        self.replays += 1
        with torch.no_grad():  # a replay writes the gradients, where a backward adds to them
            for p in self.model.parameters():
                if p.grad is not None:
                    p.grad.zero_()
        new = self.fn()
        with torch.no_grad():
            for static, fresh in zip([self.out.loss, self.out.logits, *self.out.metrics.values()],
                                     [new.loss, new.logits, *new.metrics.values()]):
                static.copy_(fresh)


def graphed_run(runner, steps=6, batches=None):
    model, x, y = make(4)
    params = list(model.parameters())
    optimizer = torch.optim.SGD(params, lr=0.05, momentum=0.9, weight_decay=5e-4)
    step = TrainingStep(methods.get("fast_at", eps=0.1), model, optimizer, params,
                        Precision(None, None, CPU, 2), StepOptions(), runner=runner)
    if runner is not None:
        runner.model, runner.optimizer = model, optimizer
    torch.manual_seed(0)
    outs = [step(bx, by, 0.05) for bx, by in (batches or [(x, y)] * steps)]
    return model, optimizer, step, outs


def test_graphed_step_warms_up_captures_once_and_replays():
    runner = ReplayingRunner()
    model, optimizer, step, outs = graphed_run(runner)
    assert (runner.warmups, runner.replays) == (3, 3) and step.graphed.captured
    assert outs[3] is outs[4] is outs[5]  # the static outputs, rewritten by every replay
    assert not torch.equal(outs[3].loss, torch.zeros(())) and outs[5].loss.grad_fn is None
    group = optimizer.param_groups[0]  # after the capture the groups hold plain numbers again
    assert isinstance(group["lr"], float) and group["fused"] is None
    eager_model, _, _, _ = graphed_run(None)  # the same steps without graphs
    for a, b in zip(model.state_dict().values(), eager_model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-9)


def test_a_batch_of_another_shape_runs_eagerly_after_the_capture():
    _, x, y = make(4)
    batches = [(x, y)] * 5 + [(x[:3], y[:3])]
    _, _, step, outs = graphed_run(ReplayingRunner(), batches=batches)
    assert step.graphed.eager_batches == 1 and outs[-1].logits.shape[0] == 3


def test_a_failed_capture_warns_and_the_step_runs_eagerly():
    with pytest.warns(UserWarning, match="capturing the fast_at step failed"):
        model, _, step, outs = graphed_run(ReplayingRunner(fail=True))
    assert not step.graphed.captured and all(p.grad is not None for p in model.parameters())


class ReadsOnTheHost(Precision):
    def host_read_per_step(self):
        return "this precision reads a flag every step"


def test_a_precision_that_reads_on_the_host_is_not_captured():
    model, x, y = make(0)
    params = list(model.parameters())
    with pytest.warns(UserWarning, match="reads a flag every step; the step runs without"):
        step = TrainingStep(methods.get("fast_at"), model, torch.optim.SGD(params, lr=0.1),
                            params, ReadsOnTheHost(None, None, CPU, 2), StepOptions(),
                            runner=ReplayingRunner())
    assert step.graphed is None


def test_another_optimizer_steps_eagerly_after_each_replay():
    model, x, y = make(0)
    params = list(model.parameters())
    with pytest.warns(UserWarning, match="Adam's step runs eagerly after each replay"):
        step = TrainingStep(methods.get("fast_at"), model, torch.optim.Adam(params, lr=1e-3),
                            params, Precision(None, None, CPU, 2), StepOptions(),
                            runner=ReplayingRunner())
    step.graphed.runner.model, step.graphed.runner.optimizer = model, step.optimizer
    for _ in range(WARMUP_STEPS + 1):  # the warm-up steps, then the capture
        step(x, y, 1e-3)
        model.zero_grad(set_to_none=True)  # as train() does at the end of an epoch
    assert step.graphed.captured
    for _ in range(2):  # replays only: each must be followed by Adam's eager step
        before = [p.detach().clone() for p in params]
        step(x, y, 1e-3)
        assert all(not torch.equal(a, p) for a, p in zip(before, params))


@pytest.mark.slow  # inductor builds C++ for the two compiled passes: ~40 s on 2 cores, cold
def test_inductor_compiles_a_training_step():
    eager_model, eager_losses, _ = run_steps("fast_bat", None, steps=2)
    model, losses, router = run_steps("fast_bat", {}, steps=2)
    assert router.plan == PLANS["fast_bat"]
    torch.testing.assert_close(losses, eager_losses, rtol=1e-6, atol=1e-9)
