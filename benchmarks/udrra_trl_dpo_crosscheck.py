"""Cross-check: UDRRA's PRA (= DPO) preset vs trl's DPOTrainer on the same offline pairs.

    python benchmarks/udrra_trl_dpo_crosscheck.py [--steps 150] [--tau 0.5]

Both start from the same π_ref (tiny Llama SFT'd on the base distribution), see the same
fixed set of Bradley–Terry-labelled pairs drawn from π_ref in the same order with the
same batch size, optimiser (AdamW, constant lr, no weight decay) and β = τ. The exact
KL(π‖π^τ) of both is printed at the end with the starting KL. Known differences:
trl appends an EOS to each completion (its log-ratio includes that token) and uses the
full-vocabulary softmax; our preset scores responses under the response-vocabulary
softmax. Agreement is judged relative to the distance travelled from π_ref.
"""
from __future__ import annotations

import argparse
import copy
import os
import tempfile
import warnings

import torch

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")


def crosscheck(steps: int = 150, batch: int = 32, tau: float = 0.5, lr: float = 3e-4,
               seed: int = 0) -> tuple[float, float, float]:
    """(KL at π_ref, KL after the UDRRA PRA preset, KL after trl's DPOTrainer)."""
    a = argparse.Namespace(steps=steps, batch=batch, tau=tau, lr=lr, seed=seed)
    import datasets
    from datasets import Dataset

    datasets.disable_progress_bars()
    from trl import DPOConfig, DPOTrainer

    from harness.llm import LLMConfig, load_llm
    from harness.tasks.preference import make_preference, preference_metrics
    from plugins.udrra import EnumerablePolicy
    from plugins.udrra.losses import pra_loss

    data = make_preference(n_prompts=4, length=2, vocab=4, ref_samples=1000, seed=0)
    cfg = LLMConfig(layers=1, dim=32, heads=2, ffn_mult=2, max_positions=8, sft_steps=200,
                    sft_batch_size=64)
    with tempfile.TemporaryDirectory() as cache:
        prompts, responses = data.sft_pairs()
        llm = load_llm(cfg, data.corpus(), prompts, responses, cache_dir=cache, device="cpu")
    ref_model = copy.deepcopy(llm.model).eval()
    ref = EnumerablePolicy(ref_model, llm.tokenizer, data, a.tau)
    with torch.no_grad():
        ref_logp = ref.enumerate_logprobs()
    # one fixed offline dataset: pairs from π_ref, labels ~ Bradley-Terry σ(r1 − r2)
    g = torch.Generator().manual_seed(a.seed)
    n = a.steps * a.batch
    xs = torch.randint(data.n_prompts, (n,), generator=g)
    y1 = torch.multinomial(ref_logp.exp()[xs], 1, generator=g).squeeze(1)
    y2 = torch.multinomial(ref_logp.exp()[xs], 1, generator=g).squeeze(1)
    first = torch.rand(n, generator=g) < torch.sigmoid(data.rewards[xs, y1] - data.rewards[xs, y2])
    yw, yl = torch.where(first, y1, y2), torch.where(first, y2, y1)

    def kl_of(model) -> float:
        pol = EnumerablePolicy(model, llm.tokenizer, data, a.tau)
        with torch.no_grad():
            m, _ = preference_metrics(pol.enumerate_logprobs(), ref_logp, data.rewards, a.tau)
        return m["kl_target"]

    start = kl_of(ref_model)
    # (a) the UDRRA PRA preset, same order and batches
    torch.manual_seed(a.seed)
    ours = EnumerablePolicy(copy.deepcopy(llm.model), llm.tokenizer, data, a.tau)
    opt = torch.optim.AdamW(ours.model.parameters(), lr=a.lr, weight_decay=0.0)
    for s in range(a.steps):
        sl = slice(s * a.batch, (s + 1) * a.batch)
        rw = ours.logprobs(xs[sl], yw[sl]) - ref_logp[xs[sl], yw[sl]]
        rl = ours.logprobs(xs[sl], yl[sl]) - ref_logp[xs[sl], yl[sl]]
        loss = pra_loss(rw, rl, a.tau)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(ours.model.parameters(), 1.0)
        opt.step()
    ours_kl = kl_of(ours.model)
    # (b) trl's DPOTrainer on the same rows, no shuffling
    # leading space: trl tokenises prompt+completion as one string, and "q0"+"r1" would
    # merge into one unknown word (trl then warns and drops the prompt from the sequence)
    rows = [{"prompt": data.prompt_text(int(x)), "chosen": " " + data.response_text(int(w)),
             "rejected": " " + data.response_text(int(l_))} for x, w, l_ in zip(xs, yw, yl)]
    with tempfile.TemporaryDirectory() as out, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        args = DPOConfig(output_dir=out, max_steps=a.steps, per_device_train_batch_size=a.batch,
                         learning_rate=a.lr, lr_scheduler_type="constant", weight_decay=0.0,
                         beta=a.tau, loss_type=["sigmoid"], bf16=False, fp16=False,
                         gradient_checkpointing=False, use_cpu=True, report_to="none",
                         save_strategy="no", logging_steps=50, disable_tqdm=True,
                         seed=a.seed, max_grad_norm=1.0, dataloader_num_workers=0)
        trainer = DPOTrainer(model=copy.deepcopy(llm.model), ref_model=copy.deepcopy(ref_model),
                             args=args, train_dataset=Dataset.from_list(rows),
                             processing_class=llm.tokenizer)
        trainer.get_train_dataloader  # noqa: B018 (trl shuffles with its seed; order differs)
        trainer.train()
    trl_kl = kl_of(trainer.model.eval())
    return start, ours_kl, trl_kl


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--tau", type=float, default=0.5)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(1)
    start, ours_kl, trl_kl = crosscheck(a.steps, a.batch, a.tau, a.lr, a.seed)
    moved = max((abs(ours_kl - start) + abs(trl_kl - start)) / 2, 1e-9)
    print(f"tau={a.tau} steps={a.steps} batch={a.batch} pairs={n}")
    print(f"KL(pi||target): start {start:.4f} | udrra pra preset {ours_kl:.4f} | "
          f"trl DPOTrainer {trl_kl:.4f}")
    print(f"|difference| = {abs(ours_kl - trl_kl):.4f} = "
          f"{abs(ours_kl - trl_kl) / moved:.1%} of the mean KL change from pi_ref")


if __name__ == "__main__":
    main()
