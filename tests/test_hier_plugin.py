"""HIER: position slots, the tree GraphSAGE, the frozen relation embedding, training
through the plugin hooks, and the plugin's import boundary."""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.context import Context
from harness.tasks.medrec.synthetic import make_synthetic_medrec
from plugins.hier.encoder import HierEmbedding, code_slots, slot_onehot
from plugins.hier.relation import TreeSAGE, pretrain_relation, relation_table

ROOT = Path(__file__).resolve().parents[1]


def test_code_slots_follow_the_release():
    blank = None
    assert code_slots("4280", "icd9cm") == [blank, "4", "2", "8", "0", blank, blank, blank]
    assert code_slots("E8889", "icd9cm") == ["E", "8", "8", "8", "9", blank, blank, blank]
    assert code_slots("V3000", "icd9cm") == [blank, "V", "3", "0", "0", "0", blank, blank]
    assert code_slots("4443", "icd9proc") == [blank, "4", "4", "4", "3", blank, blank, blank]
    # ICD-10 chapter-E codes: the E-rule is for ICD-9 E codes only (flag: the release)
    assert code_slots("E119", "icd10cm")[:3] == [blank, "E", "1"]
    assert code_slots("E119", "icd10cm", code_faithful_e_rule=True)[:2] == ["E", "1"]


def test_slot_onehot_has_one_entry_per_slot_and_a_zero_pad_row():
    vocab = ["4280", "4281", "E8889", "V3000"]
    oh = slot_onehot(vocab, "icd9cm")
    assert oh.shape[0] == 5 and torch.all(oh[0] == 0)
    assert torch.all(oh[1:].sum(1) == 8)
    # codes sharing a prefix share the columns of those slots
    assert (oh[1] * oh[2]).sum() == 7


def _full_graph(model: TreeSAGE) -> torch.Tensor:
    par = model.parent
    h = model.x
    for layer in range(model.layers):
        nb = torch.where((par >= 0).unsqueeze(-1), h[par.clamp(min=0)], torch.zeros_like(h))
        v = model.lin_self[layer](h) + model.lin_nb[layer](nb)
        h = torch.relu(v) if layer < model.layers - 1 else v
    return h


def test_tree_sage_on_ancestor_sets_equals_a_full_graph_pass():
    parent = np.array([-1, 0, 0, 1, 1, 2, 3, 3, 6])
    model = TreeSAGE(parent, 8, 3, 0.5, torch.Generator().manual_seed(0)).eval()
    nodes = torch.tensor([8, 0, 5, 5, 3])
    assert torch.allclose(model(nodes), _full_graph(model)[nodes], atol=1e-6)


def test_relation_pretraining_learns_and_is_cached(tmp_path):
    parent = np.array([-1] + [0] * 4 + [1 + i // 5 for i in range(20)])
    z, losses = pretrain_relation(parent, seed=0, dim=16, epochs=30, batch_size=8)
    assert z.shape == (len(parent), 16) and losses[-1] < losses[0]

    class Tree:
        kind, nodes = "toy", [str(i) for i in range(len(parent))]

    Tree.parent = parent
    a = relation_table(Tree, 0, tmp_path, dim=16, epochs=2, batch_size=8)
    files = list((tmp_path / "medrec-relation").glob("*/tensor.pt"))
    assert len(files) == 1
    assert torch.equal(relation_table(Tree, 0, tmp_path, dim=16, epochs=2, batch_size=8), a)
    assert not torch.equal(relation_table(Tree, 1, tmp_path, dim=16, epochs=2, batch_size=8), a)


@pytest.fixture(scope="module")
def tiny_data():
    return make_synthetic_medrec(200, "aligned", n_categories=10)


def _train(registry, data, method, params, tmp_path):
    ctx = Context(registry=registry, seed=0, metrics=["jaccard"], valid_metric="jaccard",
                  device=torch.device("cpu"), cache_dir=tmp_path, workdir=tmp_path / "cells")
    base = {"dim": 16, "hidden": 16, "epochs": 2, "batch_size": 64}
    if method == "hier":
        base.update(pretrain_epochs=1, pretrain_batch_size=4096)
    return ctx.train(method, {**base, **params}, data), ctx


def test_relation_embedding_is_frozen_by_default(registry, tiny_data, tmp_path):
    trained, ctx = _train(registry, tiny_data, "hier", {}, tmp_path)
    model = trained.model
    info = tiny_data.extra["medrec"]
    for f in ("conditions", "procedures"):
        emb = model.embed[f]
        assert isinstance(emb, HierEmbedding) and emb.relation == "frozen"
        assert not emb.rel.weight.requires_grad
        assert emb.proj.weight.requires_grad  # the position projection trains
        assert emb.rel.weight not in set(model.parameters()) or not emb.rel.weight.requires_grad
        tree = info.trees[f]
        z = relation_table(tree, 0, tmp_path, dim=16, layers=3, epochs=1, batch_size=4096,
                           lr=1e-3, dropout=0.5)
        code = info.vocab[f][0]
        # after training the rows are still the pre-trained vectors
        assert torch.equal(emb.rel.weight[1], z[tree.index[code]])
        assert torch.all(emb.rel.weight[0] == 0)
    result = ctx.score(model, tiny_data, "test", ["jaccard", "prauc"])
    assert 0 <= result.metrics["jaccard"] <= 1 and "jaccard_rare" in result.metrics
    assert set(result.per_user["jaccard"]) == {s["sample_id"] for s in tiny_data.test}


def test_finetuned_relation_moves_and_ablations_build(registry, tiny_data, tmp_path):
    model = _train(registry, tiny_data, "hier", {"relation": "finetune"}, tmp_path)[0].model
    info = tiny_data.extra["medrec"]
    emb = model.embed["conditions"]
    assert emb.rel.weight.requires_grad
    z = relation_table(info.trees["conditions"], 0, tmp_path, dim=16, layers=3, epochs=1,
                       batch_size=4096, lr=1e-3, dropout=0.5)
    rows = [info.trees["conditions"].index[c] for c in info.vocab["conditions"]]
    assert not torch.allclose(emb.rel.weight[1:], z[rows])
    pos = _train(registry, tiny_data, "hier", {"relation": False}, tmp_path)[0].model
    assert not hasattr(pos.embed["conditions"], "rel")
    rel = _train(registry, tiny_data, "hier", {"position": False}, tmp_path)[0].model
    assert not hasattr(rel.embed["conditions"], "proj")
    for enc in ("flat", "flat_unk", "flat_anc"):
        m, _ = _train(registry, tiny_data, "gamenet_lite", {"encoder": enc}, tmp_path)
        assert m.history["epochs_run"] >= 1


def test_flat_unk_zeroes_codes_unseen_in_training(registry, tiny_data, tmp_path):
    model = _train(registry, tiny_data, "gamenet_lite", {"encoder": "flat_unk"}, tmp_path)[0].model
    info = tiny_data.extra["medrec"]
    emb = model.embed["conditions"]
    unseen = [i + 1 for i, c in enumerate(info.vocab["conditions"])
              if c not in info.train_codes["conditions"]]
    assert unseen and torch.all(emb(torch.tensor(unseen)) == 0)


def test_plugin_imports_only_the_public_surface():
    allowed = ("harness.api", "harness.hookspecs", "harness.blocks", "harness.llm",
               "harness.tasks")
    for path in (ROOT / "plugins" / "hier").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                    and node.module.startswith("harness"):
                assert node.module.startswith(allowed), (path.name, node.module)
