"""TRPA's baselines through trl, from the same SFT policy with the same sample budget.

* GRPO: ``trl.GRPOTrainer`` with loss_type="grpo", β=0.001, ε=0.2, group-scaled
  rewards (the official repo's GRPO), ``samples_per_prompt`` generations per prompt;
  ``num_iterations`` = μ (``updates_per_batch``): each generation batch is reused for μ
  optimiser steps, so ``max_steps`` = rollout batches × μ.
* Online DPO: trl 1.16 no longer exports ``OnlineDPOTrainer`` at the top level; it lives
  in ``trl.experimental.online_dpo``. Two samples per prompt, chosen = higher rule score,
  sigmoid loss, β = 0.1; prompts per step chosen so it generates as many responses per
  step as TRPA/GRPO. ``OnlineDPOConfig`` has no ``num_iterations``: its ``training_step``
  always generates afresh, so trl alone takes exactly one optimiser step per rollout
  batch. :class:`_ReplayOnlineDPO` gives it μ: it generates on every μ-th training step
  and replays that batch (same prompts, same completions, same rule rewards) on the
  μ − 1 steps in between, as GRPO's ``num_iterations`` does; trl's loss is untouched.
* Offline DPO: ``trl.DPOTrainer`` (explicit ref_model) on (best, worst)-level pairs
  sampled once from the initial policy, the same number of samples in total.

All run on CPU with bf16 and gradient checkpointing off and ``report_to="none"``; a
callback logs the validation accuracy to the cell's MLflow run as a convergence curve.
"""
from __future__ import annotations

import os
import random
import warnings

import torch

from harness.api import BestOnValidation
from harness.llm import Policy

from .loop import rollout, stopper, validate_every

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
COMMON = dict(bf16=False, fp16=False, gradient_checkpointing=False, use_cpu=True,
              report_to="none", save_strategy="no", logging_steps=1, disable_tqdm=True,
              remove_unused_columns=False, lr_scheduler_type="constant", weight_decay=0.01,
              max_grad_norm=1.0, dataloader_num_workers=0)


def _callback(ctx, policy: Policy, data, every: int, total: int, mu: int = 1,
              best: BestOnValidation | None = None):
    """Curves in rollout batches (trl's ``global_step`` counts optimiser steps: μ per
    rollout batch), so every method's curve has the same x axis. With ``best`` (the arm's
    ``early_stop``), each evaluation feeds it and trl stops when its patience runs out;
    the caller restores the best weights after ``train()``."""
    from transformers import TrainerCallback

    class Curves(TrainerCallback):
        """Validation every ``every`` rollout batches (and after the last one), early
        stopping, and trl's own logs as curves."""

        def _evaluate(self, batches: int, control, model) -> None:
            value = validate_every(ctx, policy, data, batches, every, batches == total)
            if best is not None and value is not None and best.update(value, batches, model):
                control.should_training_stop = True

        def on_train_begin(self, args, state, control, model=None, **kw):
            self._evaluate(0, control, model or policy.model)

        def on_step_begin(self, args, state, control, **kw):
            policy.model.train()

        def on_step_end(self, args, state, control, model=None, **kw):
            if state.global_step % mu == 0:  # a rollout batch's μ steps are done
                self._evaluate(state.global_step // mu, control, model or policy.model)

        def on_log(self, args, state, control, logs=None, **kw):
            keep = {k.replace("/", "_"): float(v) for k, v in (logs or {}).items()
                    if isinstance(v, (int, float)) and not k.startswith("train_")}
            if keep:
                ctx.log_metrics({f"trl_{k}": v for k, v in keep.items()}, state.global_step)

    return Curves()


def _finish(trainer, policy: Policy, best: BestOnValidation | None) -> Policy:
    """The trained policy: trl's last weights, or the best on validation (``early_stop``)."""
    if best is not None:
        best.restore(trainer.model)
    policy.model = trainer.model.eval()
    return policy


def _quiet(trainer) -> None:
    """No per-step dict printing to stdout (curves go to MLflow through the callback)."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    for cb in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(cb)


def _prompt_dataset(data, n_rows: int, seed: int):
    """Training prompts with their problem index (passed to the reward function)."""
    from datasets import Dataset

    rng = random.Random(seed)
    idx = [rng.randrange(len(data.train)) for _ in range(n_rows)]
    return Dataset.from_dict({"prompt": [data.train[i].prompt for i in idx], "pid": idx})


def _reward_fn(data):
    def rule_reward(prompts, completions, pid, **kw):
        return [data.grade(data.train[i], c).reward for i, c in zip(pid, completions)]
    return rule_reward


def _outdir(ctx, name: str) -> str:
    path = ctx.workdir / f"{name}-{os.getpid()}"
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


def train_grpo(policy: Policy, data, p, ctx) -> Policy:
    from trl import GRPOConfig, GRPOTrainer

    n_completions = p.prompts_per_step * p.samples_per_prompt
    mu = p.updates_per_batch
    args = GRPOConfig(output_dir=_outdir(ctx, "grpo"), max_steps=p.steps * mu, learning_rate=p.lr,
                      per_device_train_batch_size=n_completions, gradient_accumulation_steps=1,
                      steps_per_generation=1, num_iterations=mu,
                      num_generations=p.samples_per_prompt, max_completion_length=p.max_new_tokens,
                      temperature=p.temperature, top_p=1.0, beta=p.grpo_beta, loss_type="grpo",
                      epsilon=0.2, scale_rewards="group", seed=ctx.seed, shuffle_dataset=True,
                      **COMMON)
    train = _prompt_dataset(data, p.steps * p.prompts_per_step, ctx.seed)
    best = stopper(p)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = GRPOTrainer(model=policy.model, reward_funcs=[_reward_fn(data)], args=args,
                              train_dataset=train, processing_class=policy.tokenizer,
                              callbacks=[_callback(ctx, policy, data, p.eval_every, p.steps, mu,
                                                   best)])
        _quiet(trainer)
        trainer.train()
    return _finish(trainer, policy, best)


def _replay_online_dpo(mu: int):
    """trl's OnlineDPOTrainer taking ``mu`` optimiser steps per rollout batch."""
    from trl.experimental.online_dpo import OnlineDPOTrainer

    class _ReplayOnlineDPO(OnlineDPOTrainer):
        """Generates on every ``mu``-th training step and replays that step's prompts and
        completions on the next ``mu - 1`` (rewards are recomputed on the same completions,
        so they are the same; log-probs are recomputed under the updated policy, as in
        GRPO's ``num_iterations``). ``mu = 1`` is trl's own behaviour."""

        _replay_step = 0
        _replay_inputs = None
        _replay_rollout = None

        def training_step(self, model, inputs, num_items_in_batch=None):
            if self._replay_step % mu == 0:
                self._replay_inputs, self._replay_rollout = inputs, None
            self._replay_step += 1
            return super().training_step(model, self._replay_inputs, num_items_in_batch)

        def _generate(self, model, prompts, images=None):
            if self._replay_rollout is None:
                self._replay_rollout = super()._generate(model, prompts, images)
            return self._replay_rollout

    return _ReplayOnlineDPO


def train_online_dpo(policy: Policy, data, p, ctx) -> Policy:
    from trl.experimental.online_dpo import OnlineDPOConfig

    mu = p.updates_per_batch
    prompts_per_step = max(1, p.prompts_per_step * p.samples_per_prompt // 2)
    args = OnlineDPOConfig(output_dir=_outdir(ctx, "online_dpo"), max_steps=p.steps * mu,
                           learning_rate=p.lr, per_device_train_batch_size=prompts_per_step,
                           gradient_accumulation_steps=1, max_new_tokens=p.max_new_tokens,
                           temperature=p.temperature, beta=p.dpo_beta, loss_type="sigmoid",
                           seed=ctx.seed, **COMMON)
    # μ dataloader batches per rollout batch; the replayed ones are drawn but not used
    train = _prompt_dataset(data, p.steps * mu * prompts_per_step, ctx.seed)
    ref = policy.init_model
    best = stopper(p)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = _replay_online_dpo(mu)(
            model=policy.model, ref_model=ref, reward_funcs=[_reward_fn(data)], args=args,
            train_dataset=train, processing_class=policy.tokenizer,
            callbacks=[_callback(ctx, policy, data, p.eval_every, p.steps, mu, best)])
        _quiet(trainer)
        trainer.train()
    return _finish(trainer, policy, best)


def offline_pairs(policy: Policy, data, p, ctx) -> list[dict]:
    """(best level, worst level) pairs from the initial policy's samples, same budget."""
    g = ctx.rng("dpo.prompts")
    rows = []
    for _ in range(p.steps):
        idx = torch.randint(len(data.train), (p.prompts_per_step,), generator=g).tolist()
        problems = [data.train[i] for i in idx]
        s, grades = rollout(policy, data, problems, p.samples_per_prompt, p.max_new_tokens,
                            p.temperature, ctx.device)
        for j, prob in enumerate(problems):
            members = [k for k, q in enumerate(s.prompt_index) if q == j]
            best = min(members, key=lambda k: grades[k].level)
            worst = max(members, key=lambda k: grades[k].level)
            if grades[best].level < grades[worst].level:
                # leading space: trl tokenises prompt + completion as one string
                rows.append({"prompt": prob.prompt, "chosen": " " + s.texts[best],
                             "rejected": " " + s.texts[worst]})
    return rows


def train_offline_dpo(policy: Policy, data, p, ctx) -> Policy:
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    rows = offline_pairs(policy, data, p, ctx)
    ctx.log_metrics({"dpo_pairs": float(len(rows))}, 0)
    if not rows:
        return policy  # every group had one level: nothing to learn from, honestly
    batch = max(1, min(len(rows), p.prompts_per_step))
    args = DPOConfig(output_dir=_outdir(ctx, "dpo"), max_steps=p.steps, learning_rate=p.lr,
                     per_device_train_batch_size=batch, gradient_accumulation_steps=1,
                     beta=p.dpo_beta, loss_type=["sigmoid"], seed=ctx.seed, **COMMON)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = DPOTrainer(model=policy.model, ref_model=policy.init_model, args=args,
                             train_dataset=Dataset.from_list(rows),
                             processing_class=policy.tokenizer,
                             callbacks=[_callback(ctx, policy, data, p.eval_every, p.steps)])
        _quiet(trainer)
        trainer.train()
    return _finish(trainer, policy, None)
