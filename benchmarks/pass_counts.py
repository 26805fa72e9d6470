"""Network passes of one training step, counted by hooks (never typed in): forwards with and
without a graph, and each backward traversal of a forward's graph, sorted into input-only
backwards, full backwards (they compute parameter gradients), and double backwards (a
backward through the graph that a create_graph backward built); create_graph backwards are
counted among the first two as well.

Hooks: a forward hook on the model counts forwards; a forward hook on the first layer with a
weight puts a post-hook on that layer's backward node, which runs once per backward call
(graph task) that traverses the forward's graph, and sees whether the weight's gradient was
computed and whether the engine runs in grad mode (create_graph). In a create_graph traversal
it also hooks the node of the input gradient it produced: a later backward reaching that node
is a double backward. A double backward also runs through its forward's graph again; that
traversal belongs to the double backward and is not counted a second time.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import torch
from torch import nn


@dataclasses.dataclass
class PassCounts:
    forwards: int = 0
    no_grad_forwards: int = 0
    input_backwards: int = 0
    full_backwards: int = 0
    create_graph_backwards: int = 0
    double_backwards: int = 0

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def first_weighted_layer(model: nn.Module) -> nn.Module:
    for module in model.modules():
        weight = getattr(module, "weight", None)
        if isinstance(weight, nn.Parameter) and weight.requires_grad:
            return module
    raise ValueError("the model has no layer with a trainable weight to hook")


class PassCounter:
    """Counts the passes of what runs between construction and :meth:`result` (see the
    module docstring); :meth:`remove` takes the hooks off."""

    def __init__(self, model: nn.Module):
        self.counts = PassCounts()
        self._graphs = 0
        self._traversals = {}  # (graph task, forward) -> (parameter grads?, create_graph?)
        self._doubles = set()  # (graph task, forward)
        self._handles = [model.register_forward_hook(self._forward),
                         first_weighted_layer(model).register_forward_hook(self._first_layer)]

    def _forward(self, module, inputs, output) -> None:
        if torch.is_grad_enabled():
            self.counts.forwards += 1
        else:
            self.counts.no_grad_forwards += 1

    def _first_layer(self, module, inputs, output) -> None:
        if isinstance(output, torch.Tensor) and output.grad_fn is not None:
            self._graphs += 1
            output.grad_fn.register_hook(functools.partial(self._traversed, self._graphs))

    def _traversed(self, forward: int, grad_inputs, grad_outputs) -> None:
        task = torch._C._current_graph_task_id()
        parameters = any(g is not None for g in grad_inputs[1:])
        create_graph = torch.is_grad_enabled()
        self._traversals[(task, forward)] = (parameters, create_graph)
        produced = grad_inputs[0]
        if create_graph and produced is not None and produced.grad_fn is not None:
            produced.grad_fn.register_hook(functools.partial(self._double, forward))

    def _double(self, forward: int, *_) -> None:
        self._doubles.add((torch._C._current_graph_task_id(), forward))

    def result(self) -> PassCounts:
        counts = dataclasses.replace(self.counts)
        for key, (parameters, create_graph) in self._traversals.items():
            if key in self._doubles:
                continue
            if parameters:
                counts.full_backwards += 1
            else:
                counts.input_backwards += 1
            counts.create_graph_backwards += create_graph
        counts.double_backwards = len(self._doubles)
        return counts

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


def count_passes(model: nn.Module, step: Callable[[], object]) -> PassCounts:
    """The passes of one call of ``step`` on ``model``."""
    counter = PassCounter(model)
    try:
        step()
    finally:
        counter.remove()
    return counter.result()
