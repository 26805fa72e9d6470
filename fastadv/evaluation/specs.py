"""Attack specification strings, as used by fastadv.evaluate() and ``fastadv eval --attacks``.

    clean            clean accuracy (no attack)
    fgsm             FGSM, one signed step of size eps
    pgd-K            PGD, K steps, 1 random start
    pgd-K-R          PGD, K steps, R random starts (e.g. pgd-50-10, the Fast-BAT protocol)
    autoattack       AutoAttack "standard" through the pyautoattack package
    rays             RayS with 40,000 queries per point (the leaderboard setting)
    rays-Q           RayS with Q queries per point
    transfer         PGD-20 crafted on a surrogate model (option surrogate=...)
    transfer-K[-R]   the same with K steps and R restarts
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple, Union

__all__ = ["AttackSpec", "parse_spec", "parse_specs", "KINDS", "WHITE_BOX", "BLACK_BOX",
           "RAYS_DEFAULT_QUERIES", "TRANSFER_DEFAULT_STEPS"]

KINDS = ("clean", "fgsm", "pgd", "autoattack", "rays", "transfer")
WHITE_BOX = ("fgsm", "pgd", "autoattack")
BLACK_BOX = ("rays", "transfer")
RAYS_DEFAULT_QUERIES = 40000
TRANSFER_DEFAULT_STEPS = 20

_GRAMMAR = {
    "clean": re.compile(r"clean"),
    "fgsm": re.compile(r"fgsm"),
    "autoattack": re.compile(r"autoattack"),
    "pgd": re.compile(r"pgd-(\d+)(?:-(\d+))?"),
    "rays": re.compile(r"rays(?:-(\d+))?"),
    "transfer": re.compile(r"transfer(?:-(\d+)(?:-(\d+))?)?"),
}
_HELP = "clean, fgsm, pgd-K, pgd-K-R, autoattack, rays, rays-Q, transfer, transfer-K, transfer-K-R"


@dataclass(frozen=True)
class AttackSpec:
    """One parsed spec: ``text`` is its normalized form (the key of the evaluation record),
    ``kind`` one of KINDS; the numbers the kind does not take are None."""
    text: str
    kind: str
    steps: Optional[int] = None
    restarts: Optional[int] = None
    queries: Optional[int] = None


def _positive(text: str, value: Optional[str], what: str) -> Optional[int]:
    if value is None:
        return None
    number = int(value)
    if number < 1:
        raise ValueError(f"attack spec {text!r}: {what} must be >= 1, got {number}")
    return number


def parse_spec(text) -> AttackSpec:
    """One spec such as "pgd-50-10" (case and surrounding spaces are ignored)."""
    if not isinstance(text, str):
        raise TypeError(f"an attack spec must be a str, got {type(text).__name__} ({text!r})")
    key = text.strip().lower()
    for kind, pattern in _GRAMMAR.items():
        match = pattern.fullmatch(key)
        if match is None:
            continue
        groups = match.groups()
        if kind == "pgd":
            return AttackSpec(key, kind, steps=_positive(key, groups[0], "K (steps)"),
                              restarts=_positive(key, groups[1], "R (restarts)") or 1)
        if kind == "transfer":
            steps = _positive(key, groups[0], "K (steps)") or TRANSFER_DEFAULT_STEPS
            return AttackSpec(key, kind, steps=steps,
                              restarts=_positive(key, groups[1], "R (restarts)") or 1)
        if kind == "rays":
            queries = _positive(key, groups[0], "Q (queries)") or RAYS_DEFAULT_QUERIES
            return AttackSpec(key, kind, queries=queries)
        return AttackSpec(key, kind)
    raise ValueError(f"unknown attack spec {text!r}; known forms: {_HELP}")


def parse_specs(attacks: Union[str, Sequence[str]]) -> Tuple[AttackSpec, ...]:
    """A comma-separated string or a sequence of specs; duplicates and an empty list are
    errors."""
    if isinstance(attacks, str):
        items = [part for part in attacks.split(",") if part.strip()]
    elif isinstance(attacks, (list, tuple)):
        items = list(attacks)
    else:
        raise TypeError(f"attacks must be a str or a list/tuple of str, got "
                        f"{type(attacks).__name__} ({attacks!r})")
    if not items:
        raise ValueError(f"attacks is empty ({attacks!r}); give at least one of: {_HELP}")
    specs = tuple(parse_spec(item) for item in items)
    seen = set()
    for spec in specs:
        if spec.text in seen:
            raise ValueError(f"attack spec {spec.text!r} is listed twice in attacks={attacks!r}")
        seen.add(spec.text)
    return specs
