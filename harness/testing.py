"""Test fixtures for plugin authors: the real harness, on tiny data, in a temporary folder.

This module is a pytest plugin shipped with bench (registered through pytest's
``pytest11`` entry point, so installing bench is enough: no ``conftest.py`` to copy). The
project's own tests use it the same way. Fixtures (a conftest's fixture of the same name
takes precedence, as always in pytest):

``workdir``
    a fresh temporary folder, made the current directory (MLflow store and
    ``.bench_cache`` land there, never in your checkout)
``registry``
    a :class:`~harness.registry.Registry` with every installed plugin
``bench_registry``
    a factory for a registry with only the named plugins:
    ``bench_registry("baselines", my_plugin_module)`` (entry-point names, modules, or
    import paths; the harness's core plugin is always there)
``tiny_dataset``
    a split :class:`harness.api.Dataset` of synthetic interactions (60 users, 80 items),
    what ``bench_train`` receives
``tracking_uri``
    a temporary SQLite MLflow store (``sqlite:///<workdir>/mlflow.db``)
``write_suite``
    ``write_suite(dict_or_text, name="suite.yaml") -> Path``
``runtime_plugin``
    ``runtime_plugin("my_plugin", source)`` writes a plugin module and registers it by
    import path (``BENCH_PLUGINS``) for the test
``run_suite``
    one call from a suite (dict or path) to finished cells:
    ``run = run_suite(tiny_suite(methods=[{"name": "mine"}]))``; ``run.results`` are the
    runner's cell results, ``run.runs`` the cells' MLflow runs, ``run.metrics(label)`` a
    cell's test metrics

and :func:`tiny_suite`, a suite dict on tiny synthetic data to override per test.
"""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Optional, Union

import pytest
import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

TINY_DATA = {"n_users": 60, "n_items": 80, "n_interactions": 1200, "seed": 1}


def tiny_suite(**overrides: Any) -> dict:
    """A two-method, two-seed suite on tiny synthetic data; keyword arguments replace
    top-level keys (``methods=[...]``, ``seeds=[0]``, ...)."""
    suite = {
        "suite": "tiny",
        "datasets": [{"name": "synthetic", "params": dict(TINY_DATA)}],
        "methods": [{"name": "pop"},
                    {"name": "bpr_mf", "params": {"dim": 16, "epochs": 3, "batch_size": 256}}],
        "seeds": [0, 1],
        "metrics": ["ndcg@10", "recall@10"],
        "tracking": {"uri": "sqlite:///mlflow.db"},
    }
    suite.update(overrides)
    return suite


def make_registry(*plugins: Union[str, ModuleType, Any]) -> Any:
    """A registry with the core plugin and only ``plugins``: ``bench`` entry-point names
    (``"baselines"``), plugin modules or objects, or import paths (``"my_pkg.plugin"``)."""
    from .registry import Registry

    registry = Registry(autoload=False)
    for plugin in plugins:
        if isinstance(plugin, str):
            if not registry.load_entry_point(plugin):
                registry.register(importlib.import_module(plugin), name=plugin)
        else:
            registry.register(plugin)
    return registry


@dataclass
class SuiteRun:
    """What :func:`run_suite` returns: the runner's results and the cells' MLflow runs."""

    results: list
    runs: list = field(default_factory=list)
    tracking_uri: str = ""

    @property
    def statuses(self) -> dict[str, str]:
        return {r.cell.label: r.status for r in self.results}

    def metrics(self, label: str) -> dict[str, float]:
        """Test metrics of the first cell whose label starts with ``label`` (a method key
        or ``"method | dataset | seed N"``)."""
        for r in self.results:
            if r.cell.label.startswith(label):
                return r.metrics
        raise KeyError(f"no cell labelled '{label}' (cells: {', '.join(self.statuses)}).")


def cell_runs(tracking_uri: str, suite: str) -> list:
    """The cell runs (finished or failed) of ``suite`` in an MLflow store."""
    from .tracking import open_client, search_all_runs

    client, _ = open_client(tracking_uri)
    exp = client.get_experiment_by_name(suite)
    if exp is None:
        return []
    return search_all_runs(client, [exp.experiment_id], "tags.`bench.kind` = 'cell'")


# --- fixtures ------------------------------------------------------------------------------

@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def registry() -> Any:
    from .registry import Registry

    return Registry()


@pytest.fixture
def bench_registry() -> Callable[..., Any]:
    return make_registry


@pytest.fixture
def tracking_uri(workdir: Path) -> str:
    return f"sqlite:///{workdir / 'mlflow.db'}"


@pytest.fixture
def write_suite(workdir: Path) -> Callable[..., Path]:
    def write(content: Union[dict, str], name: str = "suite.yaml") -> Path:
        path = workdir / name
        path.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
        return path

    return write


@pytest.fixture
def runtime_plugin(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str, str], Path]:
    """``runtime_plugin("my_plugin", source)``: write a plugin module into ``workdir`` and
    register it by import path (``BENCH_PLUGINS``) for every registry the test makes, as
    a plugin under development is; removed again after the test."""
    import sys
    import textwrap

    names: list[str] = []

    def add(name: str, source: str) -> Path:
        path = workdir / f"{name}.py"
        path.write_text(textwrap.dedent(source))
        if not names:
            monkeypatch.syspath_prepend(str(workdir))
        names.append(name)
        monkeypatch.setenv("BENCH_PLUGINS", ",".join(names))
        return path

    yield add
    for name in names:
        sys.modules.pop(name, None)


@pytest.fixture
def tiny_dataset(workdir: Path) -> Any:
    from .registry import Registry
    from .runner import prepare_dataset
    from .suite import DatasetEntry

    entry = DatasetEntry(name="synthetic", params=dict(TINY_DATA))
    return prepare_dataset(entry, "topk", Registry(autoload=False), workdir / ".bench_cache")


@pytest.fixture
def run_suite(workdir: Path, tracking_uri: str, write_suite) -> Callable[..., SuiteRun]:
    from .runner import run_suite as run
    from .suite import load_suite

    def run_one(suite: Union[dict, str, Path], registry: Optional[Any] = None,
                force: bool = False) -> SuiteRun:
        from .registry import Registry

        registry = registry or Registry()
        path = write_suite(suite) if isinstance(suite, dict) else Path(suite)
        parsed, cells = load_suite(path, registry)
        results = run(parsed, cells, registry, force=force, tracking_uri=tracking_uri,
                      cache_dir=workdir / ".bench_cache")
        return SuiteRun(results, cell_runs(tracking_uri, parsed.suite), tracking_uri)

    return run_one


@pytest.fixture(scope="module")
def cli_suite_run(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., tuple[Path, Path]]:
    """``cli_suite_run(suite_dict, ["run", "-q"], ["leaderboard", "--out", "lb"])``: write
    the suite into a fresh folder and run those ``bench`` commands on it there, once per
    test module (each command: its name, then options; the suite path goes in between).
    Returns (folder, suite path); every command must exit 0."""
    import os

    from typer.testing import CliRunner

    from .cli import app

    def run(raw: dict, *commands: list) -> tuple[Path, Path]:
        folder = tmp_path_factory.mktemp(str(raw["suite"]))
        path = folder / f"{raw['suite']}.yaml"
        path.write_text(yaml.safe_dump(raw))
        cwd = os.getcwd()
        os.chdir(folder)
        try:
            for command in commands:
                res = CliRunner().invoke(app, [command[0], str(path), *command[1:]])
                assert res.exit_code == 0, res.output
        finally:
            os.chdir(cwd)
        return folder, path

    return run
