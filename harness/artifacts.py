"""What a finished cell leaves in MLflow besides its metrics: the dataset as an MLflow
input, per-unit metrics keyed by the dataset's original ids, the top-K run with the model's
scores, and (LLM tasks) a bounded JSONL of sampled prompts, responses and scores.

One function per artifact so the runner calls one line (:func:`log_cell_outputs`) and each
format is tested on its own.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

#: bounds of ``samples.jsonl`` (like lm-eval's --log_samples, but never unbounded)
SAMPLE_ROWS = 200
SAMPLE_CHARS = 2000  # per text field
SAMPLE_BYTES = 1_000_000


def per_unit_by_original_id(per_user: dict[str, dict[str, float]], dataset: Any
                            ) -> dict[str, dict[str, float]]:
    """Per-user values keyed by the dataset's original user ids (as in ``run.trec``), so
    the two artifacts join; tasks without user tokens (puzzles, prompts) keep their keys."""
    tokens = getattr(getattr(dataset, "data", None), "user_tokens", None)
    if tokens is None:
        return per_user
    out = {}
    for metric, values in per_user.items():
        try:
            out[metric] = {str(tokens[int(k)]): v for k, v in values.items()}
        except (ValueError, IndexError):  # not internal indices: leave as they are
            out[metric] = values
    return out


def bounded_samples(samples: list[dict[str, Any]], rows: int = SAMPLE_ROWS,
                    chars: int = SAMPLE_CHARS, max_bytes: int = SAMPLE_BYTES) -> str:
    """JSONL text of at most ``rows`` samples, every string cut to ``chars`` characters and
    the whole file to ``max_bytes``; a final ``{"truncated": ...}`` line says what was cut."""
    lines, size, cut_fields = [], 0, 0
    for sample in samples[:rows]:
        row = {}
        for k, v in sample.items():
            if isinstance(v, str) and len(v) > chars:
                v = v[:chars] + "…"
                cut_fields += 1
            row[k] = v
        line = json.dumps(row, ensure_ascii=False, default=str)
        if size + len(line.encode()) + 1 > max_bytes:
            break
        lines.append(line)
        size += len(line.encode()) + 1
    dropped = len(samples) - len(lines)
    if dropped or cut_fields:
        lines.append(json.dumps({"truncated": {"samples_total": len(samples),
                                               "samples_kept": len(lines),
                                               "fields_cut_at_chars": cut_fields}}))
    return "\n".join(lines) + "\n"


def log_dataset_input(log: Any, dataset: Any) -> None:
    """``mlflow.log_input`` for the cell's dataset: its name, the split id as digest."""
    if hasattr(log, "input"):
        log.input(name=str(getattr(dataset, "name", "dataset")),
                  digest=str(getattr(dataset, "split_id", "")),
                  task=str(getattr(dataset, "task", "")))


def log_cell_outputs(log: Any, result: Any, dataset: Any, cell: Any) -> None:
    """Everything a finished cell logs besides metrics."""
    from .scoring import write_trec_run

    log.json(per_unit_by_original_id(result.per_user, dataset), "per_user_metrics.json")
    if result.topk is not None:
        users, items, valid = result.topk[:3]
        scores: Optional[Any] = (result.extra or {}).get("topk_scores")
        with log.tmpdir() as tmp:
            run_file = Path(tmp) / "run.trec"
            write_trec_run(run_file, users, items, valid, dataset, cell.method.key, scores=scores)
            log.file(run_file)
    samples = (result.extra or {}).get("samples")
    if samples:
        log.text(bounded_samples(samples), "samples.jsonl")


def log_suite(tracker: Any, suite: Any, run_id: Optional[str] = None) -> None:
    """On the parent run: the suite as run (after ``extends:`` and ``--set``) as
    ``suite.yaml``; on the experiment: the suite's description (MLflow's note)."""
    import yaml

    text = yaml.safe_dump(suite.model_dump(mode="json"), sort_keys=False)
    if run_id:  # the runner's invocation run, by id (not MLflow's active run)
        tracker.client.log_text(run_id, text, "suite.yaml")
    else:
        tracker.mlflow.log_text(text, "suite.yaml")
    if suite.description:
        tracker.client.set_experiment_tag(tracker.experiment_id, "mlflow.note.content",
                                          suite.description)
