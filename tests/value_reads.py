"""A watcher of tensor-value reads, shared by the op tests (tests/ops/test_value_reads.py: no
op reads a value) and the training-step tests (tests/training/test_no_host_sync.py: no step
reads one): on a GPU every such read is a host synchronisation.

The watcher is a TorchDispatchMode that records each read of a value of a watched tensor:
- a scalar read: .item(), bool(), float(), torch.equal (the aten ops tagged
  data_dependent_output, among them _local_scalar_dense, is_nonzero and equal);
- an op whose output shape depends on values (nonzero, boolean-mask indexing: tagged
  dynamic_output_shape; indexing with integer index tensors is tagged too but reads no value,
  its output has the index's shape, so it is not counted);
- a copy from a GPU to the host;
- a host copy through Tensor.tolist / numpy / __array__ (the fixture patches those).
Which tensors are watched is the caller's choice (``watched``): by default those an op could
inspect (floating or bool tensors, and any tensor on a GPU); the step tests watch every
tensor. Always allowed: the read of an integer drawn by torch.randint on the CPU, which is how
fastadv.ops.random_start takes its seed from the caller's generator (a CPU RNG draw, not a
device sync).
"""
from typing import Callable

import pytest
import torch
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.weak import WeakIdKeyDictionary

READ_TAGS = (torch.Tag.data_dependent_output, torch.Tag.dynamic_output_shape)
INDEX_OPS = {torch.ops.aten.index.Tensor, torch.ops.aten.index_put.default,
             torch.ops.aten.index_put_.default}
HOST_COPIES = ("tolist", "numpy", "__array__")


def holds_values(t) -> bool:
    """What the op tests watch: a tensor an op could inspect."""
    return isinstance(t, torch.Tensor) and (
        t.is_cuda or t.is_floating_point() or t.dtype == torch.bool)


def any_tensor(t) -> bool:
    """What the step tests watch: every tensor."""
    return isinstance(t, torch.Tensor)


def _reads_values(func, args, kwargs) -> bool:
    if not any(tag in func.tags for tag in READ_TAGS):
        return False
    if func in INDEX_OPS:  # only a boolean mask makes indexing depend on values
        indices = args[1] if len(args) > 1 else kwargs.get("indices", ())
        return any(isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8)
                   for i in indices)
    return True


class ValueReads(TorchDispatchMode):
    """Records (what, tensor dtype and device) for every read of a value, see above."""

    def __init__(self, watched: Callable[[object], bool] = holds_values):
        super().__init__()
        self.watched = watched
        self.reads = []
        self.watching = False
        self._seeds = WeakIdKeyDictionary()  # CPU randint results: random_start's seeds

    def __enter__(self):
        self.watching = True
        return super().__enter__()

    def __exit__(self, *exc):
        self.watching = False
        return super().__exit__(*exc)

    def is_watched(self, t) -> bool:
        return self.watched(t) and t not in self._seeds

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        tensors = [t for t in pytree.tree_leaves((args, kwargs)) if self.is_watched(t)]
        if tensors and _reads_values(func, args, kwargs):
            self.reads.append((str(func), tensors[0].dtype, tensors[0].device.type))
        out = func(*args, **kwargs)
        if func.overloadpacket is torch.ops.aten.randint and isinstance(out, torch.Tensor) \
                and out.device.type == "cpu":
            self._seeds[out] = True
        if func in (torch.ops.aten._to_copy.default, torch.ops.aten.copy_.default):
            sources = [t for t in tensors if t.is_cuda]
            targets = [t for t in pytree.tree_leaves(out)
                       if isinstance(t, torch.Tensor) and t.device.type == "cpu"]
            if sources and targets:
                self.reads.append((f"{func} to the host", sources[0].dtype, "cuda"))
        return out


def watcher(monkeypatch, watched: Callable[[object], bool] = holds_values) -> ValueReads:
    """A ValueReads whose host copies (tolist, numpy, __array__) are recorded too."""
    mode = ValueReads(watched)
    for name in HOST_COPIES:
        original = getattr(torch.Tensor, name)

        def host_copy(self, *args, _original=original, _name=name, **kwargs):
            if mode.watching and mode.is_watched(self):
                mode.reads.append((f"Tensor.{_name}", self.dtype, self.device.type))
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, host_copy)
    return mode


@pytest.fixture
def value_reads(monkeypatch):
    """A context manager that watches a block for reads of what ops could inspect; its
    ``reads`` list what the block read."""
    return watcher(monkeypatch)
