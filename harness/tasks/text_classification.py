"""GLUE/SuperGLUE-style text classification, generated offline, plus a GLUE TSV loader.

Why generated: no package ships GLUE data (``datasets``, ``tensorflow-datasets`` and
friends download at run time), so seven small tasks are produced from templates and
word lists with a fixed seed, each testing one skill the real task tests:

============== =============== ======= ======================================= =============
task           GLUE analogue   classes skill                                   metrics
============== =============== ======= ======================================= =============
sentiment      SST-2           2       lexicon polarity, negation, "but"       accuracy
nli            MNLI            3       hypernyms, antonyms, negation           accuracy
paraphrase     MRPC / QQP      2       same facts under reordering/synonyms    f1, accuracy
acceptability  CoLA            2       agreement errors and word swaps         mcc
boolq          BoolQ / QNLI    2       yes/no question over a 3-5 fact passage accuracy
cb             CB (low-res.)   3       factive vs non-factive verbs, 250 train accuracy, f1
sts            STS-B           0..5    shared attributes out of five           pearson, spearman
============== =============== ======= ======================================= =============

The sentiment words come from the VADER lexicon that ``vaderSentiment`` ships inside its
wheel (nothing is downloaded). Labels are exactly balanced in every split: example i of
a split gets label ``i % n_classes`` (STS: score ``i % 6``) before the split is
shuffled, so class counts differ by at most one. No task's label word (its verbalizer)
occurs as a token in that task's inputs (tested).

Each example is a text-to-text pair as in DePT's ``src/tasks.py``: the input starts with
the task name and names its fields (``nli premise : ... hypothesis : ...``); the target
is one label word. A task's score is the mean of its metrics (the GLUE convention: MRPC
averages F1 and accuracy, STS-B Pearson and Spearman), and ``mean_score`` averages the
task scores. Metrics come from scikit-learn and scipy.

A model is scored through one method, ``predict(task, texts) -> ndarray[n, n_labels]``
of label probabilities (regression: probabilities over the score bins, whose expected
value is the prediction).
"""
from __future__ import annotations

import csv
import random
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Literal, Optional, Sequence

import numpy as np

from ..api import BenchError, ScoreResult, TaskData

TASK = "text_classification"
GENERATOR_VERSION = "1"


@dataclass(frozen=True)
class Example:
    text: str
    label: int  # class index; for a regression task the integer score (a bin index)


@dataclass(frozen=True)
class TaskInfo:
    """What a model and a scorer need to know about one task."""

    name: str
    label_words: tuple[str, ...]
    metrics: tuple[str, ...]  # accuracy | f1 | macro_f1 | mcc | pearson | spearman
    kind: Literal["classification", "regression"] = "classification"
    description: str = ""

    @property
    def n_labels(self) -> int:
        return len(self.label_words)

    def metric_names(self) -> list[str]:
        return [f"{self.name}_{m}" for m in self.metrics]


# --- word lists ----------------------------------------------------------------------------

NAMES = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
         "mallory", "oscar", "peggy", "rupert", "sybil", "trent", "victor", "walter")
COLORS = ("red", "blue", "green", "yellow", "black", "white", "brown", "purple")
HYPERNYMS = {"poodle": "dog", "beagle": "dog", "terrier": "dog", "sparrow": "bird",
             "robin": "bird", "eagle": "bird", "oak": "tree", "pine": "tree", "maple": "tree",
             "salmon": "fish", "trout": "fish", "tulip": "flower", "rose": "flower",
             "daisy": "flower"}
ANTONYMS = (("hot", "cold"), ("old", "new"), ("fast", "slow"), ("heavy", "light"),
            ("clean", "dirty"), ("wet", "dry"), ("loud", "quiet"), ("tall", "short"))
ASPECTS = ("plot", "acting", "music", "story", "ending", "film", "cast", "script",
           "dialogue", "pacing", "camera", "soundtrack")
INTENSIFIERS = ("very", "really", "quite", "truly")
NUMBERS = ("two", "three", "four", "five", "six", "seven", "eight", "nine")
DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
OBJECTS = ("books", "apples", "letters", "coins", "tickets", "flowers", "cards", "pens")
CITIES = ("paris", "rome", "berlin", "madrid", "lisbon", "vienna", "prague", "dublin",
          "oslo", "athens")
PETS = ("cat", "dog", "parrot", "hamster", "rabbit", "turtle", "goldfish", "horse")
JOBS = ("doctor", "baker", "pilot", "teacher", "farmer", "painter", "lawyer", "nurse")
FACTIVE = ("knows", "realizes", "discovered", "noticed", "learned")
NONFACTIVE = ("thinks", "hopes", "suspects", "guesses", "believes", "claims")
STS_VALUES = {
    "size": ("small", "large", "tiny", "huge", "medium"),
    "color": COLORS,
    "material": ("wooden", "metal", "glass", "plastic", "stone", "paper"),
    "object": ("box", "chair", "lamp", "vase", "table", "bowl", "clock"),
    "place": CITIES,
}
# acceptability grammar: (singular, plural) forms
CG_NOUNS = (("cat", "cats"), ("dog", "dogs"), ("teacher", "teachers"), ("farmer", "farmers"),
            ("child", "children"), ("bird", "birds"), ("student", "students"),
            ("mouse", "mice"))
CG_VERBS = (("sees", "see"), ("likes", "like"), ("chases", "chase"), ("finds", "find"),
            ("visits", "visit"), ("helps", "help"))
CG_DETS = (("the", "the"), ("a", "some"), ("every", "many"), ("this", "these"))
CG_ADJS = ("old", "young", "happy", "tall", "small")
CG_PREPS = ("near", "behind", "with")

LABEL_WORDS = {
    "sentiment": ("negative", "positive"),
    "nli": ("entailment", "neutral", "contradiction"),
    "paraphrase": ("different", "equivalent"),
    "acceptability": ("unacceptable", "acceptable"),
    "boolq": ("no", "yes"),
    "cb": ("entailment", "neutral", "contradiction"),
    "sts": ("zero", "one", "two", "three", "four", "five"),
}
_ALL_LABEL_WORDS = {w for ws in LABEL_WORDS.values() for w in ws}
_NEGATORS = {"not", "no", "never", "nor", "but", "and", "was", "were", "is"}


@lru_cache(maxsize=1)
def sentiment_lexicon(per_side: int = 40) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(negative words, positive words) from the VADER lexicon shipped in the wheel.

    Strongly polar (|valence| >= 1.8), low-disagreement (std <= 1.0), plain lowercase
    words of 3-12 letters; label words and function words are removed; a fixed-seed
    sample of ``per_side`` per polarity keeps the vocabulary small enough for a tiny
    backbone."""
    from importlib import resources

    try:
        text = resources.files("vaderSentiment").joinpath("vader_lexicon.txt").read_text(
            encoding="utf-8", errors="replace")
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise BenchError("the sentiment task needs the VADER lexicon from the "
                         f"'vaderSentiment' package (pip install vaderSentiment): {exc}") from None
    pos, neg = [], []
    taken = set(_ALL_LABEL_WORDS) | _NEGATORS | set(ASPECTS) | set(INTENSIFIERS)
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) < 3:
            continue
        word, mean, std = parts[0], float(parts[1]), float(parts[2])
        if not re.fullmatch(r"[a-z]{3,12}", word) or word in taken or std > 1.0:
            continue
        if mean >= 1.8:
            pos.append(word)
        elif mean <= -1.8:
            neg.append(word)
    rng = random.Random(0)
    pos, neg = sorted(pos), sorted(neg)
    if len(pos) < per_side or len(neg) < per_side:
        raise BenchError(f"VADER lexicon too small: {len(pos)} positive, {len(neg)} negative words.")
    return tuple(sorted(rng.sample(neg, per_side))), tuple(sorted(rng.sample(pos, per_side)))


# --- generators: (rng, label) -> input text ------------------------------------------------

def _sentiment(rng: random.Random, label: int) -> str:
    neg, pos = sentiment_lexicon()
    polar = lambda p: rng.choice(pos if p else neg)  # noqa: E731

    def clause(polarity: int) -> str:
        aspect = rng.choice(ASPECTS)
        negate = rng.random() < 0.3
        word = polar(polarity if not negate else 1 - polarity)
        inten = f"{rng.choice(INTENSIFIERS)} " if rng.random() < 0.3 else ""
        return f"the {aspect} was {'not ' if negate else ''}{inten}{word}"

    if rng.random() < 0.4:  # contrast: the clause after "but" decides
        body = f"{clause(1 - label)} but {clause(label)}"
    elif rng.random() < 0.5:
        body = f"{clause(label)} and {clause(label)}"
    else:
        body = clause(label)
    return f"sentiment review : {body} ."


def _nli(rng: random.Random, label: int) -> str:
    n1, n2, n3 = _distinct_categories(rng, 3)
    c1, c2 = rng.sample(COLORS, 2)
    pair = rng.choice(ANTONYMS)
    a1, anti = (pair if rng.random() < 0.5 else pair[::-1])
    other_pair = rng.choice([p for p in ANTONYMS if p != pair])
    premise = f"the {n1} is {c1} and {a1} . the {n2} is {c2} ."
    name1 = lambda: HYPERNYMS[n1] if rng.random() < 0.5 else n1  # noqa: E731
    if label == 0:  # entailment
        hyp = rng.choice([f"the {name1()} is {c1}", f"the {name1()} is {a1}",
                          f"the {name1()} is not {anti}", f"the {n2} is {c2}",
                          f"the {n1} is not {rng.choice([c for c in COLORS if c != c1])}"])
    elif label == 1:  # neutral: a property or entity the premise does not mention
        hyp = rng.choice([f"the {name1()} is {rng.choice(other_pair)}",
                          f"the {n2} is {rng.choice(pair)}",
                          f"the {rng.choice([n3, HYPERNYMS[n3]])} is {rng.choice(COLORS)}",
                          f"the {n3} is not {a1}"])
    else:  # contradiction
        hyp = rng.choice([f"the {name1()} is {rng.choice([c for c in COLORS if c != c1])}",
                          f"the {name1()} is {anti}", f"the {name1()} is not {a1}",
                          f"the {n2} is not {c2}", f"the {n1} is not {c1}"])
    return f"nli premise : {premise} hypothesis : {hyp} ."


def _distinct_categories(rng: random.Random, k: int) -> list[str]:
    cats = rng.sample(sorted(set(HYPERNYMS.values())), k)
    return [rng.choice([w for w, h in HYPERNYMS.items() if h == c]) for c in cats]


def _event_text(rng: random.Random, a: str, b: str, k: str, obj: str, day: str) -> str:
    verb = rng.choice(("gave", "handed", "passed", "sent"))
    part = {"gave": "given", "handed": "handed", "passed": "passed", "sent": "sent"}[verb]
    form = rng.randrange(3)
    if form == 0:
        return f"{a} {verb} {k} {obj} to {b} on {day}"
    if form == 1:
        return f"on {day} , {a} {verb} {k} {obj} to {b}"
    return f"{k} {obj} were {part} to {b} by {a} on {day}"


def _paraphrase(rng: random.Random, label: int) -> str:
    a, b = rng.sample(NAMES, 2)
    k, obj, day = rng.choice(NUMBERS), rng.choice(OBJECTS), rng.choice(DAYS)
    s1 = _event_text(rng, a, b, k, obj, day)
    a2, b2, k2, obj2, day2 = a, b, k, obj, day
    if label == 0:  # change exactly one fact
        change = rng.randrange(5)
        if change == 0:
            a2, b2 = b, a
        elif change == 1:
            b2 = rng.choice([n for n in NAMES if n not in (a, b)])
        elif change == 2:
            k2 = rng.choice([n for n in NUMBERS if n != k])
        elif change == 3:
            obj2 = rng.choice([o for o in OBJECTS if o != obj])
        else:
            day2 = rng.choice([d for d in DAYS if d != day])
    s2 = _event_text(rng, a2, b2, k2, obj2, day2)
    return f"paraphrase sentence1 : {s1} . sentence2 : {s2} ."


def _np(rng: random.Random, plural: bool) -> list[str]:
    det = rng.choice(CG_DETS)[plural]
    noun = rng.choice(CG_NOUNS)[plural]
    adj = [rng.choice(CG_ADJS)] if rng.random() < 0.4 else []
    return [det, *adj, noun]


def _acceptability(rng: random.Random, label: int) -> str:
    subj_pl, obj_pl = rng.random() < 0.5, rng.random() < 0.5
    verb = rng.choice(CG_VERBS)
    subj, obj = _np(rng, subj_pl), _np(rng, obj_pl)
    pp = [rng.choice(CG_PREPS), *_np(rng, rng.random() < 0.5)] if rng.random() < 0.3 else []
    words = [*subj, verb[subj_pl], *obj, *pp]
    if label == 0:
        kind = rng.randrange(4)
        v = len(subj)
        if kind == 0:  # subject-verb agreement
            words[v] = verb[not subj_pl]
        elif kind == 1:  # determiner-noun agreement (a dogs / these cat)
            dets = [d for d in CG_DETS if d[0] != d[1]]
            words[0] = rng.choice(dets)[not subj_pl]
        elif kind == 2:  # swap two adjacent words
            i = rng.randrange(len(words) - 1)
            words[i], words[i + 1] = words[i + 1], words[i]
        else:  # drop the verb
            del words[v]
    return f"acceptability sentence : {' '.join(words)} ."


_RELATIONS = (("lives in", "live in", CITIES), ("owns a", "own a", PETS),
              ("works as a", "work as a", JOBS))


def _boolq(rng: random.Random, label: int) -> str:
    people = rng.sample(NAMES, rng.randint(3, 5))
    facts = []
    for person in people:
        rel = rng.choice(_RELATIONS)
        facts.append((person, rel, rng.choice(rel[2])))
    person, rel, value = rng.choice(facts)
    if label == 1:
        asked = value
    else:
        others = [v for p, r, v in facts if r is rel and v != value]
        pool = others if others and rng.random() < 0.5 else [v for v in rel[2] if v != value]
        asked = rng.choice(pool)
    passage = " ".join(f"{p} {r[0]} {v} ." for p, r, v in facts)
    return f"boolq passage : {passage} question : does {person} {rel[1]} {asked} ?"


def _cb(rng: random.Random, label: int) -> str:
    name = rng.choice(NAMES)
    noun = rng.choice(list(HYPERNYMS))
    color = rng.choice(COLORS)
    other = rng.choice([c for c in COLORS if c != color])
    if label == 1:
        verb, hyp_color = rng.choice(NONFACTIVE), rng.choice([color, other])
    else:
        verb, hyp_color = rng.choice(FACTIVE), (color if label == 0 else other)
    return (f"cb premise : {name} {verb} that the {noun} is {color} . "
            f"hypothesis : the {noun} is {hyp_color} .")


def _sts(rng: random.Random, label: int) -> str:
    keys = list(STS_VALUES)
    first = {k: rng.choice(STS_VALUES[k]) for k in keys}
    shared = set(rng.sample(keys, label))
    second = {k: first[k] if k in shared else rng.choice([v for v in STS_VALUES[k] if v != first[k]])
              for k in keys}

    def say(d: dict, form: int) -> str:
        if form == 0:
            return f"a {d['size']} {d['color']} {d['material']} {d['object']} from {d['place']}"
        return f"the {d['object']} from {d['place']} is {d['size']} , {d['color']} and {d['material']}"

    return (f"sts sentence1 : {say(first, rng.randrange(2))} . "
            f"sentence2 : {say(second, rng.randrange(2))} .")


GENERATORS: dict[str, tuple[Callable[[random.Random, int], str], TaskInfo]] = {
    "sentiment": (_sentiment, TaskInfo("sentiment", LABEL_WORDS["sentiment"], ("accuracy",),
                                       description="SST-2-like reviews from VADER words")),
    "nli": (_nli, TaskInfo("nli", LABEL_WORDS["nli"], ("accuracy",),
                           description="MNLI-like 3-class entailment")),
    "paraphrase": (_paraphrase, TaskInfo("paraphrase", LABEL_WORDS["paraphrase"],
                                         ("f1", "accuracy"), description="MRPC-like")),
    "acceptability": (_acceptability, TaskInfo("acceptability", LABEL_WORDS["acceptability"],
                                               ("mcc",), description="CoLA-like")),
    "boolq": (_boolq, TaskInfo("boolq", LABEL_WORDS["boolq"], ("accuracy",),
                               description="BoolQ-like yes/no over a passage")),
    "cb": (_cb, TaskInfo("cb", LABEL_WORDS["cb"], ("accuracy", "macro_f1"),
                         description="CB-like low-resource 3-class")),
    "sts": (_sts, TaskInfo("sts", LABEL_WORDS["sts"], ("pearson", "spearman"), "regression",
                           description="STS-B-like similarity 0-5")),
}
TASK_NAMES = tuple(GENERATORS)


def generate_split(task: str, n: int, seed: int) -> list[Example]:
    """``n`` examples, labels exactly balanced (``i % n_labels``), then shuffled."""
    gen, info = GENERATORS[task]
    rng = random.Random(f"{task}:{seed}")
    out = [Example(gen(rng, i % info.n_labels), i % info.n_labels) for i in range(n)]
    rng.shuffle(out)
    return out


def make_text_classification(tasks: Sequence[str] = TASK_NAMES, n_train: int = 1000,
                             n_valid: int = 200, n_test: int = 400, low_resource_train: int = 250,
                             pretrain_per_task: int = 2000, seed: int = 0) -> TaskData:
    """The generated tasks as one :class:`TaskData`; each part maps task -> examples.

    ``cb`` is the low-resource task (``low_resource_train`` training examples).
    ``extra["pretrain"]`` holds unlabelled inputs from every generator (an independent
    draw, each followed by a random label word: :func:`answer_format_texts`) for
    pre-training the backbone; ``extra["tasks"]`` the :class:`TaskInfo` s."""
    unknown = [t for t in tasks if t not in GENERATORS]
    if unknown or not tasks:
        raise BenchError(f"text_classification: unknown task(s) {unknown or '(none)'}; "
                         f"known: {', '.join(TASK_NAMES)}.")
    parts: dict[str, dict[str, list[Example]]] = {"train": {}, "valid": {}, "test": {}}
    pretrain: list[str] = []
    for i, t in enumerate(tasks):
        base = seed * 1000 + i * 10
        parts["train"][t] = generate_split(t, low_resource_train if t == "cb" else n_train, base)
        parts["valid"][t] = generate_split(t, n_valid, base + 1)
        parts["test"][t] = generate_split(t, n_test, base + 2)
        pretrain += answer_format_texts(generate_split(t, pretrain_per_task, base + 3),
                                        GENERATORS[t][1], base + 4)
    random.Random(seed).shuffle(pretrain)
    infos = {t: GENERATORS[t][1] for t in tasks}
    fp = {"generator": "glue_synth", "version": GENERATOR_VERSION, "tasks": list(tasks),
          "n": [n_train, n_valid, n_test, low_resource_train, pretrain_per_task], "seed": seed}
    diag = {t: {p: len(parts[p][t]) for p in parts} for t in tasks}
    return TaskData("glue_synth", TASK, parts["train"], parts["valid"], parts["test"],
                    fingerprint=fp, protocol={"tasks": list(tasks), "version": GENERATOR_VERSION},
                    diagnostics=diag, extra={"tasks": infos, "pretrain": pretrain})


def answer_format_texts(examples: Sequence[Example], info: TaskInfo, seed: int) -> list[str]:
    """Unlabelled pre-training text that teaches the answer *format*, never the answer:
    each input is followed by one of its task's label words drawn uniformly at random,
    independently of the example's label. A pre-trained LM knows which words answer a
    question of a given form; without this, label words never occur in the corpus, their
    tied embeddings collapse onto the "never predicted" direction, and no prompt can
    separate them (prompt tuning stayed at chance in a probe)."""
    rng = random.Random(f"format:{info.name}:{seed}")
    return [f"{e.text} {rng.choice(info.label_words)}" for e in examples]


def corpus(data: TaskData) -> list[str]:
    """Every input text plus the label words: what a backbone's tokenizer is trained on."""
    texts = list(data.extra.get("pretrain", []))
    for part in ("train", "valid", "test"):
        for examples in data.part(part).values():
            texts += [e.text for e in examples]
    texts.append(" ".join(sorted({w for i in data.extra["tasks"].values() for w in i.label_words})))
    return texts


# --- GLUE-format TSV from a local path -------------------------------------------------------

def _read_tsv(path: Path, text_columns: Sequence[str | int], label_column: str | int,
              header: bool) -> tuple[list[list[str]], list[str]]:
    if not path.is_file():
        raise BenchError(f"glue_tsv: {path} does not exist.")
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    if not rows:
        raise BenchError(f"glue_tsv: {path} is empty.")
    names = rows[0] if header else [str(i) for i in range(len(rows[0]))]
    body = rows[1:] if header else rows
    index = []
    for col in [*text_columns, label_column]:
        key = str(col)
        if key not in names:
            if isinstance(col, int) and header and 0 <= col < len(names):
                index.append(col)
                continue
            raise BenchError(f"glue_tsv: {path} has no column '{col}' (columns: "
                             f"{', '.join(names)}).")
        index.append(names.index(key))
    texts, labels = [], []
    for line, row in enumerate(body, start=2 if header else 1):
        if len(row) <= max(index):
            raise BenchError(f"glue_tsv: {path} line {line} has {len(row)} field(s), "
                             f"needs {max(index) + 1}.")
        texts.append([row[i] for i in index[:-1]])
        labels.append(row[index[-1]].strip())
    return texts, labels


def load_glue_tsv(path: str | Path, task: str, text_columns: Sequence[str | int],
                  label_column: str | int = "label", labels: Optional[Sequence[str]] = None,
                  label_words: Optional[Sequence[str]] = None, header: bool = True,
                  metrics: Sequence[str] = ("accuracy",), seed: int = 0) -> TaskData:
    """One classification task from ``train.tsv`` and ``dev.tsv`` (GLUE layout) under
    ``path``; ``test.tsv`` is used when it has the label column, otherwise ``dev.tsv`` is
    split in half (fixed seed) into validation and test.

    ``labels`` lists the label values as they appear in the file, in class order
    (default: sorted values of train); ``label_words`` the verbalizer (default: the
    labels, lower-cased). Field names become ``field : text`` in the input."""
    if not re.fullmatch(r"[a-z_]+", task):
        raise BenchError(f"glue_tsv: task name '{task}' must be lowercase letters and '_' "
                         "(it prefixes metric names).")
    root = Path(path)
    if not root.is_dir():
        raise BenchError(f"glue_tsv: path '{root}' is not a local directory.")
    cols = [str(c) for c in text_columns]

    def examples(file: Path, classes: list[str]) -> list[Example]:
        texts, raw = _read_tsv(file, text_columns, label_column, header)
        out = []
        for i, (fields, lab) in enumerate(zip(texts, raw)):
            if lab not in classes:
                raise BenchError(f"glue_tsv: {file} row {i + 1}: label '{lab}' is not one of "
                                 f"{', '.join(classes)}.")
            body = " ".join(f"{c} : {t.strip().lower()}" for c, t in zip(cols, fields))
            out.append(Example(f"{task} {body}", classes.index(lab)))
        return out

    _, train_raw = _read_tsv(root / "train.tsv", text_columns, label_column, header)
    classes = list(labels) if labels else sorted(set(train_raw))
    train = examples(root / "train.tsv", classes)
    dev = examples(root / "dev.tsv", classes)
    test_file = root / "test.tsv"
    test: list[Example]
    if test_file.is_file():
        try:
            test = examples(test_file, classes)
        except BenchError:  # GLUE's own test files carry no labels
            test = []
    else:
        test = []
    if not test:
        order = list(range(len(dev)))
        random.Random(seed).shuffle(order)
        half = len(order) // 2
        valid, test = [dev[i] for i in order[:half]], [dev[i] for i in order[half:]]
    else:
        valid = dev
    words = tuple(label_words) if label_words else tuple(c.lower() for c in classes)
    if len(words) != len(classes):
        raise BenchError(f"glue_tsv: {len(words)} label_words for {len(classes)} labels.")
    if "f1" in metrics and len(classes) != 2:
        raise BenchError(f"glue_tsv: metric 'f1' is binary but '{task}' has {len(classes)} "
                         "labels; use macro_f1.")
    info = TaskInfo(task, words, tuple(metrics))
    fp = {"generator": "glue_tsv", "path": str(root.resolve()), "task": task,
          "sizes": [len(train), len(valid), len(test)],
          "digest": _digest([e.text for e in train + valid + test])}
    return TaskData(f"glue_tsv:{task}", TASK, {task: train}, {task: valid}, {task: test},
                    fingerprint=fp, protocol={"tasks": [task], "source": "glue_tsv"},
                    diagnostics={task: {"train": len(train), "valid": len(valid), "test": len(test)}},
                    extra={"tasks": {task: info},
                           "pretrain": answer_format_texts(train, info, seed)})


def _digest(texts: list[str]) -> str:
    import hashlib

    return hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]


# --- metrics and scoring ---------------------------------------------------------------------

def task_metrics(info: TaskInfo, probs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """GLUE metrics of one task from label probabilities ``[n, n_labels]``."""
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

    out: dict[str, float] = {}
    if info.kind == "regression":
        pred = probs @ np.arange(info.n_labels, dtype=float)
    else:
        pred = probs.argmax(-1)
    for m in info.metrics:
        if m == "accuracy":
            v = accuracy_score(labels, pred)
        elif m == "f1":
            v = f1_score(labels, pred, pos_label=1, average="binary", zero_division=0)
        elif m == "macro_f1":
            v = f1_score(labels, pred, average="macro", labels=list(range(info.n_labels)),
                         zero_division=0)
        elif m == "mcc":
            v = matthews_corrcoef(labels, pred)
        elif m in ("pearson", "spearman"):
            if np.std(pred) == 0:
                v = 0.0  # a constant prediction carries no correlation
            else:
                v = (pearsonr if m == "pearson" else spearmanr)(pred, labels)[0]
        else:
            raise BenchError(f"unknown text-classification metric '{m}'.")
        out[f"{info.name}_{m}"] = float(v)
    out[f"{info.name}_score"] = float(np.mean([out[f"{info.name}_{m}"] for m in info.metrics]))
    return out


def score_text_classification(model: Any, data: TaskData, part: str,
                              batch_size: int = 256) -> ScoreResult:
    """Every task's metrics, its score, ``mean_score`` (mean of task scores) and
    ``task_std`` (their spread); per-example correctness for paired tests."""
    metrics: dict[str, float] = {}
    per_user: dict[str, dict[str, float]] = {}
    infos: dict[str, TaskInfo] = data.extra["tasks"]
    samples: list[dict[str, Any]] = []
    for task, examples in data.part(part).items():
        info = infos[task]
        probs = np.concatenate([np.asarray(model.predict(task, [e.text for e in examples[s:s + batch_size]]))
                                for s in range(0, len(examples), batch_size)])
        labels = np.array([e.label for e in examples])
        metrics.update(task_metrics(info, probs, labels))
        # a few predictions per task for the cell's samples.jsonl (bounded by the harness)
        samples += [{"task": task, "id": i, "text": e.text, "label": e.label,
                     "prediction": np.asarray(probs[i]).round(4).tolist()}
                    for i, e in enumerate(examples[:30])]
        if info.kind == "classification":
            correct = (probs.argmax(-1) == labels).astype(float)
            per_user[f"{task}_accuracy"] = {str(i): float(c) for i, c in enumerate(correct)}
    scores = [metrics[f"{t}_score"] for t in data.part(part)]
    metrics["mean_score"] = float(np.mean(scores))
    metrics["task_std"] = float(np.std(scores))
    return ScoreResult(metrics=metrics, per_user=per_user, extra={"samples": samples})


def label_balance(examples: Sequence[Example]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for e in examples:
        counts[e.label] = counts.get(e.label, 0) + 1
    return dict(sorted(counts.items()))
