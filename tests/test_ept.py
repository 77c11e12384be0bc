"""EPT plugin: frozen backbone, parameter parity, DePT = short prompt tuning at a zero
update, gating, and a full cell through the runner."""
from __future__ import annotations

import copy

import pytest
import torch

from harness.api import BenchError
from harness.context import Context
from harness.tasks.text_classification import make_text_classification
from plugins.ept import PEFTParams
from plugins.ept.arms import ARMS, MATCHED, ArmModule, plan, shape_of
from plugins.ept.backbone import load_backbone
from plugins.ept.modules import DecomposedPrompt, MultiSpaceProjection
from plugins.ept.parity import Shape
from plugins.ept.train import train_arm

torch.set_num_threads(1)
LLM = {"layers": 1, "dim": 32, "heads": 2, "ffn_mult": 2, "max_positions": 96,
       "sft_steps": 5, "sft_batch_size": 8}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    data = make_text_classification(tasks=["sentiment", "nli", "sts"], n_train=24, n_valid=8,
                                    n_test=8, pretrain_per_task=16)
    p = PEFTParams(llm=LLM, max_steps=4, eval_every=2, batch_size=4, budget_length=24,
                   prompt_length=4, n_spaces=2)
    llm = load_backbone(p.llm, data, tmp_path_factory.mktemp("cache"), "cpu")
    return data, p, llm


def _ctx(seed=0):
    return Context(registry=None, seed=seed, metrics=[], valid_metric="mean_score",
                   device=torch.device("cpu"))


@pytest.mark.parametrize("arm", ["pt_long", "pt_short", "dept", "ept", "ept_no_fusion",
                                 "ept_no_multispace", "lora"])
def test_backbone_weights_do_not_change_during_tuning(tiny, arm):
    data, p, llm = tiny
    before = copy.deepcopy(llm.model.state_dict())
    shape = shape_of(llm.model, p.max_length)
    model = train_arm(plan(arm, p, shape, 0), p, llm.model, llm.tokenizer, data, _ctx(), "cpu")
    for name, w in llm.model.state_dict().items():
        assert torch.equal(w, before[name]), f"{arm} changed backbone weight {name}"
    # and training did move the arm's own parameters (the check is not vacuous)
    st = model.states["nli"]
    fresh = ArmModule(st.module.plan, llm.model, p, _ctx().rng("ept.init.nli"))
    moved = [n for n, w in st.module.trainable_state().items()
             if not torch.equal(w, fresh.trainable_state()[n])]
    assert moved, f"{arm}: no trainable parameter changed"
    # the trainable part of a frozen-backbone arm holds no backbone weight
    assert st.module.n_trainable() == st.module.plan.expected_params


def test_full_fine_tuning_trains_a_copy_not_the_shared_backbone(tiny):
    data, p, llm = tiny
    before = copy.deepcopy(llm.model.state_dict())
    train_arm(plan("full_ft", p, shape_of(llm.model, p.max_length), 0), p, llm.model,
              llm.tokenizer, data, _ctx(), "cpu")
    assert all(torch.equal(w, before[n]) for n, w in llm.model.state_dict().items())


@pytest.mark.parametrize("shape", [Shape(64, 48, 2, 64), Shape(128, 64, 2, 128),
                                   Shape(32, 40, 1, 16)])
@pytest.mark.parametrize("budget_length,n_spaces", [(40, 4), (64, 2), (96, 8)])
def test_arm_sizes_solve_the_parity_equation(shape, budget_length, n_spaces):
    """l*d = m*d + r*(s+d) [+ EPT modules]; LoRA r*(2d + d + kv) per layer; within 5%."""
    p = PEFTParams(budget_length=budget_length, n_spaces=n_spaces, parity_tolerance=0.05)
    budget = budget_length * shape.dim
    for arm in MATCHED:
        pl = plan(arm, p, shape, 0)
        assert abs(pl.expected_params - budget) <= 0.05 * budget, (arm, pl)
    dept = plan("dept", p, shape, 0)
    assert dept.expected_params == 8 * shape.dim + dept.rank * (shape.max_length + shape.dim)
    assert plan("ept", p, shape, 0).rank < dept.rank  # EPT's modules come out of the rank


def test_built_arms_have_the_planned_trainable_counts(tiny):
    data, p, llm = tiny
    shape = shape_of(llm.model, p.max_length)
    budget = p.budget_length * shape.dim
    for arm in ARMS:
        pl = plan(arm, p, shape, sum(w.numel() for w in llm.model.parameters()))
        module = ArmModule(pl, llm.model, p, torch.Generator().manual_seed(0))
        assert module.n_trainable() == pl.expected_params, arm
        if arm in MATCHED:
            assert abs(module.n_trainable() - budget) <= p.parity_tolerance * budget, arm


def test_parity_miss_is_refused():
    p = PEFTParams(budget_length=3, prompt_length=2, n_spaces=8, space_dim=4)
    with pytest.raises(BenchError, match="parity budget"):
        plan("ept", p, Shape(64, 48, 2, 64), 0)


def test_dept_with_zero_update_equals_short_prompt_tuning(tiny):
    data, p, llm = tiny
    shape = shape_of(llm.model, p.max_length)
    pt = ArmModule(plan("pt_short", p, shape, 0), llm.model, p, torch.Generator().manual_seed(0))
    dept = ArmModule(plan("dept", p, shape, 0), llm.model, p, torch.Generator().manual_seed(1))
    assert dept.decomposed.rank > 0 and torch.count_nonzero(dept.decomposed.lora_b) == 0
    with torch.no_grad():
        dept.decomposed.prompt.copy_(pt.model.prompt_encoder["default"].embedding.weight)
    tok = llm.tokenizer
    texts = [e.text for e in data.test["nli"][:5]]
    rows = tok(texts, add_special_tokens=False)["input_ids"]
    from plugins.ept.backbone import pad_right

    ids, mask = pad_right(rows, tok.pad_token_id)
    with torch.no_grad():
        a, b = pt(ids, mask), dept(ids, mask)
        assert torch.allclose(a, b, atol=1e-5)
        dept.decomposed.lora_b.fill_(0.1)  # a non-zero update does change the output
        assert not torch.allclose(pt(ids, mask), dept(ids, mask), atol=1e-4)


@pytest.mark.parametrize("gate", ["prompt", "token"])
def test_gating_weights_sum_to_one(gate):
    torch.manual_seed(0)
    ms = MultiSpaceProjection(dim=16, n_spaces=4, space_dim=2, gate=gate)
    prompt = torch.randn(5, 16) * 3
    g = ms.gate_weights(prompt)
    assert g.shape == ((4,) if gate == "prompt" else (5, 4))
    assert torch.allclose(g.sum(-1), torch.ones(g.shape[:-1]))
    assert (g > 0).all()


def test_ept_prompt_pieces():
    torch.manual_seed(0)
    dp = DecomposedPrompt(16, 3, 10, rank=2, fusion_dim=4, n_spaces=2, space_dim=2)
    # at init the projection is zero (V = 0), so P_final = P_f
    assert torch.allclose(dp.final_prompt(), dp.fusion(dp.prompt, torch.cat([dp.lora_b, dp.prompt])))
    out, mask = dp(torch.zeros(2, 6, 16), torch.ones(2, 6, dtype=torch.long))
    assert out.shape == (2, 9, 16) and mask.shape == (2, 9) and mask[:, :3].all()
    with pytest.raises(ValueError, match="max_length"):
        dp(torch.zeros(1, 11, 16), torch.ones(1, 11, dtype=torch.long))


def test_same_seed_same_predictions(tiny):
    data, p, llm = tiny
    shape = shape_of(llm.model, p.max_length)
    texts = [e.text for e in data.test["sentiment"]]
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        m = train_arm(plan("ept", p, shape, 0), p, llm.model, llm.tokenizer, data, _ctx(3), "cpu")
        runs.append(m.predict("sentiment", texts))
    assert (runs[0] == runs[1]).all()
    for k in ("params_trainable", "sec_per_step", "input_tokens", "tasks_converged"):
        assert k in m.history


def test_a_local_checkpoint_is_a_backbone_through_the_same_code(tiny, tmp_path):
    """``llm: {path: DIR}`` (a local Hugging Face checkpoint) goes through the same
    harness.llm route and trains like the config-built backbone."""
    data, p, llm = tiny
    ckpt = tmp_path / "ckpt"
    llm.model.save_pretrained(ckpt)
    llm.tokenizer.save_pretrained(ckpt)
    q = p.model_copy(update={"llm": p.llm.model_copy(update={"path": str(ckpt), "sft_steps": 0})})
    local = load_backbone(q.llm, data, tmp_path / "cache", "cpu")
    assert local.source == "path"
    assert all(torch.equal(a, b) for a, b in zip(local.model.state_dict().values(),
                                                  llm.model.state_dict().values()))
    shape = shape_of(local.model, q.max_length)
    model = train_arm(plan("dept", q, shape, 0), q, local.model, local.tokenizer, data, _ctx(), "cpu")
    out = model.predict("nli", [e.text for e in data.test["nli"]])
    assert out.shape == (len(data.test["nli"]), 3)
