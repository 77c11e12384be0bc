"""Open a leaderboard page in headless Chromium and check it shows the table and the plot.

    python benchmarks/screenshot_leaderboard.py leaderboards/quickstart.html [--out shot.png]

Prints what it measured and exits 1 if the page did not render: no screenshot, a blank
page, no table text, or none of the plot's bar colour (the embedded PNG did not load).
Needs a Chromium binary (`apt-get install -y chromium`); nothing is fetched from the
network (the page is self-contained).
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

BAR_RGB = np.array([0x3B, 0x75, 0xAF]) / 255.0  # harness/leaderboard.py's bar colour
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--hide-scrollbars", "--force-device-scale-factor=1"]


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    sys.exit("no chromium binary on PATH (apt-get install -y chromium)")


def screenshot(page: Path, out: Path, size: str = "1400,1800") -> float:
    import time

    with tempfile.TemporaryDirectory(prefix="bench-chromium-") as profile:
        cmd = [chromium(), *FLAGS, f"--user-data-dir={profile}", f"--window-size={size}",
               f"--screenshot={out.resolve()}", page.resolve().as_uri()]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
        elapsed = time.perf_counter() - t0
    if proc.returncode != 0 or not out.exists():
        sys.exit(f"chromium failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("page", type=Path, nargs="?", default=Path("leaderboards/quickstart.html"))
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    out = args.out or Path(".bench_cache") / f"screenshot-{args.page.stem}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    seconds = screenshot(args.page, out)

    import matplotlib.image as mpimg

    img = mpimg.imread(out)[..., :3]
    nonwhite = float((img.mean(axis=2) < 0.95).mean())
    bar = float((np.abs(img - BAR_RGB).max(axis=2) < 0.06).sum())
    html = args.page.read_text()
    checks = {
        "screenshot is not blank (non-white share > 2%)": nonwhite > 0.02,
        "plot bars visible (>= 500 px of the bar colour)": bar >= 500,
        "page has a table and an embedded PNG": "<table>" in html and "data:image/png;base64," in html,
    }
    print(f"page {args.page}: screenshot {out} {img.shape[1]}x{img.shape[0]} px in {seconds:.1f} s; "
          f"non-white share {nonwhite:.3f}; bar-colour pixels {int(bar)}")
    for name, ok in checks.items():
        print(f"  {'ok  ' if ok else 'FAIL'} {name}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
