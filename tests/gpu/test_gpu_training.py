"""Training steps on the GPU: every method in bf16 with channels_last and no host
synchronisation (torch.cuda.set_sync_debug_mode("error") around the steps), a compiled step
(inductor), and CUDA-graph steps: the whole step captured once and replayed, each replay
drawing new random starts, the captured SGD step reading its LR from the device, the same
updates as eager steps, Fast-BAT's double backward inside the graph."""
import contextlib

import pytest
import torch
from torch import nn

from fastadv import methods, ops
from fastadv.methods import StepOutput
from fastadv.training.compiled import StepOptions, TrainingStep
from fastadv.training.precision import Precision

OPTIONS = {"pgd_at": {"steps": 2}, "trades": {"steps": 2}, "fast_bat": {"alpha": 0.3}}


def net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.Softplus(),
                         nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, 10)).cuda()


def batch(n=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, 16, 16, generator=g).cuda()
    return x.contiguous(memory_format=torch.channels_last), \
        torch.randint(0, 10, (n,), generator=g).cuda()


def make_step(method, *, amp="bf16", compile=False, cuda_graphs=False, channels_last=True):
    model = net()
    precision = Precision(amp, channels_last, torch.device("cuda"), 3, grad_clip=5.0)
    precision.prepare_model(model)
    params = list(model.parameters())
    optimizer = torch.optim.SGD(params, lr=0.05, momentum=0.9, weight_decay=5e-4)
    options = StepOptions.resolve(compile, cuda_graphs, "cuda")
    return model, TrainingStep(method, model, optimizer, params, precision, options)


@contextlib.contextmanager
def no_sync():
    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode(previous)


@pytest.mark.parametrize("name", methods.available())
def test_every_method_steps_in_bf16_channels_last_without_a_host_sync(name):
    assert ops.available_backends("cuda")[0] in ("triton", "cuda")
    model, step = make_step(methods.get(name, eps=8 / 255, **OPTIONS.get(name, {})))
    x, y = batch()
    step(x, y, 0.05)  # the first step compiles the Triton kernels
    with no_sync():
        losses = [step(x, y, 0.05).loss for _ in range(3)]
    assert torch.isfinite(torch.stack(losses)).all()
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)


def test_a_compiled_step_runs_the_double_backward_pass_eagerly():
    _, step = make_step(methods.get("fast_bat", alpha=0.3), compile=True)
    x, y = batch()
    losses = [step(x, y, 0.05).loss for _ in range(3)]
    assert step.router.plan == ["input-only", "eager", "compiled"]
    assert torch.isfinite(torch.stack(losses)).all()


class RecordsItsStart(methods.FastAT):
    """Fast AT whose metrics carry the sum of its random start."""

    def loss(self, model, x, y):
        out = super().loss(model, x, y)
        start = ops.random_start(x, self.eps)
        return StepOutput(out.loss, out.logits, {**out.metrics, "start": start.sum()})


def test_two_replays_draw_different_random_starts():
    _, step = make_step(RecordsItsStart(), cuda_graphs=True)
    x, y = batch()
    starts = [step(x, y, 0.05).metrics["start"].clone() for _ in range(6)]
    assert step.graphed.captured and step.graphed.failure is None
    replayed = torch.stack(starts[3:])  # steps 4 to 6 are replays of one graph
    assert replayed.unique().numel() == 3, replayed


def test_a_captured_random_start_draws_new_noise_on_every_replay():
    x = torch.full((64, 3, 8, 8), 0.5, device="cuda")
    ops.random_start(x, 0.1)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static = ops.random_start(x, 0.1)
    draws = []
    for _ in range(2):
        graph.replay()
        draws.append(static.clone())
    assert not torch.equal(draws[0], draws[1])
    assert all((d - x).abs().max() <= 0.1 for d in draws)


def test_the_captured_sgd_step_reads_its_lr_from_the_device():
    model, step = make_step(methods.get("fast_at"), cuda_graphs=True)
    x, y = batch()
    for _ in range(4):
        step(x, y, 0.05)
    assert step.graphed.captured and step.graphed.optimizer_in_graph
    before = [p.detach().clone() for p in model.parameters()]
    step(x, y, 0.0)
    assert all(torch.equal(a, p) for a, p in zip(before, model.parameters()))
    step(x, y, 0.05)
    assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters()))


def test_graphed_steps_update_the_model_as_eager_steps():
    # FGSM from a zero start draws no random numbers, so both runs see the same steps
    runs = []
    for graphs in (False, True):
        model, step = make_step(methods.get("fast_at", init="zero"), amp=False,
                                channels_last=False, cuda_graphs=graphs)
        for seed in range(6):
            step(*batch(seed=seed % 2), 0.05)
        runs.append(model)
    for a, b in zip(runs[0].state_dict().values(), runs[1].state_dict().values()):
        torch.testing.assert_close(a.float(), b.float(), rtol=1e-3, atol=1e-4)


def test_compiled_and_graphed_fast_bat_step():
    _, step = make_step(methods.get("fast_bat", alpha=0.3), compile="reduce-overhead")
    x, y = batch()
    losses = [step(x, y, 0.05).loss.clone() for _ in range(6)]
    assert step.graphed.captured and step.router.plan == ["input-only", "eager", "compiled"]
    assert torch.isfinite(torch.stack(losses)).all()
