"""The generated GLUE-style tasks, their metrics and the GLUE TSV loader."""
from __future__ import annotations

import numpy as np
import pytest

from harness.api import BenchError
from harness.tasks.text_classification import (GENERATORS, TASK_NAMES, Example, TaskInfo,
                                               generate_split, label_balance, load_glue_tsv,
                                               make_text_classification,
                                               score_text_classification, task_metrics)


@pytest.mark.parametrize("task", TASK_NAMES)
def test_labels_are_balanced_as_documented(task):
    info = GENERATORS[task][1]
    for n in (7, 100, 251):
        counts = label_balance(generate_split(task, n, seed=3))
        assert sorted(counts) == list(range(info.n_labels))
        assert max(counts.values()) - min(counts.values()) <= 1, counts


@pytest.mark.parametrize("task", TASK_NAMES)
def test_no_label_word_leaks_into_the_input(task):
    info = GENERATORS[task][1]
    for seed in (0, 1):
        for e in generate_split(task, 400, seed):
            leaked = set(e.text.split()) & set(info.label_words)
            assert not leaked, (task, e.text)


def test_label_depends_on_the_input_not_on_a_surface_cue():
    """Labels vary with content: the same task never gives one text two labels."""
    for task in TASK_NAMES:
        seen: dict[str, int] = {}
        for e in generate_split(task, 600, 0):
            assert seen.setdefault(e.text, e.label) == e.label, (task, e.text)


def test_dataset_parts_sizes_seed_and_low_resource_task():
    a = make_text_classification(n_train=40, n_valid=10, n_test=12, low_resource_train=9,
                                 pretrain_per_task=5, seed=1)
    b = make_text_classification(n_train=40, n_valid=10, n_test=12, low_resource_train=9,
                                 pretrain_per_task=5, seed=1)
    assert set(a.train) == set(TASK_NAMES)
    assert len(a.train["cb"]) == 9 and len(a.train["nli"]) == 40
    assert len(a.valid["sts"]) == 10 and len(a.test["boolq"]) == 12
    assert a.train == b.train and a.test == b.test and a.fingerprint == b.fingerprint
    assert len(a.extra["pretrain"]) == 5 * len(TASK_NAMES)
    with pytest.raises(BenchError, match="unknown task"):
        make_text_classification(tasks=["sst2"])


class _Oracle:
    def __init__(self, data, flip=False):
        self.lookup = {e.text: e.label for part in ("train", "valid", "test")
                       for ex in data.part(part).values() for e in ex}
        self.infos = data.extra["tasks"]

    def predict(self, task, texts):
        n = self.infos[task].n_labels
        return np.eye(n)[[self.lookup[t] for t in texts]]


class _Constant:
    def __init__(self, data):
        self.infos = data.extra["tasks"]

    def predict(self, task, texts):
        n = self.infos[task].n_labels
        out = np.zeros((len(texts), n))
        out[:, 0] = 1
        return out


def test_scores_of_an_oracle_and_of_a_constant_predictor():
    data = make_text_classification(n_train=12, n_valid=12, n_test=60, low_resource_train=6,
                                    pretrain_per_task=0)
    best = score_text_classification(_Oracle(data), data, "test").metrics
    assert best["mean_score"] == pytest.approx(1.0) and best["task_std"] == pytest.approx(0.0)
    const = score_text_classification(_Constant(data), data, "test")
    m = const.metrics
    assert m["nli_accuracy"] == pytest.approx(1 / 3) and m["sentiment_accuracy"] == 0.5
    assert m["acceptability_mcc"] == 0.0 and m["paraphrase_f1"] == 0.0
    assert m["sts_pearson"] == 0.0  # a constant prediction has no correlation
    assert set(const.per_user) == {f"{t}_accuracy" for t in TASK_NAMES if t != "sts"}


def test_task_metrics_follow_sklearn_and_scipy():
    from scipy.stats import pearsonr
    from sklearn.metrics import f1_score, matthews_corrcoef

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 50)
    p = rng.random((50, 2))
    m = task_metrics(TaskInfo("x", ("a", "b"), ("f1", "accuracy", "mcc")), p, y)
    assert m["x_f1"] == pytest.approx(f1_score(y, p.argmax(1)))
    assert m["x_mcc"] == pytest.approx(matthews_corrcoef(y, p.argmax(1)))
    assert m["x_score"] == pytest.approx((m["x_f1"] + m["x_accuracy"] + m["x_mcc"]) / 3)
    probs = rng.dirichlet(np.ones(6), 40)
    y6 = rng.integers(0, 6, 40)
    r = task_metrics(TaskInfo("s", tuple("abcdef"), ("pearson",), "regression"), probs, y6)
    assert r["s_pearson"] == pytest.approx(pearsonr(probs @ np.arange(6), y6)[0])


def _write_glue(root, header="index\tsentence1\tsentence2\tlabel", dev_rows=6):
    root.mkdir()
    rows = [f"{i}\tthe cat sat number {i}\tthe cat is {'here' if i % 2 else 'gone'}\t"
            f"{'entailment' if i % 2 else 'not_entailment'}" for i in range(10)]
    (root / "train.tsv").write_text("\n".join([header, *rows]) + "\n")
    (root / "dev.tsv").write_text("\n".join([header, *rows[:dev_rows]]) + "\n")
    (root / "test.tsv").write_text("index\tsentence1\tsentence2\n0\ta\tb\n")  # GLUE test: no labels
    return root


def test_glue_tsv_loads_a_local_folder(tmp_path):
    root = _write_glue(tmp_path / "rte")
    data = load_glue_tsv(root, "rte", ["sentence1", "sentence2"],
                         labels=["not_entailment", "entailment"], label_words=["no", "yes"])
    assert len(data.train["rte"]) == 10
    assert len(data.valid["rte"]) + len(data.test["rte"]) == 6  # unlabelled test: dev halves
    e = data.train["rte"][1]
    assert e.label == 1 and e.text.startswith("rte sentence1 : the cat sat number 1 sentence2 :")
    assert data.extra["tasks"]["rte"].label_words == ("no", "yes")


def test_glue_tsv_wrong_column_is_a_one_line_error(tmp_path):
    root = _write_glue(tmp_path / "rte")
    with pytest.raises(BenchError) as err:
        load_glue_tsv(root, "rte", ["sentence1", "premise"])
    msg = str(err.value)
    assert "\n" not in msg
    assert "train.tsv" in msg and "'premise'" in msg and "sentence2" in msg
    with pytest.raises(BenchError, match="no column 'gold'"):
        load_glue_tsv(root, "rte", ["sentence1"], label_column="gold")


def test_glue_tsv_unknown_label_and_short_row(tmp_path):
    root = _write_glue(tmp_path / "rte")
    with pytest.raises(BenchError, match="row 1: label 'not_entailment' is not one of a, b"):
        load_glue_tsv(root, "rte", ["sentence1"], labels=["a", "b"])
    (root / "dev.tsv").write_text("index\tsentence1\tsentence2\tlabel\n0\tonly two\n")
    with pytest.raises(BenchError, match="line 2 has 2 field"):
        load_glue_tsv(root, "rte", ["sentence1", "sentence2"])


def test_glue_tsv_through_the_dataset_hook_is_validated(tmp_path, registry):
    root = _write_glue(tmp_path / "rte")
    hook = registry.pm.hook.bench_load_dataset
    data = hook(name="glue_tsv", params={"path": str(root), "task": "rte",
                                         "text_columns": ["sentence1", "sentence2"]}, ctx=None)
    assert data.task == "text_classification"
    with pytest.raises(BenchError, match="params.task"):
        hook(name="glue_tsv", params={"path": str(root), "task": "RTE-2",
                                      "text_columns": ["sentence1"]}, ctx=None)


def test_pretraining_text_teaches_the_answer_format_not_the_answer():
    """The label word appended to each pre-training input is drawn independently of the
    example's label: it agrees with the label at chance rate."""
    from harness.tasks.text_classification import answer_format_texts

    for task in ("sentiment", "nli"):
        info = GENERATORS[task][1]
        examples = generate_split(task, 1200, seed=7)
        texts = answer_format_texts(examples, info, seed=7)
        agree = np.mean([t.split()[-1] == info.label_words[e.label]
                         for t, e in zip(texts, examples)])
        assert abs(agree - 1 / info.n_labels) < 0.05, (task, agree)
        assert all(t.startswith(e.text) for t, e in zip(texts, examples))


def test_glue_tsv_refuses_binary_f1_on_a_multiclass_task(tmp_path):
    root = _write_glue(tmp_path / "rte")
    with pytest.raises(BenchError, match="use macro_f1"):
        load_glue_tsv(root, "rte", ["sentence1"], labels=["not_entailment", "entailment", "x"],
                      metrics=["f1"])
