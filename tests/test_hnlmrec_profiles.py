"""HNLMRec profiles: the side-information texts, the prompts, the pre-training pairs (from
the training split only) and the LLM-written profiles."""
from __future__ import annotations

import numpy as np

from plugins.hnlmrec.params import HNLMRecParams
from plugins.hnlmrec.profiles import (HARD_NEGATIVE_TAG, SideInfo, hard_negative_prompt,
                                      pretraining_data, user_profile_prompt)
from plugins.hnlmrec.semantic import CODE_VOCAB, profiles
from tests.hnlmrec_fixtures import TINY, tiny_dataset


def test_side_info_reads_titles_genres_and_training_history():
    ds = tiny_dataset()
    info = SideInfo.from_dataset(ds)
    assert info.item_text(3).startswith("Movie ") and f"( {1963} )" in info.item_text(3)
    assert set(info.genres[3]) == set(ds.data.item_features["class"][3].split())
    # history: exactly the user's training items, most recent first
    train = ds.train
    for u in range(ds.n_users):
        mine = train.timestamp[train.user == u]
        items = train.item[train.user == u][np.argsort(-mine, kind="stable")]
        assert info.history[u] == items.tolist()
    text = info.user_text(1, n_titles=2)
    assert "age 19" in text and "gender M" in text and "occupation student" in text
    assert text.count(";") == min(2, len(info.history[1])) - 1
    assert info.titles[info.history[1][0]] in text


def test_user_profile_template_names_the_top_genre():
    info = SideInfo.from_dataset(tiny_dataset())
    u = max(range(info.n_users), key=lambda v: len(info.history[v]))
    top = info.top_genres(u, 1)[0]
    assert top.lower() in info.user_profile_template(u)
    assert "woman" in info.user_profile_template(0) and "man" in info.user_profile_template(1)


def test_hard_negative_pretraining_targets_are_never_training_positives():
    info = SideInfo.from_dataset(tiny_dataset())
    pre = pretraining_data(info, 3, CODE_VOCAB, hard_negative_pairs=300, seed=0)
    by_text = {info.item_text(i): i for i in range(info.n_items)}
    pairs = [(p, r) for p, r in zip(pre.prompts, pre.responses) if p.endswith(HARD_NEGATIVE_TAG)]
    assert len(pairs) == 300
    for prompt, response in pairs:
        j = by_text[response]
        liked = [i for i in range(info.n_items) if f"LIKED : {info.item_text(i)} PROFILE" in prompt]
        assert j not in liked
    assert all(tok in " ".join(pre.corpus) for tok in ("cf0p", "cf63n"))


def test_prompts_carry_the_profile_and_the_item():
    info = SideInfo.from_dataset(tiny_dataset())
    prompt = hard_negative_prompt("a 20s man", info, 5, "a drama film")
    assert "a 20s man" in prompt and info.item_text(5) in prompt and prompt.endswith(HARD_NEGATIVE_TAG)
    assert user_profile_prompt(info, 2, 1).startswith("USER : age 20")


def test_llm_writes_one_profile_per_item_and_user_and_caches_them(tmp_path):
    from harness.llm import load_llm

    ds = tiny_dataset()
    info = SideInfo.from_dataset(ds)
    p = HNLMRecParams(**TINY)
    pre = pretraining_data(info, p.history_titles, CODE_VOCAB)
    llm = load_llm(p.llm, pre.corpus, pre.prompts, pre.responses, cache_dir=tmp_path, device="cpu")
    items, users, meta = profiles(llm, info, p, tmp_path, "cpu")
    assert len(items) == ds.n_items and len(users) == ds.n_users
    assert meta["profiles_source"] == "llm" and all(isinstance(t, str) for t in items + users)
    again = profiles(llm, info, p, tmp_path, "cpu")
    assert again[2]["profiles_source"] == "cache" and again[0] == items and again[1] == users
