"""``bench leaderboard``: read the store, aggregate, render, write the files.

Written files are ``<out>/<stem>.md``, ``.html`` and ``.png``; ``<out>/<suite>-notes.md``
is the hand-written analysis, never written here, linked from the board when present.
Every file name built from a label is confined to the output folder.
"""
from __future__ import annotations

import re
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional, Sequence

from .. import tracking
from ..api import BenchError
from ..registry import Registry, closest
from .aggregate import Board, BoardOptions, build_boards
from .render import render_html, render_markdown, render_png
from .runs import collect_runs, load_per_user, open_experiment

_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]+")


def safe_stem(label: str) -> str:
    """A file-name stem from a label: only ``[A-Za-z0-9_.-]``, no leading dot, not empty."""
    stem = _UNSAFE.sub("_", label).lstrip(".")
    return stem or "_"


def confined(out_dir: Path, name: str) -> Path:
    """``out_dir / name``, refused unless it is a plain file directly inside ``out_dir``."""
    path = Path(out_dir) / name
    if Path(name).name != name or path.resolve().parent != Path(out_dir).resolve():
        raise BenchError(f"refusing to write '{name}' outside the output folder {out_dir}.")
    return path


def notes_name(suite_name: str) -> str:
    return f"{safe_stem(suite_name)}-notes.md"


def _git() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=5).stdout.strip() or "unknown"
    except Exception:
        return "unknown"


def resolve_baseline(suite, baseline: Optional[str]):
    """(suite with that baseline, file stem) for ``--baseline``; a label that is not a
    method of the suite is refused with the closest names."""
    if baseline is None or baseline == suite.baseline:
        return suite, safe_stem(suite.suite)
    keys = [m.key for m in suite.methods]
    if baseline not in keys:
        raise BenchError(f"--baseline '{baseline}' is not a method of suite "
                         f"'{suite.suite}'.{closest(baseline, keys)}")
    suite = suite.model_copy(update={"baseline": baseline})
    return suite, f"{safe_stem(suite.suite)}-vs-{safe_stem(baseline)}"


def load_boards(suite, registry: Registry, tracking_uri: Optional[str] = None,
                options: Optional[BoardOptions] = None) -> list[Board]:
    """The boards of a suite from its store (what the leaderboard and `bench results` show)."""
    uri = tracking_uri or suite.tracking.uri
    client, experiment_id = open_experiment(uri, suite.suite)
    runs = collect_runs(client, experiment_id)
    return build_boards(suite, registry.catalogue, runs,
                        lambda r: load_per_user(client, r.run_id), options)


def build_leaderboard(suite, registry: Registry, *, tracking_uri: Optional[str] = None,
                      out_dir: Path = Path("leaderboards"), command: Optional[str] = None,
                      test: str = "seeds", alpha: float = 0.05,
                      split_ids: Optional[Sequence[str]] = None,
                      baseline: Optional[str] = None) -> list[Path]:
    """Write ``<out_dir>/<suite>.md``, ``.html`` and ``.png``; return their paths.

    ``baseline`` tests every method against another method than the suite's ``baseline:``
    (e.g. TRPA against GRPO, not against the starting policy); the files are then named
    ``<suite>-vs-<baseline>.*`` so the suite's own board is not overwritten."""
    suite, stem = resolve_baseline(suite, baseline)
    options = BoardOptions(test=test, split_ids=split_ids)
    options.significance_test()  # an unknown test fails before the store is opened
    uri = tracking_uri or suite.tracking.uri
    boards = load_boards(suite, registry, uri, options)
    command = command or f"bench leaderboard <suite> --tracking-uri {tracking.redact_uri(uri)}"
    out_dir = Path(out_dir)
    paths = [confined(out_dir, f"{stem}{ext}") for ext in (".md", ".html", ".png")]
    notes = confined(out_dir, notes_name(suite.suite))
    out_dir.mkdir(parents=True, exist_ok=True)
    png = render_png(suite, boards, alpha=alpha)
    meta = {"when": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "store": tracking.redact_uri(uri), "git": _git(), "png_name": paths[2].name,
            "notes_name": notes.name if notes.exists() else ""}
    paths[0].write_text(render_markdown(suite, boards, command, alpha, meta))
    paths[1].write_text(render_html(suite, boards, command, alpha, meta, png))
    paths[2].write_bytes(png)
    return paths
