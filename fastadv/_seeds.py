"""Derived seeds: one seed for each (run seed, rank, epoch) or (attack seed, batch start), so
that a draw depends only on where it is made, never on what was drawn before it (training's
per-rank seeds, evaluation's per-batch generators)."""
from __future__ import annotations

# 2**64 / golden ratio, odd: multiplying by it spreads nearby integers far apart mod 2**63
_MULTIPLIER = 0x9E3779B97F4A7C15
_MODULUS = 2 ** 63  # seeds stay non-negative int64, as torch.manual_seed takes them


def mix_seed(start: int, *values: int) -> int:
    """``start`` folded with each of ``values`` in turn (seed <- seed * M + value + 1 mod 2**63):
    nearby arguments give unrelated seeds, and the same arguments always the same seed."""
    seed = start % _MODULUS
    for value in values:
        seed = (seed * _MULTIPLIER + value + 1) % _MODULUS
    return seed
