"""The shared tiny-LLM layer: both routes, the cache, tokenizer and log-prob helpers."""
import torch
import pytest

from harness.api import BenchError
from harness.llm import (LLMConfig, Policy, encode_pairs, load_llm, response_logprobs,
                         sample_responses, train_tokenizer)

torch.set_num_threads(1)
CORPUS = ["q0 r1 r2", "q1 r0 r3 <think> a </think> <answer> b </answer>"]
TINY = dict(layers=1, dim=32, heads=2, ffn_mult=2, max_positions=16, sft_steps=3,
            sft_batch_size=4)
PROMPTS, RESPONSES = ["q0", "q1", "q0"], ["r1 r2", "r0 r3", "r2 r2"]


def test_tokenizer_keeps_structure_tags_as_single_tokens():
    tok = train_tokenizer(CORPUS)
    ids = tok("<think> a </think> <answer> b </answer>", add_special_tokens=False)["input_ids"]
    assert len(ids) == 6
    assert tok.decode(ids) .split() == "<think> a </think> <answer> b </answer>".split()
    assert tok.pad_token and tok.eos_token and tok.bos_token and tok.unk_token
    assert tok.padding_side == "left"


def test_config_route_caches_and_path_route_gives_same_interface(tmp_path):
    cfg = LLMConfig(**TINY)
    a = load_llm(cfg, CORPUS, PROMPTS, RESPONSES, cache_dir=tmp_path, device="cpu")
    assert a.source == "config" and (a.path / "bench_llm.json").exists()
    b = load_llm(cfg, CORPUS, PROMPTS, RESPONSES, cache_dir=tmp_path, device="cpu")
    assert b.source == "cache" and b.path == a.path
    c = load_llm(LLMConfig(path=str(a.path)), device="cpu")  # the local-checkpoint route
    assert c.source == "path"
    batch = encode_pairs(a.tokenizer, PROMPTS, RESPONSES)
    outs = [response_logprobs(m.model, batch["input_ids"], batch["attention_mask"])
            for m in (a, b, c)]
    assert torch.allclose(outs[0], outs[1], atol=1e-5) and torch.allclose(outs[0], outs[2], atol=1e-5)
    assert type(a.tokenizer).__name__ == type(c.tokenizer).__name__
    # a different SFT set is a different cache entry
    d = load_llm(cfg, CORPUS, PROMPTS, ["r0 r0", "r0 r3", "r2 r2"], cache_dir=tmp_path, device="cpu")
    assert d.path != a.path


def test_gpt2_family_and_bad_inputs(tmp_path):
    llm = load_llm(LLMConfig(family="gpt2", **TINY), CORPUS, PROMPTS, RESPONSES,
                   cache_dir=tmp_path, device="cpu")
    assert llm.model.config.model_type == "gpt2"
    with pytest.raises(BenchError, match="not a local directory"):
        load_llm(LLMConfig(path="some-org/some-model"), device="cpu")
    with pytest.raises(ValueError, match="multiple of heads"):
        LLMConfig(dim=30, heads=4)


def test_logprobs_do_not_depend_on_padding_side(tmp_path):
    llm = load_llm(LLMConfig(**TINY), CORPUS, PROMPTS, RESPONSES, cache_dir=tmp_path, device="cpu")
    torch.manual_seed(0)
    s = sample_responses(llm.model, llm.tokenizer, ["q0", "q1 r0"], n=2, max_new_tokens=4)
    lp = response_logprobs(llm.model, s.input_ids, s.attention_mask)
    for i in range(len(s.texts)):  # the same sequence alone, unpadded
        keep = s.attention_mask[i].bool()
        alone = response_logprobs(llm.model, s.input_ids[i][keep][None], s.attention_mask[i][keep][None])
        m = s.response_mask[i].bool()
        assert torch.allclose(lp[i][m], alone[0][-int(m.sum()):] if m.any() else alone[0][:0], atol=1e-4)
    pol = Policy.from_llm(llm)
    assert not any(p.requires_grad for p in pol.init_model.parameters())


def test_kk_sft_start_is_trained_once_and_reused_by_content_hash(tmp_path, monkeypatch):
    """The reasoning suites' warm start: the second build with the same config, corpus and
    SFT pairs loads the cached weights and runs no SFT step; another scratchpad (other SFT
    targets) is another entry."""
    import harness.llm.build as build
    from harness.tasks.reasoning import make_reasoning

    calls = []
    real_sft = build.sft

    def counting_sft(*args, **kw):
        calls.append(args[4])  # steps
        return real_sft(*args, **kw)

    monkeypatch.setattr(build, "sft", counting_sft)
    cfg = LLMConfig(layers=1, dim=32, heads=2, ffn_mult=2, max_positions=192, sft_steps=4,
                    sft_batch_size=4)
    data = make_reasoning("knights_knaves", 8, 2, 2, [2, 3], seed=0, scratchpad="cases")
    prompts, responses = data.sft_pairs(seed=0)
    first = load_llm(cfg, data.corpus(), prompts, responses, cache_dir=tmp_path, device="cpu")
    assert first.source == "config" and calls == [4]
    again = load_llm(cfg, data.corpus(), prompts, responses, cache_dir=tmp_path, device="cpu")
    assert again.source == "cache" and again.path == first.path and calls == [4]
    for a, b in zip(first.model.parameters(), again.model.parameters()):
        assert torch.equal(a.cpu(), b.cpu())
    other = make_reasoning("knights_knaves", 8, 2, 2, [2, 3], seed=0)  # roles scratchpad
    p2, r2 = other.sft_pairs(seed=0)
    third = load_llm(cfg, other.corpus(), p2, r2, cache_dir=tmp_path, device="cpu")
    assert third.source == "config" and third.path != first.path and len(calls) == 2
