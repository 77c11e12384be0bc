"""Scorers for the generated tasks: rule-graded reasoning and exact preference metrics."""
from __future__ import annotations

from collections import defaultdict

import torch

from harness.api import ScoreResult
from harness.llm import response_logprobs, sample_responses
from harness.tasks.preference import PreferenceData, preference_metrics
from harness.tasks.reasoning import ReasoningData


@torch.no_grad()
def score_reasoning(policy, data: ReasoningData, part: str, samples: int, max_new_tokens: int,
                    device, batch_size: int = 128) -> ScoreResult:
    """Greedy accuracy (overall and by difficulty), level shares, format-valid rate and
    mean reward; from ``samples`` draws at T=1: sampled accuracy/reward, the Monte-Carlo
    KL(π‖π_init) per response, and the reward-hacking gap (normalised reward − accuracy)."""
    problems = data.part(part)
    model, tok = policy.model, policy.tokenizer
    grades, texts = [], []
    for s in range(0, len(problems), batch_size):
        chunk = problems[s:s + batch_size]
        out = sample_responses(model, tok, [p.prompt for p in chunk], 1, max_new_tokens, 0.0, device)
        grades += [data.grade(p, t) for p, t in zip(chunk, out.texts)]
        texts += list(out.texts)
    n = len(grades)
    m: dict[str, float] = {
        "accuracy": sum(g.correct for g in grades) / n,
        "format_valid": sum(g.format_ok for g in grades) / n,
        "mean_reward": sum(g.reward for g in grades) / n,
    }
    for lv in (1, 2, 3, 4):
        m[f"level_{lv}"] = sum(g.level == lv for g in grades) / n
    by_d = defaultdict(list)
    for p, g in zip(problems, grades):
        by_d[p.difficulty].append(g.correct)
    for d, v in sorted(by_d.items()):
        m[f"accuracy_d{d}"] = sum(v) / len(v)
    # per-problem values, so the leaderboard can run paired tests on these metrics too
    per_user = {"accuracy": {str(i): float(g.correct) for i, g in enumerate(grades)},
                "mean_reward": {str(i): g.reward for i, g in enumerate(grades)},
                "format_valid": {str(i): float(g.format_ok) for i, g in enumerate(grades)}}
    if samples > 0:
        correct, rewards, kls, owner = [], [], [], []
        per_batch = max(1, batch_size // samples)  # prompts per generate call
        for s in range(0, len(problems), per_batch):
            chunk = problems[s:s + per_batch]
            out = sample_responses(model, tok, [p.prompt for p in chunk], samples,
                                   max_new_tokens, 1.0, device)
            for i, t in enumerate(out.texts):
                g = data.grade(chunk[out.prompt_index[i]], t)
                correct.append(g.correct)
                rewards.append(g.reward)
                owner.append(s + out.prompt_index[i])
            ids, att = out.input_ids.to(device), out.attention_mask.to(device)
            mask = out.response_mask.to(device).float()
            lp = response_logprobs(model, ids, att)
            lp0 = response_logprobs(policy.init_model, ids, att)
            kls += ((lp - lp0) * mask).sum(-1).tolist()
        lo, hi = data.reward_range
        m["accuracy_sampled"] = sum(correct) / len(correct)
        m["mean_reward_sampled"] = sum(rewards) / len(rewards)
        m["kl_init"] = sum(kls) / len(kls)
        m["reward_gap"] = (m["mean_reward_sampled"] - lo) / (hi - lo) - m["accuracy_sampled"]
        for name, values in (("accuracy_sampled", correct), ("mean_reward_sampled", rewards),
                             ("kl_init", kls)):
            sums, counts = defaultdict(float), defaultdict(int)
            for i, v in zip(owner, values):
                sums[i] += float(v)
                counts[i] += 1
            per_user[name] = {str(i): sums[i] / counts[i] for i in sorted(sums)}
    # the greedy responses, for the cell's samples.jsonl (the harness bounds its size)
    samples = [{"id": i, "prompt": p.prompt, "response": t, "answer": str(p.answer),
                "difficulty": p.difficulty, "decoding": "greedy", "correct": g.correct,
                "format_ok": g.format_ok, "level": g.level, "reward": g.reward}
               for i, (p, t, g) in enumerate(zip(problems, texts, grades))]
    return ScoreResult(metrics=m, per_user=per_user, extra={"samples": samples})


#: figures of the whole training run a UDRRA policy carries in its history (speed,
#: convergence); reported as run-level metrics next to the exact ones
RUN_FIGURES = ("steps_to_kl", "queries_to_kl", "steps_run", "seconds_run", "cpu_seconds_run",
               "kl_area")


@torch.no_grad()
def score_preference(model, data: PreferenceData, part: str) -> ScoreResult:
    """Exact metrics over every response of every prompt (see preference_metrics)."""
    logp = model.enumerate_logprobs(data)
    means, per = preference_metrics(logp, model.ref_logp, data.rewards, model.tau)
    history = getattr(model, "history", None) or {}
    for k in RUN_FIGURES:
        if k in history:
            means[k] = float(history[k])
    per_user = {k: {str(x): float(v[x]) for x in data.part(part)} for k, v in per.items()}
    return ScoreResult(metrics=means, per_user=per_user)
