"""Per-task training with early stopping, shared by every arm.

Each task gets its own trainable module (one soft prompt / adapter per task, as in DePT
and EPT). Tasks are trained in rounds of ``eval_every`` optimiser steps; after a round
each active task is scored on its validation split and stops after ``patience`` rounds
without improvement (its best state is restored). The mean over tasks of the best
validation scores so far is reported each round (the tuner prunes on it). Only the
optimiser steps (forward, backward, update) are timed, so ``sec_per_step`` compares
arms, not evaluation.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from harness.api import TaskData
from harness.tasks.text_classification import TaskInfo, task_metrics

from .arms import ArmModule, ArmPlan
from .backbone import encode, label_ids, pad_right


@dataclass
class TaskState:
    info: TaskInfo
    module: ArmModule
    labels: list[int]
    train_ids: list[list[int]]
    train_y: torch.Tensor
    opt: Any = None
    order: list[int] = field(default_factory=list)
    cursor: int = 0
    step: int = 0
    best: float = -float("inf")
    best_step: int = 0
    best_state: dict = field(default_factory=dict)
    bad: int = 0
    stopped: bool = False  # early-stopped (converged) before the step budget
    done: bool = False


class TextClassifier:
    """Per-task modules + verbalizers; ``predict`` is what the scorer calls."""

    def __init__(self, states: dict[str, TaskState], tokenizer: Any, max_length: int,
                 device: Any, history: dict) -> None:
        self.states, self.tokenizer, self.max_length = states, tokenizer, max_length
        self.device, self.history = device, history

    @torch.no_grad()
    def predict(self, task: str, texts: list[str]) -> np.ndarray:
        st = self.states[task]
        return probs(st, encode(self.tokenizer, texts, self.max_length, task),
                     self.tokenizer.pad_token_id, self.device).cpu().numpy()


def label_logits(st: TaskState, rows: list[list[int]], pad_id: int, device: Any) -> torch.Tensor:
    ids, mask = pad_right(rows, pad_id)
    ids, mask = ids.to(device), mask.to(device)
    logits = st.module(ids, mask)
    last = st.module.prefix + mask.sum(1) - 1
    picked = logits[torch.arange(len(rows), device=device), last]
    return picked[:, st.labels].float()


@torch.no_grad()
def probs(st: TaskState, rows: list[list[int]], pad_id: int, device: Any,
          batch_size: int = 256) -> torch.Tensor:
    st.module.eval()
    out = [torch.softmax(label_logits(st, rows[s:s + batch_size], pad_id, device), -1)
           for s in range(0, len(rows), batch_size)]
    return torch.cat(out)


def train_arm(plan_: ArmPlan, p: Any, backbone: Any, tokenizer: Any, data: TaskData, ctx: Any,
              device: Any) -> TextClassifier:
    infos: dict[str, TaskInfo] = data.extra["tasks"]
    pad = tokenizer.pad_token_id
    states: dict[str, TaskState] = {}
    valid_ids: dict[str, list[list[int]]] = {}
    for task, examples in data.train.items():
        gen = ctx.rng(f"ept.init.{task}")
        module = ArmModule(plan_, backbone, p, gen).to(device)
        st = TaskState(infos[task], module, label_ids(tokenizer, infos[task]),
                       encode(tokenizer, [e.text for e in examples], p.max_length, task),
                       torch.tensor([e.label for e in examples]))
        st.opt = torch.optim.AdamW(module.param_groups(p.lr, p.lowrank_lr_ratio, p.weight_decay))
        st.best_state = module.trainable_state()
        states[task] = st
        valid_ids[task] = encode(tokenizer, [e.text for e in data.valid[task]], p.max_length, task)

    n_trainable = {t: st.module.n_trainable() for t, st in states.items()}
    step_seconds: list[float] = []
    tokens_seen: list[int] = []
    rounds = max(1, -(-p.max_steps // p.eval_every))
    for rnd in range(rounds):
        active = [st for st in states.values() if not st.done]
        if not active:
            break
        losses = []
        for task, st in states.items():
            if st.done:
                continue
            st.module.train()
            g = ctx.rng(f"ept.batches.{task}")
            for _ in range(min(p.eval_every, p.max_steps - st.step)):
                idx = _next_batch(st, p.batch_size, g)
                rows = [st.train_ids[i] for i in idx]
                y = st.train_y[idx].to(device)
                t0 = time.perf_counter()
                lr_now = min(1.0, (st.step + 1) / max(1, p.warmup_steps))
                for group, base in zip(st.opt.param_groups, _base_lrs(st, p)):
                    group["lr"] = base * lr_now
                loss = torch.nn.functional.cross_entropy(label_logits(st, rows, pad, device), y)
                st.opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(st.module.trainable(), p.grad_clip)
                st.opt.step()
                step_seconds.append(time.perf_counter() - t0)
                tokens_seen.append(st.module.prefix + max(len(r) for r in rows))
                st.step += 1
                losses.append(float(loss.detach()))
            value = _valid_score(st, valid_ids[task], data.valid[task], pad, device)
            if value > st.best:
                st.best, st.best_step, st.bad = value, st.step, 0
                st.best_state = st.module.trainable_state()
            else:
                st.bad += 1
                if st.bad >= p.patience:
                    st.stopped = st.done = True
            if st.step >= p.max_steps:
                st.done = True
        ctx.log_metrics({"train_loss": float(np.mean(losses)) if losses else float("nan")}, rnd)
        ctx.report("valid_mean_score", float(np.mean([st.best for st in states.values()])), rnd)
    for st in states.values():
        st.module.load_trainable_state(st.best_state)
        st.module.eval()

    valid_lengths = [len(r) for rows in valid_ids.values() for r in rows]
    history = {
        "params_trainable": float(np.mean(list(n_trainable.values()))),
        "params_budget": float(plan_.budget),
        "parity_ratio": float(np.mean(list(n_trainable.values())) / plan_.budget),
        "rank": float(plan_.rank),
        "virtual_tokens": float(plan_.virtual_tokens),
        "sec_per_step": float(np.mean(step_seconds)) if step_seconds else float("nan"),
        "ms_per_step_median": float(np.median(step_seconds) * 1000) if step_seconds else float("nan"),
        "input_tokens": float(plan_.virtual_tokens + np.mean(valid_lengths)),
        "max_input_tokens": float(plan_.virtual_tokens + max(valid_lengths)),
        "train_tokens_per_step": float(np.mean(tokens_seen)) if tokens_seen else 0.0,
        "steps_total": float(sum(st.step for st in states.values())),
        "tasks_converged": float(np.mean([st.stopped for st in states.values()])),
        "best_step_mean": float(np.mean([st.best_step for st in states.values()])),
    }
    for t, st in states.items():
        history[f"{t}_best_step"] = float(st.best_step)
    return TextClassifier(states, tokenizer, p.max_length, device, history)


def _base_lrs(st: TaskState, p: Any) -> list[float]:
    if len(st.opt.param_groups) == 1:
        return [p.lr]
    return [p.lr, p.lr * p.lowrank_lr_ratio]


def _next_batch(st: TaskState, batch_size: int, g: torch.Generator) -> list[int]:
    out = []
    while len(out) < batch_size:
        if st.cursor >= len(st.order):
            st.order = torch.randperm(len(st.train_ids), generator=g).tolist()
            st.cursor = 0
        take = st.order[st.cursor:st.cursor + batch_size - len(out)]
        st.cursor += len(take)
        out += take
    return out


def _valid_score(st: TaskState, rows: list[list[int]], examples: list, pad: int, device) -> float:
    pr = probs(st, rows, pad, device).cpu().numpy()
    labels = np.array([e.label for e in examples])
    return task_metrics(st.info, pr, labels)[f"{st.info.name}_score"]
