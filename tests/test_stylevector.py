"""StyleVector plugin and the personalized_generation task (issue 18's "Done when")."""
from __future__ import annotations

import itertools
import json

import pytest
import torch

from harness.api import BenchError
from harness.llm import LLMConfig, load_llm
from harness.tasks.personalization import (ATTRIBUTES, PRODUCTS, RATINGS, Example, User,
                                           content_correct, load_lamp, make_example,
                                           make_personalization, meteor, parse_style, rouge,
                                           score_predictions)
from plugins.stylevector import arms
from plugins.stylevector.steering import decoder_layers, steer

TINY = LLMConfig(layers=2, dim=32, heads=2, ffn_mult=2, max_positions=96, sft_steps=40,
                 sft_batch_size=16)


@pytest.fixture(scope="module")
def data():
    return make_personalization(n_pool_users=6, n_valid_users=2, n_test_users=3, history=4,
                                queries=2, n_pretrain=120, seed=1)


@pytest.fixture(scope="module")
def llm(data, tmp_path_factory):
    prompts, responses = data.sft_pairs()
    out = load_llm(TINY, data.corpus(), prompts, responses,
                   cache_dir=tmp_path_factory.mktemp("llm"), device="cpu")
    for p in out.model.parameters():
        p.requires_grad_(False)
    return out


# --- task: generator, parser, metrics -------------------------------------------------------

def test_parser_recovers_every_attribute_combination_exactly():
    for values in itertools.product(*ATTRIBUTES.values()):
        style = dict(zip(ATTRIBUTES, values))
        for product, rating in itertools.product([p for p, _, _ in PRODUCTS[:2]], RATINGS):
            ex = make_example(product, rating, style)
            assert parse_style(ex.response) == style, ex.response
            assert content_correct(ex.response, ex.content)


def test_parser_recovers_generated_users_and_tokenizer_round_trips(data, llm):
    for u in data.valid + data.test:
        for e in u.history + u.queries:
            assert parse_style(e.response) == u.style
            ids = llm.tokenizer(e.response, add_special_tokens=False)["input_ids"]
            assert llm.tokenizer.decode(ids) == e.response  # model text parses the same way


def test_evaluation_users_have_held_out_combinations(data):
    assert data.diagnostics["eval_users_with_unseen_tuple"] == 1.0
    assert len({tuple(u.style.values()) for u in data.valid + data.test}) == 5


def test_content_is_shared_across_users(data):
    u, v = data.test[0], data.test[1]
    ex_u = make_example("laptop", 5, u.style)
    ex_v = make_example("laptop", 5, v.style)
    assert ex_u.prompt == ex_v.prompt and ex_u.content == ex_v.content
    assert content_correct(ex_v.response, ex_u.content)
    assert not content_correct(make_example("laptop", 1, u.style).response, ex_u.content)


def test_rouge_equals_rouge_score_on_a_hand_example():
    from rouge_score import rouge_scorer

    ref, pred = "the battery is very good", "the battery was good"
    direct = rouge_scorer.RougeScorer(["rouge1", "rougeL"], use_stemmer=True).score(ref, pred)
    ours = rouge(ref, pred)
    assert ours["rouge_1"] == direct["rouge1"].fmeasure
    assert ours["rouge_l"] == direct["rougeL"].fmeasure
    # by hand: 3 shared unigrams (the, battery, good), LCS 3; P = 3/4, R = 3/5
    assert ours["rouge_l"] == pytest.approx(2 * 0.75 * 0.6 / 1.35)


def test_meteor_runs_offline_without_synonyms():
    assert meteor("the sound is good .", "the sound is good .") > 0.9
    # "great" would match "good" through WordNet synonyms; with the stub it must not
    assert meteor("good", "great") == 0.0


def test_score_predictions_keys_and_perfect_outputs(data):
    preds = [[q.response for q in u.queries] for u in data.test]
    means, per = score_predictions(data.test, preds)
    assert means["rouge_l"] == 1.0 and means["style_acc"] == 1.0 and means["content_acc"] == 1.0
    assert set(per["rouge_l"]) == {f"{u.uid}/{j}" for u in data.test for j in range(2)}


# --- LaMP loader -----------------------------------------------------------------------------

def _lamp(tmp_path, questions, outputs=None):
    q = tmp_path / "questions.json"
    q.write_text(questions if isinstance(questions, str) else json.dumps(questions))
    o = None
    if outputs is not None:
        o = tmp_path / "outputs.json"
        o.write_text(json.dumps(outputs))
    return q, o


GOOD = [{"id": "1", "input": "Generate a headline for: stocks rise",
         "profile": [{"id": "p1", "text": "rain falls", "title": "Rain Falls Again"},
                     {"id": "p2", "text": "cats nap", "title": "Cats Nap All Day"}]},
        {"id": "2", "input": "Generate a headline for: team wins",
         "profile": [{"id": "p3", "text": "sun shines", "title": "Sun Is Back"}]}]
GOLDS = {"task": "LaMP_4", "golds": [{"id": "1", "output": "Stocks Rise"},
                                     {"id": "2", "output": "Team Wins"}]}


def test_lamp_loader_reads_a_fixture(tmp_path):
    q, o = _lamp(tmp_path, GOOD, GOLDS)
    d = load_lamp(q, o, task="LaMP_4", valid_share=0.5)
    users = d.valid + d.test
    assert len(users) == 2 and len(d.valid) == 1
    u1 = next(u for u in users if u.uid == "1")
    assert u1.queries[0].response == "Stocks Rise"
    assert [e.response for e in u1.history] == ["Rain Falls Again", "Cats Nap All Day"]
    assert u1.history[0].prompt == "rain falls"


@pytest.mark.parametrize("questions,outputs,needle", [
    ("[{not json", None, "not valid JSON"),
    ({"id": "1"}, None, "expected a non-empty JSON list"),
    ([{"id": "1", "input": "x"}], GOLDS, "entry 0: missing key 'profile'"),
    ([{"id": "1", "input": "x", "profile": [{"text": "a"}]}], GOLDS, "profile[0]: missing key 'title'"),
    ([{"id": "1", "input": "x", "profile": "abc"}], GOLDS, "'profile' must be a list"),
    ([{"id": "9", "input": "x", "profile": [{"text": "a", "title": "b"}]}], GOLDS, "no reference"),
    (GOOD, {"task": "LaMP_4"}, "missing key 'golds'"),
])
def test_lamp_loader_rejects_malformed_files_in_one_line(tmp_path, questions, outputs, needle):
    q, o = _lamp(tmp_path, questions, outputs)
    with pytest.raises(BenchError) as err:
        load_lamp(q, o, task="LaMP_4")
    msg = str(err.value)
    assert needle in msg and "\n" not in msg and str(tmp_path) in msg


# --- steering -------------------------------------------------------------------------------

def _generate(llm, prompts):
    tok = llm.tokenizer
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    return llm.model.generate(**enc, max_new_tokens=12, do_sample=False,
                              pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)


def test_alpha_zero_reproduces_unsteered_generation_token_for_token(data, llm):
    prompts = [q.prompt for u in data.test for q in u.queries]
    plain = _generate(llm, prompts)
    vec = torch.randn(len(prompts), TINY.dim) * 10
    for layer in range(TINY.layers):
        for every in (False, True):
            with steer(llm.model, layer, vec, 0.0, all_positions=every):
                steered = _generate(llm, prompts)
            assert torch.equal(plain, steered)


def test_hook_is_removed_after_generation(data, llm):
    prompts = [q.prompt for u in data.test for q in u.queries]
    before = _generate(llm, prompts)
    vec = torch.randn(TINY.dim) * 50
    with steer(llm.model, 1, vec, 4.0):
        steered = _generate(llm, prompts)
    assert not torch.equal(before, steered)  # the steering did act
    assert all(not b._forward_hooks for b in decoder_layers(llm.model))
    assert torch.equal(before, _generate(llm, prompts))
    with pytest.raises(RuntimeError):  # removed even when generation fails
        with steer(llm.model, 1, vec, 4.0):
            raise RuntimeError("boom")
    assert all(not b._forward_hooks for b in decoder_layers(llm.model))


def _arm(cls, data, llm, **kw):
    return cls(llm.model, llm.tokenizer, data, max_new_tokens=24, device="cpu", **kw)


def test_style_vector_is_zero_for_a_user_who_writes_like_the_model(data, llm):
    base = _arm(arms.NoPersonalization, data, llm)
    u = data.test[0]
    own = arms.greedy(llm.model, llm.tokenizer, [e.prompt for e in u.history], 24, "cpu")
    mimic = User("mimic", [Example(e.prompt, t) for e, t in zip(u.history, own)], u.queries)
    sv = _arm(arms.StyleVector, data, llm, layers=[0, 1],
              positions=["last", "mean_response", "mean_all"])
    vecs = sv.vectors([mimic, data.test[1]])
    assert len(vecs) == 6
    for v in vecs.values():
        assert torch.count_nonzero(v[0]) == 0
        assert torch.count_nonzero(v[1]) > 0  # a real user's is not
    sv.choice = ("mean_response", 1, 4.0)
    assert sv.predict([mimic]) == base.predict([mimic])  # zero vector: unsteered output


def test_stylevector_ablations_and_storage(data, llm):
    users = data.test
    vec = {}
    for neg in ("model", "none", "other_users"):
        sv = _arm(arms.StyleVector, data, llm, layers=[1], negatives=neg)
        vec[neg] = sv.vectors(users)[("last", 1)]
        preds = sv.predict(users)
        assert [len(p) for p in preds] == [len(u.queries) for u in users]
        assert sv.storage_bytes == [TINY.dim * 4.0] * len(users)
        assert sv.added_tokens == [0.0] * sum(len(u.queries) for u in users)
    assert not torch.allclose(vec["model"], vec["none"])
    assert not torch.allclose(vec["model"], vec["other_users"])
    # other users as negatives, equal history sizes: the vectors sum to zero over users
    assert torch.allclose(vec["other_users"].sum(0), torch.zeros(TINY.dim), atol=1e-4)


def test_selection_uses_validation_users_only(data, llm):
    sv = _arm(arms.StyleVector, data, llm, layers=[0, 1], alphas=[0.5, 2.0],
              positions=["last", "mean_response"])
    sv.select(data.valid, "rouge_l")
    assert sv.choice in sv.candidates()
    assert len(sv.history["valid_curve"]) == 8
    assert sv._cache and set(next(iter(sv._cache))) == {u.uid for u in data.valid}


def test_rag_retrieves_same_product_and_counts_added_tokens(data, llm):
    rag = _arm(arms.RAGBM25, data, llm, ks=[1])
    u = data.test[0]
    hist = u.history[0]
    hit = rag.retrieve(u, hist.prompt, 1)
    assert hit == [hist]
    rag.predict([u])
    assert all(t > 0 for t in rag.added_tokens)


def test_lora_storage_is_exact_and_selection_early_stops(data, llm):
    lora = _arm(arms.LoRAPerUser, data, llm, r=4, lora_alpha=8, max_steps=4, eval_every=2,
                patience=1)
    lora.select(data.valid, "rouge_l")
    assert lora.steps in (2, 4)
    preds = lora.predict(data.test[:1])
    assert len(preds[0]) == len(data.test[0].queries)
    # q_proj and v_proj: A (r x d) and B (d x r) each, per layer, float32
    assert lora.storage_bytes == [2 * 4 * TINY.dim * 2 * TINY.layers * 4.0]
    assert all(not b._forward_hooks for b in decoder_layers(llm.model))
    assert not any(p.requires_grad for p in llm.model.parameters())  # base untouched


def test_masked_steering_acts_only_under_its_mask_and_is_removed(data, llm):
    from harness.llm import encode_pairs
    from plugins.stylevector.steering import steer_masked

    b = encode_pairs(llm.tokenizer, [q.prompt for q in data.test[0].queries],
                     [q.response for q in data.test[0].queries])
    ids, att = b["input_ids"], b["attention_mask"]
    with torch.no_grad():
        plain = llm.model(input_ids=ids, attention_mask=att).logits
        vec = torch.randn(TINY.dim) * 20
        with steer_masked(llm.model, 1, vec, 3.0, torch.zeros_like(ids)):
            same = llm.model(input_ids=ids, attention_mask=att).logits
        mask = b["response_mask"]
        with steer_masked(llm.model, 1, vec, 3.0, mask):
            moved = llm.model(input_ids=ids, attention_mask=att).logits
    assert torch.equal(plain, same)
    first = int(mask[0].nonzero()[0])
    assert torch.equal(plain[0, :first], moved[0, :first])  # causal: before the mask, unchanged
    assert not torch.allclose(plain[0, first:], moved[0, first:])
    assert all(not b._forward_hooks for b in decoder_layers(llm.model))


@pytest.mark.parametrize("task,profile", [
    ("LaMP_4", [{"id": "p1", "text": "rain falls in town", "title": "Rain Falls Again"},
                {"id": "p2", "text": "cats nap all day", "title": "Cats Nap All Day"}]),
    ("LaMP_7", [{"id": "p1", "text": "so tired today lol"}, {"id": "p2", "text": "coffee time lol"}]),
])
def test_every_arm_runs_on_lamp_format_users(tmp_path, task, profile):
    qs = [{"id": str(i), "input": f"headline for: story number {i}", "profile": profile}
          for i in range(4)]
    golds = {"golds": [{"id": str(i), "output": f"Story {i} Lol"} for i in range(4)]}
    q, o = _lamp(tmp_path, qs, golds)
    d = load_lamp(q, o, task=task, valid_share=0.5)
    cfg = TINY.model_copy(update={"sft_steps": 5})
    prompts, responses = d.sft_pairs()
    llm = load_llm(cfg, d.corpus(), prompts, responses, cache_dir=tmp_path / "c", device="cpu")
    for cls, kw in ((arms.NoPersonalization, {}), (arms.RAGBM25, {"ks": [1]}),
                    (arms.StyleVector, {"layers": [1], "alphas": [1.0]})):
        arm = _arm(cls, d, llm, **kw)
        preds = arm.predict(d.test)
        means, _ = score_predictions(d.test, preds)
        assert set(means) == {"rouge_1", "rouge_l", "meteor"}  # no style/content on real data


def test_pca_and_logreg_extractors_are_aligned_and_scaled_to_the_mean_difference():
    from plugins.stylevector.steering import style_vector

    g = torch.Generator().manual_seed(0)
    shift = torch.zeros(16)
    shift[3] = 4.0
    neg = torch.randn(40, 16, generator=g)
    pos = neg + shift + 0.1 * torch.randn(40, 16, generator=g)
    mean = style_vector(pos, neg)
    assert torch.allclose(mean, pos.mean(0) - neg.mean(0))
    assert torch.equal(style_vector(pos, None), pos.mean(0))  # the positive-mean ablation
    for kind in ("pca", "logreg"):
        v = style_vector(pos, neg, kind)
        direction = v / v.norm()
        assert float(v @ mean) > 0                                    # sign-aligned
        assert torch.isclose(v.norm(), (mean @ direction).abs(), rtol=1e-4)  # mean's projection
        assert int(direction.abs().argmax()) == 3                     # finds the shifted axis
