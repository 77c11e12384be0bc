"""A slow test method and helpers to run ``bench`` as a real process and read its store."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import textwrap
from pathlib import Path

import yaml

SLEEPY_PLUGIN = '''
import os, time
from pathlib import Path

import torch
from harness.api import MethodSpec, Params
from harness.hookspecs import hookimpl


class SleepyParams(Params):
    seconds: float = 0.5


@hookimpl
def bench_register_methods():
    return [MethodSpec("sleepy", ("topk",), "popularity, after a sleep", params=SleepyParams)]


@hookimpl
def bench_train(method, params, dataset, ctx):
    if method != "sleepy":
        return None
    marks = Path(os.environ.get("SLEEPY_MARKS", "marks"))
    marks.mkdir(exist_ok=True)
    (marks / f"start-{ctx.seed}-{os.getpid()}-{time.time_ns()}").touch()
    time.sleep(SleepyParams(**params).seconds)
    pop = torch.as_tensor(dataset.item_popularity(), dtype=torch.float32)

    class Model:
        def score(self, users):
            return pop.expand(len(users), -1).clone()
    return Model()
'''


def write_sleepy(folder: Path, seeds: list[int], seconds: float, name: str = "life") -> Path:
    """The plugin module and a suite of ``len(seeds)`` sleepy cells in ``folder``."""
    (folder / "sleepy_plugin.py").write_text(textwrap.dedent(SLEEPY_PLUGIN))
    suite = {"suite": name,
             "datasets": [{"name": "synthetic", "params": {"n_users": 40, "n_items": 50,
                                                           "n_interactions": 600, "seed": 1}}],
             "methods": [{"name": "sleepy", "params": {"seconds": seconds}}],
             "seeds": seeds, "metrics": ["ndcg@10"],
             "tracking": {"uri": f"sqlite:///{folder / 'mlflow.db'}"}}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(suite))
    return path


def bench_env(folder: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "BENCH_PLUGINS": "sleepy_plugin",
           "SLEEPY_MARKS": str(folder / "marks"), "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join([str(folder), *sys.path])}
    env.update(extra)
    return env


def start_bench(folder: Path, *args: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "harness.cli", *args], cwd=folder,
                            env=bench_env(folder, **env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def marks(folder: Path) -> list[Path]:
    d = folder / "marks"
    return sorted(d.iterdir()) if d.exists() else []


def wait_for_marks(folder: Path, n: int, proc: subprocess.Popen, timeout: float = 180) -> None:
    end = time.time() + timeout
    while len(marks(folder)) < n:
        if proc.poll() is not None:
            raise AssertionError(f"bench exited early ({proc.returncode}): {proc.communicate()}")
        if time.time() > end:
            proc.send_signal(signal.SIGKILL)
            raise AssertionError(f"no {n} cells started in {timeout} s")
        time.sleep(0.1)


def all_runs(uri: str, experiment: str) -> list:
    import mlflow

    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id], max_results=5000)


def cells_by_hash(runs: list) -> dict[str, list]:
    out: dict[str, list] = {}
    for r in runs:
        if r.data.tags.get("bench.kind") == "cell":
            out.setdefault(r.data.tags["bench.cell_hash"], []).append(r)
    return out
