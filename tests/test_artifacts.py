"""What a cell leaves in MLflow: original-id per-user metrics that join run.trec, model
scores in run.trec (ranx can fuse them), the dataset as an MLflow input, the suite YAML,
git commit and description on the parent run and experiment, run names with the seed,
per-cell peak memory, bounded LLM samples."""
from __future__ import annotations

import copy
import importlib
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

from harness import memory
from harness.artifacts import bounded_samples, log_cell_outputs, per_unit_by_original_id
from harness.registry import Registry
from harness.runner import run_suite
from harness.suite import validate_suite
from harness.tracking import Tracker

RAW = {"suite": "arttest", "description": "artifact checks on tiny synthetic data",
       "datasets": [{"name": "atomic", "label": "syn", "params": {"name": "tiny"}}],
       "methods": [{"name": "pop"},
                   {"name": "bpr_mf", "params": {"dim": 8, "epochs": 2, "batch_size": 256}}],
       "seeds": [0], "metrics": ["ndcg@10", "recall@10"], "baseline": "pop"}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("art")
    reg = Registry(autoload=False)
    reg.register(importlib.import_module("plugins.baselines"), name="baselines")
    uri = f"sqlite:///{tmp}/mlflow.db"
    folder = tmp / "tiny"  # RecBole atomic files whose ids are not row numbers
    folder.mkdir()
    rng = np.random.default_rng(0)
    lines = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    for u in range(60):
        for i in rng.choice(80, size=25, replace=False, p=np.arange(80, 0, -1) / 3240):
            lines.append(f"user-{u + 100}\titem-{i + 500}\t{rng.integers(1, 6)}\t{u * 100 + i}")
    (folder / "tiny.inter").write_text("\n".join(lines) + "\n")
    raw = copy.deepcopy(RAW)
    raw["datasets"][0]["params"]["path"] = str(folder)
    suite, cells = validate_suite(raw, reg)
    results = run_suite(suite, cells, reg, tracking_uri=uri, cache_dir=tmp)
    assert all(r.status == "finished" for r in results), [r.error for r in results]
    tracker = Tracker(uri, suite.suite)
    return tracker, tmp


def _cell_run(tracker, method):
    return tracker.client.search_runs(
        [tracker.experiment_id],
        f"tags.`bench.method` = '{method}' and tags.`bench.kind` = 'cell'")[0]


def test_per_user_metrics_join_run_trec_by_original_id(store, tmp_path):
    tracker, _ = store
    run = _cell_run(tracker, "bpr_mf")
    per_user = json.loads(Path(tracker.client.download_artifacts(
        run.info.run_id, "per_user_metrics.json", str(tmp_path))).read_text())
    trec = Path(tracker.client.download_artifacts(run.info.run_id, "run.trec", str(tmp_path)))
    lines = [line.split() for line in trec.read_text().splitlines()]
    assert set(per_user["ndcg@10"]) == {parts[0] for parts in lines}  # same ids: they join
    assert all(u.startswith("user-") for u in per_user["ndcg@10"])  # the file's own ids
    mean = np.mean(list(per_user["ndcg@10"].values()))
    assert mean == pytest.approx(run.data.metrics["ndcg_at_10"], abs=1e-12)


def test_run_trec_carries_model_scores_that_ranx_can_fuse(store, tmp_path):
    tracker, _ = store
    runs = {}
    for method in ("pop", "bpr_mf"):
        run = _cell_run(tracker, method)
        path = Path(tracker.client.download_artifacts(run.info.run_id, "run.trec",
                                                      str(tmp_path / method)))
        rows = [line.split() for line in path.read_text().splitlines()]
        by_user: dict[str, list[float]] = {}
        for u, _, _, rank, score, _ in rows:
            by_user.setdefault(u, []).append(float(score))
        for scores in by_user.values():  # descending scores, in rank order
            assert scores == sorted(scores, reverse=True)
        runs[method] = path
    pop_scores = {float(line.split()[4]) for line in runs["pop"].read_text().splitlines()}
    assert max(pop_scores) > 10  # popularity counts, not K - rank
    from ranx import Run, fuse

    fused = fuse([Run.from_file(str(p), kind="trec") for p in runs.values()], norm="min-max",
                 method="wsum", params={"weights": [0.5, 0.5]})
    assert len(fused.to_dict()) == len({line.split()[0] for line in
                                        runs["pop"].read_text().splitlines()})


def test_dataset_input_parent_run_and_names(store):
    tracker, _ = store
    run = _cell_run(tracker, "bpr_mf")
    [inp] = run.inputs.dataset_inputs
    assert inp.dataset.name == "syn" and inp.dataset.digest == run.data.tags["bench.split_id"]
    assert run.info.run_name == "bpr_mf | seed 0 | syn"
    parent = tracker.client.search_runs([tracker.experiment_id],
                                        "tags.`bench.kind` = 'invocation'")[0]
    assert len(parent.data.tags["mlflow.source.git.commit"]) in (40, 7) or \
        parent.data.tags["mlflow.source.git.commit"] == "unknown"
    suite_yaml = yaml.safe_load(tracker.client.download_artifacts(parent.info.run_id, "suite.yaml",
                                                                  str(store[1])) and
                                Path(store[1], "suite.yaml").read_text())
    assert suite_yaml["suite"] == "arttest" and suite_yaml["methods"][1]["params"]["dim"] == 8
    exp = tracker.client.get_experiment(tracker.experiment_id)
    assert exp.tags["mlflow.note.content"] == RAW["description"]


def test_peak_memory_is_per_cell():
    if not memory.reset_peak():
        pytest.skip("this OS cannot reset the peak RSS; the process maximum is reported")
    base = memory.peak_rss_mb()
    block = np.ones(40 * 1024 * 1024 // 8)  # 40 MiB touched
    big = memory.peak_rss_mb()
    del block
    assert big - base > 30
    memory.reset_peak()
    assert memory.peak_rss_mb() < big - 30  # a new window forgets the earlier peak


def test_samples_jsonl_is_bounded():
    samples = [{"prompt": "p" * 5000, "response": f"r{i}", "score": i} for i in range(500)]
    text = bounded_samples(samples, rows=50, chars=100, max_bytes=10_000)
    rows = [json.loads(line) for line in text.splitlines()]
    assert len(text.encode()) <= 10_000 + 200
    assert rows[-1]["truncated"]["samples_total"] == 500 and len(rows) - 1 == 50
    tight = bounded_samples(samples, rows=500, chars=100, max_bytes=2_000)
    assert len(tight.encode()) <= 2_000 + 200 and "samples_kept" in tight.splitlines()[-1]
    assert all(len(r["prompt"]) <= 101 for r in rows[:-1])
    small = bounded_samples([{"a": 1}])
    assert small == '{"a": 1}\n'


class _Log:
    def __init__(self):
        self.texts, self.jsons, self.files = {}, {}, []

    def json(self, content, name):
        self.jsons[name] = content

    def text(self, content, name):
        self.texts[name] = content

    def file(self, path, folder=None):
        self.files.append(Path(path).name)

    def tmpdir(self):
        import tempfile

        return tempfile.TemporaryDirectory()


def test_cell_outputs_for_an_llm_task_log_samples_and_keep_unit_keys():
    result = SimpleNamespace(per_user={"accuracy": {"0": 1.0, "1": 0.0}}, topk=None,
                             extra={"samples": [{"prompt": "2+2", "response": "4", "correct": 1}]})
    log = _Log()
    log_cell_outputs(log, result, SimpleNamespace(name="arith"), SimpleNamespace())
    assert log.jsons["per_user_metrics.json"] == {"accuracy": {"0": 1.0, "1": 0.0}}
    assert json.loads(log.texts["samples.jsonl"])["response"] == "4" and not log.files
    data = SimpleNamespace(data=SimpleNamespace(user_tokens=np.array(["u9", "u7"])))
    assert per_unit_by_original_id({"m": {"0": 0.5, "1": 0.25}}, data) == {"m": {"u9": 0.5, "u7": 0.25}}
