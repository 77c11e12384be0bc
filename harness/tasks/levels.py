"""The four preference levels of TRPA's official reward code, shared by every reasoning task.

Lower level = better. L1 correct, L2 parsed but wrong, L3 well-formatted but the answer
cannot be parsed (or is incomplete), L4 broken format. The scalar rewards follow
``verl/utils/reward_score/kk.py`` (K&K) and ``math_reward_pl.py`` (math); GRPO uses the
scalar, TRPA only the level.
"""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

import torch

TAGS = ("<think>", "</think>", "<answer>", "</answer>")

#: K&K (kk.py): format +1/-1 plus answer +2 / -1.5 / -2
KK_REWARDS = {1: 3.0, 2: -0.5, 3: -1.0, "format_fail": -3.0, "empty_answer": -1.0}
#: math (math_reward_pl.py)
MATH_REWARDS = {1: 3.0, 2: -0.5, 3: -1.0, 4: -3.0}


@dataclass(frozen=True)
class Grade:
    level: int      # 1..4
    reward: float   # the scalar rule reward
    correct: bool
    format_ok: bool


def format_ok(response: str, prefilled: str = "<think>") -> bool:
    """Each tag exactly once and in order, counting the ``<think>`` pre-filled in the prompt."""
    text = prefilled + " " + response
    positions = []
    for tag in TAGS:
        if text.count(tag) != 1:
            return False
        positions.append(text.index(tag))
    return positions == sorted(positions)


def answer_text(response: str) -> str | None:
    """Content of the last ``<answer> ... </answer>`` block, or None if there is none."""
    found = re.findall(r"<answer>(.*?)</answer>", response, flags=re.S)
    return found[-1].strip() if found else None


def level_pairs(levels: list[int], groups: list[int], pairing: str = "all"
                ) -> list[tuple[int, int]]:
    """(winner, loser) index pairs: within a group, every response of a better level
    against every response of a worse level (``all``), or only best vs worst level
    present (``best_worst``). Same-level pairs are never formed.

    Shared by TRPA and UDRRA's TRPA-style preset: both turn graded responses into
    preference pairs this way."""
    if pairing not in ("all", "best_worst"):
        raise ValueError(f"unknown pairing '{pairing}' (all or best_worst)")
    by_group: dict[int, dict[int, list[int]]] = {}
    for i, (lv, g) in enumerate(zip(levels, groups)):
        by_group.setdefault(g, {}).setdefault(lv, []).append(i)
    pairs = []
    for g in sorted(by_group):
        present = sorted(by_group[g])
        if len(present) < 2:
            continue
        chosen = [(present[0], present[-1])] if pairing == "best_worst" else \
            list(itertools.combinations(present, 2))
        for hi, lo in chosen:
            pairs += list(itertools.product(by_group[g][hi], by_group[g][lo]))
    return pairs


def pair_margins(rho: torch.Tensor, levels: torch.Tensor, pairs: list[tuple[int, int]],
                 beta: float, anisotropy: float
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(β_w·(ρ_w − ρ_l), winners, losers) over non-empty (winner, loser) ``pairs``, with
    β_w = β·a when the winner is level 1 (TRPA's KTPO rule: a correct answer is pushed up
    harder than a merely better one). TRPA's loss and UDRRA's TRPA-style member both
    take −log σ of these margins."""
    w = torch.tensor([a for a, _ in pairs], device=rho.device)
    lo = torch.tensor([b for _, b in pairs], device=rho.device)
    betas = torch.where(levels[w] == 1, beta * anisotropy, beta)
    return betas * (rho[w] - rho[lo]), w, lo
