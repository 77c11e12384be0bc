"""The README's third-party plugin example: install it, find it, run it through `bench run`."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "bench-userknn"
# the bench of the interpreter running the tests (its venv), never whatever is first on PATH
BENCH = str(Path(sys.executable).with_name("bench"))


@pytest.fixture
def installed_example():
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(pip + ["install", "--no-deps", "--no-build-isolation", str(EXAMPLE)], check=True)
    try:
        yield
    finally:
        subprocess.run(pip + ["uninstall", "-y", "bench-userknn"], check=True)


def test_third_party_plugin_installs_and_runs(installed_example, workdir):
    env = dict(os.environ, PYTHONPATH="")
    listed = subprocess.run([BENCH, "plugins", "--json"], capture_output=True, text=True, env=env)
    assert '"userknn"' in listed.stdout and '"bench-userknn"' in listed.stdout
    run = subprocess.run([BENCH, "run", str(EXAMPLE / "suite.yaml"), "-q"], capture_output=True,
                         text=True, env=env, cwd=workdir)
    assert run.returncode == 0, run.stderr
    rows = {line.split("│")[2].strip(): float(line.split("│")[3]) for line in run.stdout.splitlines()
            if line.count("│") >= 4 and ("userknn" in line or " pop " in line)}
    # on planted low-rank data a neighbourhood model must beat popularity
    assert rows["userknn"] > rows["pop"]
