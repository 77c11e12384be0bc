"""Personalised text generation: synthetic users with known styles, a LaMP-format loader,
and the metrics (ROUGE-1/L, METEOR without synonyms, style and content accuracy).

Why synthetic users: on the real LaMP/LongLaMP benchmarks a user's "style" is unknown,
so one can only measure overlap with a reference. Here each user is a tuple of
independent style attributes (opener, casing, final mark, intensifier, synonym set,
sign-off, length) and the content of a response is a function of the input alone (the
product's aspects and the rating's polarity), shared by every user. Style is then the
only thing that differs between users, a rule parser recovers it exactly, and a method's
style accuracy is measurable. Evaluation users have attribute combinations that no
pre-training user had (every value was seen, never the tuple).

Texts are written pre-tokenised (punctuation as separate, space-delimited tokens), so a
word-level tokenizer round-trips them exactly and the parser reads model output and
generated references alike. A LaMP-format JSON file (``questions`` + optional
``outputs``) loads into the same :class:`User` shape, so the same methods and metrics run
on the real benchmark with a local checkpoint.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from ..api import BenchError, TaskData

# --- style attributes -------------------------------------------------------------------------

#: attribute -> its values; the first value of each is the neutral style
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "opener": ("none", "honestly ,", "well ,", "ok so"),
    "casing": ("normal", "lower"),
    "final": (".", "!", "!!!", "..."),
    "intensifier": ("very", "really", "super", "totally"),
    "synonyms": ("good/bad", "great/awful", "excellent/poor"),
    "signoff": ("none", "- cheers", "# review", ":)"),
    "length": ("1", "2"),
}
NEUTRAL: dict[str, str] = {a: v[0] for a, v in ATTRIBUTES.items()}
FINAL_MARKS = set(ATTRIBUTES["final"])

PRODUCTS: tuple[tuple[str, str, str], ...] = (  # product, first aspect, second aspect
    ("headphones", "sound", "battery"), ("laptop", "screen", "keyboard"),
    ("blender", "motor", "lid"), ("backpack", "zipper", "straps"),
    ("camera", "lens", "grip"), ("phone", "battery", "screen"),
    ("kettle", "handle", "spout"), ("jacket", "fabric", "hood"),
    ("lamp", "light", "switch"), ("chair", "seat", "wheels"),
    ("watch", "strap", "display"), ("tent", "poles", "zipper"),
    ("mixer", "bowl", "motor"), ("speaker", "bass", "volume"),
    ("mouse", "buttons", "cable"), ("scooter", "brakes", "wheels"),
)
RATINGS = (1, 2, 4, 5)
ASPECTS = {a for _, a1, a2 in PRODUCTS for a in (a1, a2)}


def polarity(rating: int) -> str:
    return "pos" if rating >= 4 else "neg"


def adjective(synonyms: str, pol: str) -> str:
    good, bad = synonyms.split("/")
    return good if pol == "pos" else bad


POS_WORDS = {adjective(s, "pos") for s in ATTRIBUTES["synonyms"]}
NEG_WORDS = {adjective(s, "neg") for s in ATTRIBUTES["synonyms"]}


@dataclass(frozen=True)
class Example:
    """One (input, output) pair; ``content`` holds the input's facts for grading
    (product, aspects, polarity) and is empty for real (LaMP) data."""

    prompt: str
    response: str
    key: str = ""
    content: dict = field(default_factory=dict, compare=False, hash=False)


@dataclass
class User:
    """A user: a history of (input, own output) pairs and held-out queries with the
    user's reference outputs. ``style`` is the attribute tuple (synthetic users only)."""

    uid: str
    history: list[Example]
    queries: list[Example]
    style: Optional[dict] = None


def review_prompt(product: str, rating: int) -> str:
    return f"write a review of the {product} rated {rating} / 5 :"


def render(product: str, rating: int, style: dict) -> str:
    """The response of a user with ``style`` to the input (product, rating)."""
    _, a1, a2 = next(p for p in PRODUCTS if p[0] == product)
    adj = adjective(style["synonyms"], polarity(rating))
    sentences = [f"the {a1} is {style['intensifier']} {adj} {style['final']}"]
    if style["length"] == "2":
        sentences.append(f"the {a2} is {style['intensifier']} {adj} too {style['final']}")
    if style["casing"] == "normal":
        sentences = [s[0].upper() + s[1:] for s in sentences]
    text = " ".join(sentences)
    if style["opener"] != "none":
        opener = style["opener"]
        if style["casing"] == "normal":
            opener = opener[0].upper() + opener[1:]
            text = text[0].lower() + text[1:]
        text = f"{opener} {text}"
    if style["signoff"] != "none":
        text = f"{text} {style['signoff']}"
    return text


def make_example(product: str, rating: int, style: dict) -> Example:
    _, a1, a2 = next(p for p in PRODUCTS if p[0] == product)
    return Example(review_prompt(product, rating), render(product, rating, style),
                   f"{product}:{rating}",
                   {"product": product, "aspects": (a1, a2), "polarity": polarity(rating)})


# --- the rule parser -------------------------------------------------------------------------

_TOKEN = re.compile(r"\w+|[^\w\s]+")


def tokens(text: str) -> list[str]:
    """Word-level tokens as the tokenizer's pre-tokenizer splits them."""
    return _TOKEN.findall(text)


def parse_style(text: str) -> dict[str, Optional[str]]:
    """Recover each style attribute from a response; ``None`` where the text shows none
    of the attribute's values (an ill-formed response)."""
    toks = tokens(text)
    low = [t.lower() for t in toks]
    out: dict[str, Optional[str]] = {}
    out["opener"] = "none"
    for op in ATTRIBUTES["opener"][1:]:
        parts = tokens(op)
        if low[:len(parts)] == parts:
            out["opener"] = op
    letters = [c for c in text if c.isalpha()]
    out["casing"] = None if not letters else ("lower" if not any(c.isupper() for c in letters)
                                              else "normal")
    marks = [t for t in toks if t in FINAL_MARKS]
    out["final"] = marks[0] if marks and all(m == marks[0] for m in marks) else None
    intens = [t for t in low if t in ATTRIBUTES["intensifier"]]
    out["intensifier"] = intens[0] if intens and all(i == intens[0] for i in intens) else None
    found = [s for s in ATTRIBUTES["synonyms"] if any(w in low for w in s.split("/"))]
    out["synonyms"] = found[0] if len(found) == 1 else None
    out["signoff"] = "none"
    for so in ATTRIBUTES["signoff"][1:]:
        parts = tokens(so)
        if low[-len(parts):] == parts:
            out["signoff"] = so
    out["length"] = str(len(marks)) if len(marks) in (1, 2) else None
    return out


def style_matches(text: str, style: dict) -> dict[str, bool]:
    parsed = parse_style(text)
    return {a: parsed[a] == style[a] for a in ATTRIBUTES}


def content_correct(text: str, content: dict) -> bool:
    """The polarity word has the input's polarity and the first aspect named is the
    product's first aspect (what every user writes for this input)."""
    low = [t.lower() for t in tokens(text)]
    adjs = [w for w in low if w in POS_WORDS | NEG_WORDS]
    aspects = [w for w in low if w in ASPECTS]
    want = POS_WORDS if content["polarity"] == "pos" else NEG_WORDS
    return bool(adjs) and all(a in want for a in adjs) and bool(aspects) \
        and aspects[0] == content["aspects"][0]


# --- generated users ---------------------------------------------------------------------------

def _pool_styles(n: int, rng: random.Random) -> list[dict]:
    """Pre-training users: every value of every attribute occurs (values are cycled
    through a shuffled order per attribute), combined at random."""
    cols = {}
    for a, vals in ATTRIBUTES.items():
        order = list(vals)
        rng.shuffle(order)
        col = [order[i % len(order)] for i in range(n)]
        rng.shuffle(col)
        cols[a] = col
    return [{a: cols[a][i] for a in ATTRIBUTES} for i in range(n)]


def _pairs(style: dict) -> set:
    return {((a, style[a]), (b, style[b])) for a, b in itertools.combinations(ATTRIBUTES, 2)}


@dataclass
class PersonalizationData(TaskData):
    """``train``: pre-training (prompt, response) pairs for the base LM (no user id);
    ``valid``/``test``: lists of :class:`User` (validation users select α/layer/steps,
    test users are scored). ``rag_prompt`` builds the retrieval-augmented prompt."""

    rag_separator: str = "past :"
    generated: bool = True

    def corpus(self) -> list[str]:
        out = [t for p, r in self.train for t in (p, r)]
        for u in self.valid + self.test:
            for e in u.history + u.queries:
                out += [e.prompt, e.response]
        return out + [self.rag_separator]

    def sft_pairs(self) -> tuple[list[str], list[str]]:
        return [p for p, _ in self.train], [r for _, r in self.train]

    def rag_prompt(self, prompt: str, retrieved: Sequence[Example]) -> str:
        ctx = " ".join(f"{self.rag_separator} {e.response}" for e in retrieved)
        return f"{ctx} {prompt}" if ctx else prompt


def make_personalization(n_pool_users: int = 24, n_valid_users: int = 8,
                         n_test_users: int = 16, history: int = 12, queries: int = 6,
                         n_pretrain: int = 3000, neutral_share: float = 0.7,
                         rag_share: float = 0.3, rag_k: int = 2, seed: int = 0
                         ) -> PersonalizationData:
    """The synthetic ``personalized_generation`` task (spec §3.4).

    Pre-training pairs: ``neutral_share`` in the neutral style, the rest by pool users;
    a ``rag_share`` of them is prefixed with 1..``rag_k`` other outputs of the same
    writer in the retrieval format, so the base model can use retrieved examples (a
    fair RAG baseline needs a model that reads its context). Evaluation users have
    tuples no pool user has; ``history + queries`` distinct inputs each.
    """
    inputs = [(p, r) for p, _, _ in PRODUCTS for r in RATINGS]
    if history + queries > len(inputs):
        raise BenchError(f"personalization: history + queries ({history + queries}) exceeds "
                         f"the {len(inputs)} distinct inputs.")
    rng = random.Random(seed)
    pool = _pool_styles(n_pool_users, rng)
    seen = {tuple(s.values()) for s in pool} | {tuple(NEUTRAL.values())}
    seen_pairs = set().union(*(_pairs(s) for s in pool + [NEUTRAL]))
    eval_styles: list[dict] = []
    while len(eval_styles) < n_valid_users + n_test_users:
        s = {a: rng.choice(v) for a, v in ATTRIBUTES.items()}
        if tuple(s.values()) in seen:
            continue
        seen.add(tuple(s.values()))
        eval_styles.append(s)
    data = PersonalizationData(name="personalization_synth", task="personalized_generation",
                               train=[], valid=[], test=[])
    pretrain = []
    for _ in range(n_pretrain):
        style = NEUTRAL if rng.random() < neutral_share else rng.choice(pool)
        product, rating = rng.choice(inputs)
        ex = make_example(product, rating, style)
        prompt = ex.prompt
        if rng.random() < rag_share:
            others = rng.sample([i for i in inputs if i != (product, rating)], rng.randint(1, rag_k))
            prompt = data.rag_prompt(prompt, [make_example(p, r, style) for p, r in others])
        pretrain.append((prompt, ex.response))
    users = []
    for i, style in enumerate(eval_styles):
        picks = rng.sample(inputs, history + queries)
        exs = [make_example(p, r, style) for p, r in picks]
        users.append(User(f"u{i:03d}", exs[:history], exs[history:], dict(style)))
    data.train = pretrain
    data.valid, data.test = users[:n_valid_users], users[n_valid_users:]
    unseen = [len(_pairs(u.style) - seen_pairs) / len(_pairs(u.style)) for u in users]
    data.fingerprint = {"generator": "personalization_synth", "seed": seed,
                        "n_pool_users": n_pool_users, "n_valid_users": n_valid_users,
                        "n_test_users": n_test_users, "history": history, "queries": queries,
                        "n_pretrain": n_pretrain, "neutral_share": neutral_share,
                        "rag_share": rag_share, "rag_k": rag_k}
    data.protocol = {"eval": "greedy, references = each user's held-out outputs"}
    data.diagnostics = {"eval_users_with_unseen_tuple": 1.0,
                        "mean_share_of_unseen_attribute_pairs": sum(unseen) / len(unseen),
                        "pool_users": n_pool_users, "pretrain_pairs": n_pretrain}
    return data


# --- LaMP-format loader --------------------------------------------------------------------------

#: LaMP/LongLaMP task -> (profile input key or None, profile output key, prompt template)
LAMP_TASKS: dict[str, tuple[Optional[str], str]] = {
    "LaMP_4": ("text", "title"),          # news headline generation
    "LaMP_5": ("abstract", "title"),      # scholarly title generation
    "LaMP_7": (None, "text"),             # tweet paraphrasing (profile: the user's tweets)
    "LongLaMP_abstract": ("title", "abstract"),
    "LongLaMP_review": ("description", "reviewText"),
    "LongLaMP_topic": ("summary", "content"),
}


#: the input of a profile item for tasks whose profile has outputs only (LaMP-7 tweets):
#: StyleVector's negative ŷ_i = LLM(x_i) needs some x_i, and generation a non-empty prompt
NO_INPUT_PROMPT = "write :"


def _read_json(path: Path, what: str):
    if not path.is_file():
        raise BenchError(f"lamp {what} file '{path}' does not exist.")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise BenchError(f"lamp {what} file '{path}': not valid JSON ({exc.msg} at line "
                         f"{exc.lineno} column {exc.colno}).") from None


def _need(obj, key: str, where: str, kind=str):
    if not isinstance(obj, dict) or key not in obj:
        raise BenchError(f"{where}: missing key '{key}'.")
    if not isinstance(obj[key], kind):
        raise BenchError(f"{where}: '{key}' must be a {getattr(kind, '__name__', kind)}, "
                         f"not {type(obj[key]).__name__}.")
    return obj[key]


def load_lamp(questions: str | Path, outputs: str | Path | None = None, task: str = "LaMP_4",
              valid_share: float = 0.5, max_users: Optional[int] = None,
              max_history: Optional[int] = None, seed: int = 0) -> PersonalizationData:
    """LaMP-format users from local files: ``questions`` is a JSON list of
    ``{"id", "input", "profile": [{...}]}``; ``outputs`` a JSON
    ``{"golds": [{"id", "output"}]}`` (or each question carries ``"output"``).

    Each question is one user (profile = history, one query). Users are split into
    validation and test by ``valid_share`` (seeded). The base model's pre-training pairs
    are every profile item, so the config route can also train a tiny LM on them.
    Any malformed entry raises one line naming the file, the entry and the key.
    """
    if task not in LAMP_TASKS:
        raise BenchError(f"lamp: unknown task '{task}' (known: {', '.join(LAMP_TASKS)}).")
    in_key, out_key = LAMP_TASKS[task]
    qpath = Path(questions)
    qs = _read_json(qpath, "questions")
    if not isinstance(qs, list) or not qs:
        raise BenchError(f"lamp questions file '{qpath}': expected a non-empty JSON list of "
                         "questions.")
    golds: dict[str, str] = {}
    if outputs is not None:
        opath = Path(outputs)
        og = _read_json(opath, "outputs")
        for j, g in enumerate(_need(og, "golds", f"lamp outputs file '{opath}'", list)):
            where = f"lamp outputs file '{opath}': golds[{j}]"
            golds[str(_need(g, "id", where, (str, int)))] = _need(g, "output", where)
    users = []
    for i, q in enumerate(qs):
        where = f"lamp questions file '{qpath}': entry {i}"
        qid = str(_need(q, "id", where, (str, int)))
        prompt = _need(q, "input", where)
        profile = _need(q, "profile", where, list)
        ref = golds.get(qid, q.get("output") if isinstance(q, dict) else None)
        if not isinstance(ref, str):
            raise BenchError(f"{where} (id {qid}): no reference output (neither in the outputs "
                             "file nor an 'output' key).")
        hist = []
        for j, item in enumerate(profile[:max_history] if max_history else profile):
            w = f"{where} (id {qid}): profile[{j}]"
            hin = _need(item, in_key, w) if in_key else NO_INPUT_PROMPT
            hist.append(Example(hin, _need(item, out_key, w), str(item.get("id", j))))
        if not hist:
            raise BenchError(f"{where} (id {qid}): empty profile.")
        users.append(User(qid, hist, [Example(prompt, ref, qid)]))
    rng = random.Random(seed)
    rng.shuffle(users)
    users = users[:max_users] if max_users else users
    pretrain = [(e.prompt, e.response) for u in users for e in u.history]
    n_valid = max(1, int(round(valid_share * len(users)))) if len(users) > 1 else 0
    digest = hashlib.sha256(qpath.read_bytes() + (Path(outputs).read_bytes() if outputs else b""))
    data = PersonalizationData(name=task, task="personalized_generation", train=pretrain,
                               valid=users[:n_valid], test=users[n_valid:], generated=False)
    data.fingerprint = {"generator": "lamp", "task": task, "sha256": digest.hexdigest(),
                        "valid_share": valid_share, "max_users": max_users,
                        "max_history": max_history, "seed": seed}
    data.protocol = {"eval": "greedy, references = LaMP gold outputs"}
    data.diagnostics = {"users": len(users), "valid_users": n_valid}
    return data


# --- metrics ----------------------------------------------------------------------------------

class _NoWordNet:
    """WordNet stand-in for METEOR: no synsets, so only exact and stem matches count
    (METEOR-nosyn; the nltk wheel ships no WordNet and nothing is downloaded)."""

    @staticmethod
    def synsets(word, *args, **kwargs):
        return []


_ROUGE = None


def rouge(reference: str, prediction: str) -> dict[str, float]:
    """ROUGE-1 and ROUGE-L F-measures from ``rouge-score`` (Porter stemmer on)."""
    global _ROUGE
    if _ROUGE is None:
        from rouge_score import rouge_scorer

        _ROUGE = rouge_scorer.RougeScorer(["rouge1", "rougeL"], use_stemmer=True)
    s = _ROUGE.score(reference, prediction)
    return {"rouge_1": s["rouge1"].fmeasure, "rouge_l": s["rougeL"].fmeasure}


def meteor(reference: str, prediction: str) -> float:
    """METEOR without the synonym stage (nltk, WordNet stubbed), lower-cased word tokens."""
    from nltk.translate.meteor_score import meteor_score

    ref = [t.lower() for t in tokens(reference)]
    hyp = [t.lower() for t in tokens(prediction)]
    if not ref or not hyp:
        return 0.0
    return float(meteor_score([ref], hyp, wordnet=_NoWordNet()))


def score_predictions(users: Sequence[User], predictions: Sequence[Sequence[str]]
                      ) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Mean metrics over every (user, query) and per-query values keyed ``uid/j``.

    ``rouge_1``, ``rouge_l``, ``meteor`` always; ``style_acc`` (mean over attributes),
    ``style_exact`` (all attributes right) and ``content_acc`` for synthetic users."""
    per: dict[str, dict[str, float]] = {}
    for u, preds in zip(users, predictions):
        if len(preds) != len(u.queries):
            raise BenchError(f"user {u.uid}: {len(preds)} predictions for {len(u.queries)} queries.")
        for j, (q, pred) in enumerate(zip(u.queries, preds)):
            key = f"{u.uid}/{j}"
            vals = {**rouge(q.response, pred), "meteor": meteor(q.response, pred)}
            if u.style is not None:
                ok = style_matches(pred, u.style)
                vals["style_acc"] = sum(ok.values()) / len(ok)
                vals["style_exact"] = float(all(ok.values()))
                for a, v in ok.items():
                    vals[f"style_{a}"] = float(v)
            if q.content:
                vals["content_acc"] = float(content_correct(pred, q.content))
            for k, v in vals.items():
                per.setdefault(k, {})[key] = v
    means = {k: sum(v.values()) / len(v) for k, v in per.items()}
    return means, per
