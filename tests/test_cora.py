"""CoRA and its arms on a toy ctr task: the base LLM is bit-identical after training, the
generator's factors are unit-norm, the CF input matters, the zero-initialised increment
starts as the identity, and `bench validate` refuses CoRA on another task."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from harness.cli import app
from harness.context import Context
from harness.llm import load_llm
from harness.registry import Registry
from harness.tasks.ctr import BOS, make_ctr
from plugins.cora import CoRAParams, TallRecParams
from plugins.cora.generator import CollaborativeGenerator
from plugins.cora.train import train_method
from test_ctr_task import toy_interactions

LLM = {"layers": 1, "dim": 16, "heads": 2, "ffn_mult": 2, "max_positions": 128,
       "sft_steps": 5, "sft_batch_size": 8}
ARM = {"steps_per_epoch": 6, "epochs": 2, "patience": 2, "warmup_steps": 2, "batch_size": 8,
       "lr": 0.01, "pretrain_history_texts": 40, "llm": LLM,
       "cf": {"dim": 8, "epochs": 3, "patience": 2, "batch_size": 128}}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cora_cache")


@pytest.fixture(scope="module")
def data():
    d = make_ctr(toy_interactions(), history_len=3)
    d.split_id = "toy"
    return d


def _ctx(cache, seed=0) -> Context:
    return Context(registry=Registry(), seed=seed, metrics=["auc"], valid_metric="auc",
                   device=torch.device("cpu"), cache_dir=cache)


@pytest.fixture(scope="module")
def cora(data, cache):
    torch.manual_seed(0)
    return train_method("cora", CoRAParams(**ARM), data, _ctx(cache))


def test_base_llm_weights_bit_identical_after_cora_training(cora, data, cache):
    p = CoRAParams(**ARM)
    texts = data.pretrain_texts(p.pretrain_history_texts, seed=p.llm.seed)
    fresh = load_llm(p.llm, corpus=data.tokenizer_corpus(), sft_prompts=[BOS] * len(texts),
                     sft_responses=texts, cache_dir=cache, device="cpu").model
    assert any(float(w.p.weight.detach().abs().sum()) > 0 for w in cora.wrapped)  # training moved P
    trained = {n.replace(".base.", "."): t for n, t in cora.lm.named_parameters()
               if ".p." not in n}
    fresh_params = dict(fresh.named_parameters())
    assert set(trained) == set(fresh_params)
    for name, tensor in fresh_params.items():
        assert torch.equal(trained[name], tensor), name
    out = cora.preservation(data)
    assert out["llm_weights_changed"] == 0.0 and out["ppl_drift"] == 0.0


def test_generator_output_is_unit_norm():
    torch.manual_seed(0)
    gen = CollaborativeGenerator(cf_dim=8, hidden=16, rank=4, num_queries=4, layers=2,
                                 heads=2, intermediate=32)
    a = gen(torch.randn(5, 16) * 3)
    assert a.shape == (5, 16, 4)
    assert torch.allclose(a.flatten(1).norm(dim=-1), torch.ones(5), atol=1e-6)


def test_shuffling_the_cf_input_changes_predictions(cora, data):
    real = cora.predict(data, "test")
    cora.cf_input_mode = "shuffled"
    try:
        shuffled = cora.predict(data, "test")
    finally:
        cora.cf_input_mode = "real"
    assert not np.allclose(real, shuffled)
    assert np.array_equal(real, cora.predict(data, "test"))  # deterministic at eval


def test_zero_initialised_increment_starts_as_the_frozen_llm(data, cache):
    from plugins.cora.cf import CFParams, train_cf
    from plugins.cora.model import LLMCTR, stage0_llm

    p = CoRAParams(**ARM)
    cf = train_cf(data, p.cf, 0, cache_dir=cache)
    a = LLMCTR(stage0_llm(data, p.llm, p.pretrain_history_texts, cache, "cpu"), data, "cora",
               p, cf, 0)
    t = LLMCTR(stage0_llm(data, p.llm, p.pretrain_history_texts, cache, "cpu"), data,
               "tallrec", TallRecParams(**{k: v for k, v in ARM.items() if k != "cf"}), None, 0)
    # P = 0 and LoRA's B = 0: both start exactly at the base model's Yes logit
    assert np.allclose(a.predict(data, "valid"), t.predict(data, "valid"), atol=1e-5)


def test_tallrec_changes_the_llm_and_reports_drift(data, cache):
    p = TallRecParams(**{k: v for k, v in ARM.items() if k != "cf"})
    torch.manual_seed(0)
    model = train_method("tallrec", p, data, _ctx(cache))
    out = model.preservation(data)
    assert out["llm_weights_changed"] == 1.0 and out["ppl_after"] != out["ppl_base"]


def test_validate_refuses_cora_on_a_task_it_does_not_support(write_suite):
    suite = write_suite({"suite": "x", "datasets": [{"name": "synthetic"}],
                         "methods": [{"name": "cora"}], "seeds": [0],
                         "metrics": ["ndcg@10"]})
    result = CliRunner().invoke(app, ["validate", str(suite)])
    assert result.exit_code == 2
    lines = [ln for ln in result.output.splitlines() if "cora" in ln]
    assert len(lines) == 1, result.output
    assert "'cora' supports tasks ctr but dataset 'synthetic' is a 'topk' task" in lines[0]
    assert "Traceback" not in result.output
