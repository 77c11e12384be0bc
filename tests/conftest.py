"""Shared fixtures: every test runs in its own folder with its own MLflow store."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def registry():
    from harness.registry import Registry

    return Registry()


@pytest.fixture
def write_suite(workdir):
    """Write a suite dict (or raw text) to a YAML file and return its path."""

    def write(content, name: str = "suite.yaml") -> Path:
        path = workdir / name
        path.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
        return path

    return write


def tiny_suite(**overrides) -> dict:
    suite = {
        "suite": "tiny",
        "datasets": [{"name": "synthetic", "params": {"n_users": 60, "n_items": 80,
                                                      "n_interactions": 1200, "seed": 1}}],
        "methods": [{"name": "pop"},
                    {"name": "bpr_mf", "params": {"dim": 16, "epochs": 3, "batch_size": 256}}],
        "seeds": [0, 1],
        "metrics": ["ndcg@10", "recall@10"],
        "tracking": {"uri": "sqlite:///mlflow.db"},
    }
    suite.update(overrides)
    return suite
