"""What the network passes of a step cost on one model and batch, measured in the run that
uses them: the yardstick "passes" of the step benchmark, the cost of the passes a method
cannot avoid (its counts from pass_counts.py times these costs).

Kinds, as pass_counts.PassCounts counts them: a forward with a graph, a forward without one,
an input-only backward, a full backward (parameter gradients), the extra cost of a
create_graph backward over an input-only one, a double backward. Each is the median of a few
timed calls minus the median of the calls it builds on (a backward is timed with its forward
and the forward's time is taken off). Compiled costs time a compiled model, except
create_graph and double backward, which never run compiled (a compiled graph cannot be
differentiated twice); a compiled input-only backward freezes the parameters during its
forward, as PassRouter does. A kind is measured the first time a count needs it.
"""
from __future__ import annotations

import functools
from typing import Callable, Dict

import torch
import torch.nn.functional as F

from fastadv.ops.benchmark import median_seconds, synchronized
from fastadv.training.compiled import compile_input_only, frozen_parameters

KINDS = ("forwards", "no_grad_forwards", "input_backwards", "full_backwards",
         "create_graph_backwards", "double_backwards")


class PassCosts:
    def __init__(self, model, x, y, autocast: Callable, device: str, compiled: bool):
        self.model, self.x, self.y, self.autocast = model, x, y, autocast
        self.device, self.compiled = device, compiled
        self.net = torch.compile(model, dynamic=False) if compiled else model
        # the frozen-parameter passes compiled apart, as PassRouter compiles them
        self.input_only = compile_input_only({"dynamic": False}) if compiled else None
        self.params = tuple(p for p in model.parameters() if p.requires_grad)
        self._calls: Dict[str, float] = {}  # median seconds of each timed call
        self._costs: Dict[str, float] = {}  # seconds of one pass of each kind
        self._v = torch.randn_like(x)

    def _timed(self, name: str, fn: Callable[[], object]) -> float:
        if name not in self._calls:
            warmup = 2 if self.compiled else 1
            self._calls[name] = median_seconds(synchronized(fn, self.device), repeat=3,
                                               warmup=warmup)
        return self._calls[name]

    def _input(self):
        return self.x.detach().requires_grad_(True)

    def _loss(self, net, x):
        with self.autocast():
            return F.cross_entropy(net(x), self.y)

    def _create_graph(self):
        x = self._input()
        return torch.autograd.grad(self._loss(self.model, x), x, create_graph=True)[0]

    def _full_backward(self):
        self._loss(self.net, self.x).backward()
        self.model.zero_grad(set_to_none=True)

    def _double_backward(self):
        (self._create_graph() * self._v).sum().backward()
        self.model.zero_grad(set_to_none=True)

    def _no_grad_forward(self):
        with torch.no_grad(), self.autocast():
            self.net(self.x)

    def _forward(self) -> float:
        return self._timed("forward", lambda: self._loss(self.net, self._input()))

    def _input_backward(self):
        x = self._input()
        if not self.compiled:
            return torch.autograd.grad(self._loss(self.model, x), x)
        # as PassRouter runs an attack's pass: with the parameters frozen, else the compiled
        # backward computes their gradients too
        with frozen_parameters(self.params):
            loss = self._loss(functools.partial(self.input_only, self.model), x)
        return torch.autograd.grad(loss, x)

    def seconds(self, kind: str) -> float:
        """The cost of one pass of ``kind`` (one of KINDS)."""
        if kind not in self._costs:
            self._costs[kind] = self._measure(kind)
        return self._costs[kind]

    def _measure(self, kind: str) -> float:
        if kind == "forwards":
            return self._forward()
        if kind == "no_grad_forwards":
            return self._timed("no_grad_forward", self._no_grad_forward)
        if kind == "input_backwards":
            return self._timed("input_backward", self._input_backward) - self._forward()
        if kind == "full_backwards":
            return self._timed("full_backward", self._full_backward) - \
                self._timed("forward_no_input_grad", lambda: self._loss(self.net, self.x))
        eager_input = self._timed("eager_input_backward", self._eager_input_backward)
        create_graph = self._timed("create_graph_backward", self._create_graph)
        if kind == "create_graph_backwards":
            return create_graph - eager_input
        if kind == "double_backwards":
            return self._timed("double_backward", self._double_backward) - create_graph
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")

    def _eager_input_backward(self):
        x = self._input()
        return torch.autograd.grad(self._loss(self.model, x), x)

    def of(self, counts) -> float:
        """What ``counts`` (a PassCounts) cost: the sum over kinds of count x cost."""
        return sum(getattr(counts, kind) * self.seconds(kind) for kind in KINDS
                   if getattr(counts, kind))

    def as_dict(self) -> dict:
        """The cost of each kind measured so far, in ms."""
        return {kind: round(1e3 * t, 3) for kind, t in self._costs.items()}
