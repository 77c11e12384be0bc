"""The four preference levels of TRPA's official reward code, shared by every reasoning task.

Lower level = better. L1 correct, L2 parsed but wrong, L3 well-formatted but the answer
cannot be parsed (or is incomplete), L4 broken format. The scalar rewards follow
``verl/utils/reward_score/kk.py`` (K&K) and ``math_reward_pl.py`` (math); GRPO uses the
scalar, TRPA only the level.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

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
