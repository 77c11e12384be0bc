"""The parameter-parity equation every matched arm is sized by.

Budget: a vanilla soft prompt of ``budget_length`` tokens, B = l * d trainable numbers.
DePT spends it as m * d + r * (s + d) (spec §4.2: l d = m d + r (s + d)); EPT's fusion and
multi-space modules come out of the same budget, so EPT's rank is smaller; LoRA on the
query/value projections spends r * (d_in + d_out) per adapted matrix. Each arm's rank is
the integer that brings its count closest to B; an arm whose closest count misses B by
more than ``tolerance`` (relative) is refused. ``pt_short`` (the m-token prompt, DePT
with the low-rank update removed) and ``full_ft`` are references outside the parity.
"""
from __future__ import annotations

from dataclasses import dataclass

from harness.api import BenchError


@dataclass(frozen=True)
class Shape:
    dim: int          # d, the backbone's embedding width
    max_length: int   # s, the longest input (the low-rank update covers s positions)
    layers: int       # backbone layers (LoRA)
    kv_dim: int       # width of the value projection (d unless grouped-query attention)


def fusion_params(dim: int, fusion_dim: int) -> int:
    return 2 * dim * fusion_dim if fusion_dim else 0


def projection_params(dim: int, n_spaces: int, space_dim: int) -> int:
    return (2 * dim * space_dim * n_spaces + dim * n_spaces + n_spaces) if n_spaces else 0


def decomposed_params(shape: Shape, prompt_length: int, rank: int, fusion_dim: int = 0,
                      n_spaces: int = 0, space_dim: int = 0) -> int:
    """m d + r (s + d) + fusion + projection."""
    return (prompt_length * shape.dim + rank * (shape.max_length + shape.dim)
            + fusion_params(shape.dim, fusion_dim) + projection_params(shape.dim, n_spaces, space_dim))


def lora_params(shape: Shape, rank: int) -> int:
    """q (d -> d) and v (d -> kv_dim) in every layer: r (d + d) + r (d + kv_dim)."""
    return shape.layers * rank * (2 * shape.dim + shape.dim + shape.kv_dim)


def solve_rank(budget: int, fixed: int, per_rank: int) -> int:
    """The rank r >= 0 whose count fixed + r * per_rank is closest to ``budget``."""
    return max(0, round((budget - fixed) / per_rank))


def check(arm: str, count: int, budget: int, tolerance: float) -> None:
    if abs(count - budget) > tolerance * budget:
        raise BenchError(f"{arm}: {count} trainable parameters miss the parity budget "
                         f"{budget} (l*d) by more than {tolerance:.0%}; change budget_length, "
                         "prompt_length or the EPT module sizes.")
