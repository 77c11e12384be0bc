"""Headless-Chromium check of what a user sees: the `bench ui` runs page with the cell runs,
and a wide leaderboard page without horizontal page overflow.

    python benchmarks/screenshot_ui.py [--workdir DIR] [--port 5123] [--width 1024]

Runs a small suite on synthetic data (3 methods x 3 seeds, 11 metrics: a table wider than
the window), writes its leaderboard, starts `bench ui SUITE` (one worker) and loads the
printed runs-page URL in headless Chromium. Prints what it measured, saves the PNGs under
the work folder, and exits 1 if a check fails: the runs page does not list every cell run,
the leaderboard page is wider than the window (the tables must scroll inside their own
box), or a screenshot is blank. Needs `chromium` (apt-get install -y chromium); nothing is
fetched from the network.
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from screenshot_leaderboard import FLAGS, chromium  # noqa: E402

SUITE = {
    "suite": "ui-check",
    "description": "Screenshot check: 3 methods x 3 seeds on synthetic data, 11 metrics.",
    "datasets": [{"name": "synthetic", "label": "synthetic-small",
                  "params": {"n_users": 150, "n_items": 200, "n_interactions": 4000, "seed": 0}}],
    "methods": [{"name": "pop"}, {"name": "itemknn", "params": {"k": 30}},
                {"name": "bpr_mf", "params": {"dim": 16, "epochs": 3, "batch_size": 512}}],
    "seeds": [0, 1, 2],
    "metrics": ["ndcg@5", "ndcg@10", "ndcg@20", "recall@5", "recall@10", "recall@20",
                "hit_rate@10", "hit_rate@20", "mrr@10", "precision@10", "map@10"],
    "baseline": "pop",
}

MEASURE_JS = """<script>
window.addEventListener('load', function () {
  var de = document.documentElement, widest = 0;
  document.querySelectorAll('table').forEach(function (t) { widest = Math.max(widest, t.scrollWidth); });
  var m = document.createElement('pre');
  m.id = 'bench-measure';
  m.textContent = 'MEASURE page_scroll_width=' + de.scrollWidth + ' viewport_width=' + de.clientWidth +
                  ' widest_table=' + widest;
  document.body.appendChild(m);
});
</script>"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def browser(args: list[str], timeout: int = 240) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="bench-chromium-") as profile:
        cmd = [chromium(), *FLAGS, f"--user-data-dir={profile}", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def shoot(url: str, out: Path, size: str, budget_ms: int = 0) -> float:
    out.unlink(missing_ok=True)
    extra = [f"--virtual-time-budget={budget_ms}"] if budget_ms else []
    t0 = time.perf_counter()
    proc = browser([*extra, f"--window-size={size}", f"--screenshot={out.resolve()}", url])
    if proc.returncode != 0 or not out.exists():
        sys.exit(f"chromium failed on {url} ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return time.perf_counter() - t0


def dom(url: str, size: str, budget_ms: int = 0) -> str:
    extra = [f"--virtual-time-budget={budget_ms}"] if budget_ms else []
    return browser([*extra, f"--window-size={size}", "--dump-dom", url]).stdout


def nonwhite(png: Path) -> float:
    import matplotlib.image as mpimg

    img = mpimg.imread(png)[..., :3]
    return float((img.mean(axis=2) < 0.95).mean())


def bench(*args: str, cwd: Path) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"bench {' '.join(args)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")


def wait_http(url: str, seconds: float) -> float:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return time.perf_counter() - t0
        except Exception:
            time.sleep(0.5)
    sys.exit(f"the MLflow UI did not answer on {url} within {seconds:.0f} s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=Path(".bench_cache") / "screenshot-ui")
    ap.add_argument("--port", type=int, default=0, help="default: a free port")
    ap.add_argument("--width", type=int, default=1024, help="browser window width (px)")
    args = ap.parse_args()
    work = args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    repo = Path(__file__).resolve().parents[1]
    suite = work / "ui-check.yaml"
    suite.write_text(yaml.safe_dump(SUITE, sort_keys=False))
    os.environ["PYTHONPATH"] = str(repo) + os.pathsep + os.environ.get("PYTHONPATH", "")
    uri = f"sqlite:///{work}/mlflow.db"
    bench("run", str(suite), "-q", "--tracking-uri", uri, cwd=work)
    bench("leaderboard", str(suite), "--tracking-uri", uri, "--out", str(work / "leaderboards"),
          cwd=work)
    checks: dict[str, bool] = {}
    size = f"{args.width},1400"

    # --- the leaderboard page at the window width --------------------------------------------
    page = work / "leaderboards" / "ui-check.html"
    measured = work / "ui-check-measure.html"
    measured.write_text(page.read_text().replace("</body>", MEASURE_JS + "</body>"))
    lb_png = work / "leaderboard.png"
    secs = shoot(page.as_uri(), lb_png, size)
    m = re.search(r"MEASURE page_scroll_width=(\d+) viewport_width=(\d+) widest_table=(\d+)",
                  dom(measured.as_uri(), size))
    if not m:
        sys.exit("could not measure the leaderboard page (no MEASURE line in the DOM)")
    page_w, view_w, table_w = map(int, m.groups())
    print(f"leaderboard {page}: window {args.width} px; page scroll width {page_w} px, "
          f"viewport {view_w} px, widest table {table_w} px; screenshot {lb_png} "
          f"({secs:.1f} s, non-white share {nonwhite(lb_png):.3f})")
    checks["the table is wider than the window (the check means something)"] = table_w > view_w
    checks["no horizontal page overflow (tables scroll in their own box)"] = page_w <= view_w
    checks["leaderboard screenshot is not blank"] = nonwhite(lb_png) > 0.02

    # --- bench ui: the runs page -------------------------------------------------------------
    port = args.port or free_port()
    log = open(work / "ui.log", "w")
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "ui", str(suite), "--tracking-uri",
                             uri, "--port", str(port)], cwd=work, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        ready = wait_http(f"http://127.0.0.1:{port}/", 300)
        text = (work / "ui.log").read_text()
        plain = re.search(r"runs of ui-check: (\S+)", text).group(1)
        url = re.search(r"grouped by method, test metrics as columns: (\S+)", text).group(1)
        print(f"bench ui: answered after {ready:.1f} s; printed runs page {plain} and the "
              f"cells view {url}")
        plain_png = work / "ui-runs-plain.png"
        shoot(plain, plain_png, "1400,1000", budget_ms=30000)
        print(f"plain runs page (the parent run, cells nested under it): {plain_png}")
        runs_png = work / "ui-runs.png"
        secs = shoot(url, runs_png, "1400,1000", budget_ms=30000)
        html = dom(url, "1400,1000", budget_ms=30000)
        names = [f"{m_['name']} | seed {s} | synthetic-small" for m_ in SUITE["methods"]
                 for s in SUITE["seeds"]]
        shown = [n for n in names if n in html.replace("&amp;", "&")]
        print(f"runs page: screenshot {runs_png} ({secs:.1f} s, non-white share "
              f"{nonwhite(runs_png):.3f}); {len(shown)}/{len(names)} cell run names in the page; "
              f"total start-to-screenshot {time.perf_counter() - t0:.1f} s")
        checks["runs page lists every cell run"] = len(shown) == len(names)
        checks["runs-page screenshot is not blank"] = nonwhite(runs_png) > 0.02
    finally:  # bench ui and the MLflow server it started share one process group
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            time.sleep(5)
        proc.wait(timeout=20)
        log.close()
    for name, ok in checks.items():
        print(f"  {'ok  ' if ok else 'FAIL'} {name}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
