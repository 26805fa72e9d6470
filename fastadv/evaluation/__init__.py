"""fastadv.evaluation: evaluate() and the machinery only it uses.

- :func:`evaluate` (loop.py): clean accuracy, robust accuracy per attack and the point-wise
  worst case over all of them, as a JSON-serializable RobustBench-like record.
- :func:`parse_spec`, :func:`parse_specs`, :class:`AttackSpec` (specs.py): the attack specs
  "clean", "fgsm", "pgd-K[-R]", "autoattack", "rays[-Q]", "transfer[-K[-R]]".
- options.py: evaluate()'s attack options (alpha, loss, surrogate, ...) and their checks.
- runners.py: one spec on one batch, through the public attacks of fastadv.attacks.
- inputs.py: what the user passes (tensors, ImageData, DataLoader) -> checked tensors; the
  one place pixel values are checked.
- sanity.py: warnings for evaluations that are likely wrong (softmax outputs, randomized
  model, gradient masking).

``fastadv.evaluate`` is :func:`evaluate`.
"""
from fastadv.evaluation.loop import evaluate
from fastadv.evaluation.specs import AttackSpec, parse_spec, parse_specs

__all__ = ["evaluate", "AttackSpec", "parse_spec", "parse_specs"]
