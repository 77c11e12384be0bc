"""Text for users and items: raw side-information texts, the prompts HNLMRec sends to the
LLM, and the LLM-written profiles.

Why templates exist at all: a tiny model built from a config knows nothing, so it is
pre-trained (supervised) on prompt → response pairs made from the side information of
the *training split only* (item → short profile, user + history → short profile,
user + liked item → a same-genre item the user did not interact with). The profiles used
downstream are then what the LLM writes when prompted, not the templates.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

ITEM_PROFILE_TAG = "ITEM PROFILE :"
USER_PROFILE_TAG = "USER PROFILE :"
HARD_NEGATIVE_TAG = "HARD NEGATIVE ITEM :"
GENDER = {"M": "man", "F": "woman"}


def _feature(features: dict, name: str, idx: int) -> str:
    col = features.get(name)
    if col is None:
        return ""
    value = col[idx]
    return "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)


@dataclass
class SideInfo:
    """Per-item and per-user raw facts (title, year, genres; age, gender, occupation and
    training history), read once from a :class:`harness.data.Dataset`."""

    titles: list[str]
    years: list[str]
    genres: list[list[str]]
    ages: list[str]
    genders: list[str]
    occupations: list[str]
    history: list[list[int]]   # training items per user, most recent first

    @classmethod
    def from_dataset(cls, dataset: Any) -> "SideInfo":
        data = dataset.data
        itf, uf = data.item_features, data.user_features
        titles = [_feature(itf, "movie_title", i) or f"item {data.item_tokens[i]}"
                  for i in range(data.n_items)]
        years = [_feature(itf, "release_year", i) for i in range(data.n_items)]
        genres = [_feature(itf, "class", i).split() for i in range(data.n_items)]
        train = dataset.train
        order = np.argsort(-train.timestamp, kind="stable") if train.timestamp is not None \
            else np.arange(len(train))
        history: list[list[int]] = [[] for _ in range(data.n_users)]
        for e in order:
            history[train.user[e]].append(int(train.item[e]))
        return cls(titles, years, genres,
                   [_feature(uf, "age", u) for u in range(data.n_users)],
                   [_feature(uf, "gender", u) for u in range(data.n_users)],
                   [_feature(uf, "occupation", u) for u in range(data.n_users)], history)

    @property
    def n_items(self) -> int:
        return len(self.titles)

    @property
    def n_users(self) -> int:
        return len(self.history)

    # -- raw texts --------------------------------------------------------------------------
    def item_text(self, i: int) -> str:
        year = f" ( {self.years[i]} )" if self.years[i] else ""
        genres = f" ; {' '.join(self.genres[i])}" if self.genres[i] else ""
        return f"{self.titles[i]}{year}{genres}"

    def user_text(self, u: int, n_titles: int) -> str:
        facts = []
        if self.ages[u]:
            facts.append(f"age {self.ages[u]}")
        if self.genders[u]:
            facts.append(f"gender {self.genders[u]}")
        if self.occupations[u]:
            facts.append(f"occupation {self.occupations[u]}")
        liked = " ; ".join(self.titles[i] for i in self.history[u][:n_titles])
        return " ".join(facts + ([f"liked {liked}"] if liked else [])) or f"user {u}"

    # -- template profiles: the pre-training targets ------------------------------------------
    def item_profile_template(self, i: int) -> str:
        genres = " and ".join(g.lower() for g in self.genres[i][:2]) or "general"
        decade = f" from the {self.years[i][:3]}0s" if len(self.years[i]) == 4 else ""
        return f"a {genres} film{decade}"

    def top_genres(self, u: int, k: int = 2) -> list[str]:
        counts = Counter(g for i in self.history[u] for g in self.genres[i])
        return [g for g, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:k]]

    def user_profile_template(self, u: int) -> str:
        who = []
        if self.ages[u].isdigit():
            who.append(f"a {int(self.ages[u]) // 10 * 10}s")
        who.append(GENDER.get(self.genders[u], "person"))
        if self.occupations[u]:
            who.append(f"working as {self.occupations[u]}")
        likes = " and ".join(g.lower() for g in self.top_genres(u)) or "many kinds of"
        return f"{' '.join(who)} who enjoys {likes} films"


# --- prompts ---------------------------------------------------------------------------------

def item_profile_prompt(info: SideInfo, i: int) -> str:
    return f"ITEM : {info.item_text(i)} {ITEM_PROFILE_TAG}"


def user_profile_prompt(info: SideInfo, u: int, n_titles: int) -> str:
    return f"USER : {info.user_text(u, n_titles)} {USER_PROFILE_TAG}"


def hard_negative_prompt(user_profile: str, info: SideInfo, item: int, item_profile: str) -> str:
    """Route A's prompt: who the user is and what they liked; the answer is an item that
    looks close to their taste but that they would not want."""
    return (f"USER : {user_profile} LIKED : {info.item_text(item)} PROFILE : {item_profile} "
            f"{HARD_NEGATIVE_TAG}")


def semantic_neighbour(info: SideInfo, u: int, item: int, rng: np.random.Generator,
                       train_items: set, tries: int = 50) -> int:
    """A pre-training target for the hard-negative prompt: a random item sharing a genre
    with ``item`` that ``u`` has not interacted with in training (semantic similarity, no
    collaborative signal: that is route A's, i.e. the v1 paper's, premise)."""
    want = set(info.genres[item])
    for _ in range(tries):
        j = int(rng.integers(info.n_items))
        if j not in train_items and j != item and (not want or want & set(info.genres[j])):
            return j
    return int(rng.integers(info.n_items))


@dataclass
class PretrainData:
    corpus: list[str]
    prompts: list[str]
    responses: list[str]


def pretraining_data(info: SideInfo, n_titles: int, code_vocab: Sequence[str],
                     hard_negative_pairs: int = 2000, seed: int = 0) -> PretrainData:
    """Tokenizer corpus and (prompt, response) pairs for the tiny LLM's warm start, all
    from the training split (no validation/test item ever appears as a target)."""
    rng = np.random.default_rng(seed)
    prompts, responses = [], []
    for i in range(info.n_items):
        prompts.append(item_profile_prompt(info, i))
        responses.append(info.item_profile_template(i))
    for u in range(info.n_users):
        prompts.append(user_profile_prompt(info, u, n_titles))
        responses.append(info.user_profile_template(u))
    users = [u for u in range(info.n_users) if info.history[u]]
    for _ in range(hard_negative_pairs if users else 0):
        u = users[int(rng.integers(len(users)))]
        i = info.history[u][int(rng.integers(len(info.history[u])))]
        j = semantic_neighbour(info, u, i, rng, set(info.history[u]))
        prompts.append(hard_negative_prompt(info.user_profile_template(u), info, i,
                                            info.item_profile_template(i)))
        responses.append(info.item_text(j))
    corpus = prompts + responses + [" ".join(code_vocab),
                                    "Instruct : write the hard negative of this user Query :"]
    return PretrainData(corpus, prompts, responses)
