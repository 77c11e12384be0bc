"""A bench process ends without the interpreter's teardown (about 1.7 s once torch, MLflow
and ranx are loaded), and nothing else about its exit changes (issue 14)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class _WritesOnTeardown:
    """Writes its file when collected: at the interpreter's teardown of a module global."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __del__(self) -> None:
        self.path.write_text("torn down")


def _script(tmp_path: Path, skip: bool, exit_with: str) -> subprocess.CompletedProcess:
    code = textwrap.dedent(f"""
        import atexit, threading, time
        from pathlib import Path
        from harness.process_exit import set_exit_status, skip_teardown
        from test_process_exit import _WritesOnTeardown
        folder = Path({str(tmp_path)!r})
        if {skip}:
            skip_teardown()
        atexit.register(lambda: (folder / "atexit").write_text("ran"))
        def late():
            time.sleep(0.5)
            (folder / "thread").write_text("finished")
        threading.Thread(target=late).start()  # not a daemon: the exit waits for it
        KEPT = _WritesOnTeardown(folder / "teardown")
        print("output", end="")
        set_exit_status({exit_with})
        raise SystemExit({exit_with})
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=60)


def test_skipping_the_teardown_keeps_the_status_output_threads_and_exit_handlers(tmp_path):
    done = _script(tmp_path, skip=True, exit_with="3")
    assert done.returncode == 3, done.stderr
    assert done.stdout == "output"  # buffered output is flushed
    assert (tmp_path / "atexit").read_text() == "ran"  # handlers registered later still run
    assert (tmp_path / "thread").read_text() == "finished"  # non-daemon threads are joined
    assert not (tmp_path / "teardown").exists()  # the module globals were never torn down


def test_without_it_the_teardown_runs(tmp_path):
    """The control: the same script tears its globals down when the hook is not set, so the
    test above can tell the difference."""
    done = _script(tmp_path, skip=False, exit_with="0")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "teardown").read_text() == "torn down"


def test_a_message_exit_status_is_1(tmp_path):
    from harness.process_exit import _CODE, set_exit_status

    before = _CODE[0]
    try:
        set_exit_status("a message")
        assert _CODE[0] == 1
        set_exit_status(None)
        assert _CODE[0] == 0
    finally:
        _CODE[0] = before


def test_the_bench_command_keeps_its_exit_status_and_messages(tmp_path):
    """`bench` ends through the hook: an invalid suite still exits 2 with its message."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("suite: x\nmethods: [{name: no_such_method}]\ndatasets: [{name: ml-100k}]\n")
    done = subprocess.run([sys.executable, "-m", "harness.cli", "validate", str(bad)],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "no_such_method" in done.stdout + done.stderr


def _leave_traces(folder: str) -> int:
    """Run in a --jobs worker: an exit handler and a module global that would be torn down."""
    import atexit

    atexit.register(lambda: Path(folder, "atexit").write_text("ran"))
    globals()["KEPT"] = _WritesOnTeardown(Path(folder, "teardown"))
    return os.getpid()


def test_a_jobs_worker_ends_without_its_teardown(tmp_path):
    """The worker pool's shutdown at the end of a grid does not wait for the workers'
    interpreter teardown; their exit handlers still run and they end with status 0."""
    from harness.executors.local import _spawn_pool

    pool = _spawn_pool(1, 1)
    pid = pool.submit(_leave_traces, str(tmp_path)).result(timeout=300)
    (proc,) = list(pool._processes.values())
    assert proc.pid == pid != os.getpid()
    pool.shutdown(wait=True)
    assert proc.exitcode == 0
    assert (tmp_path / "atexit").read_text() == "ran"
    assert not (tmp_path / "teardown").exists()
