"""CausalDiffRec (Zhao et al., WWW 2025): environment-conditioned latent diffusion for
OOD recommendation, with a LightGCN + BPR recommendation head.

Sound by default: the representation is learnt on the train graph, its denoised node
embeddings initialise a LightGCN that is trained with BPR and early-stopped on
validation, and that trained head scores with training items masked. Every behaviour of
the official code that the spec (recsys_graph.md §3) flags is reproducible by a flag;
``suites/ood.yaml`` carries one code-faithful row. See train.py for the two schedules.
"""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field

from harness.api import (Fraction, MethodSpec, NonNegativeFloat, NonNegativeInt, Params,
                         PositiveInt, Rate)
from harness.hookspecs import hookimpl


class CausalDiffRecParams(Params):
    # representation stage
    dim: PositiveInt = 32                 # VGAE hidden/latent, EVAE, denoiser width (code: 8)
    feat_dim: PositiveInt = 64            # fixed random projection of one-hot node ids
    # False: the no-environment ablation (no generator, no environment inference, e ≡ 0,
    # one clean train graph, so no Var term): VGAE + unconditioned latent diffusion
    environment: bool = True
    n_envs: PositiveInt = 3
    edits_per_node: NonNegativeInt = 5
    noise_level: Fraction = 0.05     # code: 0.8 (environment graphs ≈ 40% dense, random)
    symmetrize_edges: bool = True  # code: False (user→item edges only)
    steps: PositiveInt = 100
    noise_scale: NonNegativeFloat = 0.1
    noise_min: Fraction = 0.01
    noise_max: Fraction = 0.09
    time_emb_dim: PositiveInt = 10
    dropout: float = Field(0.5, ge=0, lt=1)
    reweight: bool = True
    importance_history: PositiveInt = 10
    rep_epochs: PositiveInt = 8
    outer_steps: PositiveInt = 2          # outer updates per epoch (code: 1)
    reset_generator: bool = True  # generator logits re-initialised every epoch (code: yes)
    lr: Rate = 0.01              # VGAE Adam (code: 0.1)
    lr2: Rate = 0.1              # Adagrad: denoiser, EVAE, generator
    beta: NonNegativeFloat = 1.0
    use_var: bool = True          # False: the no-Var ablation
    env_condition: Literal["posterior", "decoder_on_z", "none"] = "posterior"  # code: decoder_on_z
    loss_args: Literal["intended", "code"] = "intended"
    env_recon_target: Literal["z", "logstd"] = "z"   # code: logstd
    sampling_dropout: bool = False  # code: True (denoiser stays in train mode at inference)
    # recommendation head
    head: Literal["persistent", "per_epoch_fresh"] = "persistent"  # code: per_epoch_fresh
    n_layers: PositiveInt = 3
    head_epochs: PositiveInt = 40
    batch_size: PositiveInt = 2048
    head_lr: Rate = 1e-3
    reg_weight: NonNegativeFloat = 1e-4      # code: 1e-3
    sampler: str = "uniform"
    patience: PositiveInt = 5
    eval_every: PositiveInt = 1
    score_with: Literal["trained_head", "untrained_head"] = "trained_head"  # code: untrained
    eval_graph: Literal["train", "test"] = "train"   # code: test (leaks test structure)
    mask_train_items: bool = True                    # code: False
    select_on: Literal["valid", "test"] = "valid"    # code: test


@hookimpl
def bench_register_methods():
    return [MethodSpec("causaldiffrec", ("topk",),
                       "CausalDiffRec (Zhao et al. 2025): environment-conditioned latent "
                       "diffusion + LightGCN/BPR head; official-code behaviours behind flags",
                       params=CausalDiffRecParams, version="1")]


@hookimpl
def bench_train(method: str, params: dict, dataset, ctx):
    if method != "causaldiffrec":
        return None
    from .train import train

    return train(CausalDiffRecParams(**params), dataset, ctx)


@hookimpl
def bench_score(model, dataset, part, metrics, ctx) -> Optional[object]:
    """Only for the code-faithful ``mask_train_items: false``: rank all items, training
    items included, as the official evaluation does. Everything else goes to the
    harness's scorer."""
    from .train import UnmaskedScorer

    if not isinstance(model, UnmaskedScorer):
        return None
    return model.score_unmasked(dataset, part, metrics, ctx)
