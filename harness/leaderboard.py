"""Leaderboards from the MLflow store: markdown, a self-contained HTML page and a PNG plot.

Read-only over MLflow: every number comes from finished cell runs the runner (or
``bench evaluate``) logged, so a leaderboard can be rebuilt from any store at any time.
Rows are methods, columns metrics, one table per dataset. A column only mixes runs with
the same split id and protocol id; anything else is refused rather than averaged.
"""
from __future__ import annotations

import base64
import html
import io
import json
import statistics
import subprocess
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional, Sequence

from .api import BenchError
from .registry import Registry, closest
from .significance import Comparison, compare_to_baseline
from .suite import Suite

BETTER, WORSE = "▲", "▼"


@dataclass
class RunRecord:
    run_id: str
    method: str
    dataset: str
    seed: str
    split_id: str
    protocol_id: str
    metrics: dict[str, float]
    tags: dict[str, str]
    start_time: int


@dataclass
class Row:
    method: str
    runs: list[RunRecord]
    stats: dict[str, tuple[float, float, int]] = field(default_factory=dict)  # mean, std, n

    @property
    def budget(self) -> str:
        tags = self.runs[-1].tags
        if tags.get("bench.source") == "evaluate":
            return "external run"
        if "bench.tuning_trials" not in tags:
            return "untuned"
        if tags.get("bench.tuning_budget", "0") == "0":
            return "0 (no search space)"
        extra = [tags.get("bench.tuning_sampler", "")]
        if tags.get("bench.tuning_pruned", "0") != "0":
            extra.append(f"{tags['bench.tuning_pruned']} pruned")
        return (f"{tags['bench.tuning_trials']}/{tags['bench.tuning_budget']} trials "
                f"({', '.join(e for e in extra if e)})")


@dataclass
class Board:
    dataset: str
    split_id: str
    protocol_id: str
    rows: list[Row]
    best: dict[str, set[str]]
    comparisons: dict[tuple[str, str], Comparison]
    notes: list[str]
    lower_better: set[str] = field(default_factory=set)  # metrics where smaller wins


# --- reading the store ---------------------------------------------------------------------

def _client(uri: str):
    import logging
    import os

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

    import mlflow

    from . import tracking

    for name in ("alembic", "mlflow", "mlflow.store.db.utils"):
        logging.getLogger(name).setLevel(logging.WARNING)
    uri = getattr(tracking, "absolute_uri", lambda u: u)(uri)
    return mlflow.MlflowClient(uri), uri


def collect_runs(client, experiment_id: str) -> list[RunRecord]:
    """Finished cell runs; for a repeated cell (same hash, e.g. after --force) and for a
    repeated (dataset, method, seed) the latest run wins."""
    runs = client.search_runs([experiment_id],
                              "tags.`bench.kind` = 'cell' and tags.`bench.status` = 'finished'",
                              order_by=["attributes.start_time ASC"], max_results=50000)
    latest: dict[Any, Any] = {}
    for r in runs:
        t = r.data.tags
        latest[t.get("bench.cell_hash", r.info.run_id)] = r
    by_cell: dict[tuple[str, str, str], RunRecord] = {}
    for r in sorted(latest.values(), key=lambda r: r.info.start_time):
        t = r.data.tags
        rec = RunRecord(r.info.run_id, t.get("bench.method", "?"), t.get("bench.dataset", "?"),
                        t.get("bench.seed", "?"), t.get("bench.split_id", "?"),
                        t.get("bench.protocol_id", "?"),
                        {k.replace("_at_", "@"): v for k, v in r.data.metrics.items()},
                        dict(t), r.info.start_time)
        by_cell[(rec.dataset, rec.method, rec.seed)] = rec
    return list(by_cell.values())


def experiment_runs(tracking_uri: str, experiment: str) -> tuple[Any, list[RunRecord]]:
    """(client, finished cell runs) of one suite's experiment, for report scripts; exits
    with a message naming the store when the suite has not been run into it."""
    client, uri = _client(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise SystemExit(f"no experiment '{experiment}' in {uri}; run the suite into this "
                         "store first (bench run SUITE --tracking-uri ...)")
    return client, collect_runs(client, exp.experiment_id)


def mean_std(values: list[float], digits: int = 4, empty: str = "–") -> str:
    """'mean ± std' over seeds (just the mean for one value, ``empty`` for none; NaN skipped)."""
    values = [v for v in values if v == v]
    if not values:
        return empty
    mean = statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def load_per_user(client, run_id: str) -> Optional[dict[str, dict[str, float]]]:
    with tempfile.TemporaryDirectory(prefix="bench-lb-") as tmp:
        try:
            path = client.download_artifacts(run_id, "per_user_metrics.json", tmp)
        except Exception:  # no artifact: a non-ranking task or an old run
            return None
        data = json.loads(Path(path).read_text())
    return data or None


# --- building the tables -------------------------------------------------------------------

def _check_ids(dataset: str, runs: list[RunRecord], attr: str, what: str) -> str:
    ids = {getattr(r, attr) for r in runs}
    if len(ids) > 1:
        detail = "; ".join(sorted(f"{r.method} seed {r.seed}: {getattr(r, attr)}" for r in runs))
        hint = " Rerun the stale cells (bench run --force) or pick one with --split-id." \
            if attr == "split_id" else " Rerun the stale cells with the suite's current metrics."
        raise BenchError(f"dataset '{dataset}': runs on different {what}s cannot share a "
                         f"leaderboard column ({detail}).{hint}")
    return ids.pop()


def build_boards(suite: Suite, registry: Registry, client, experiment_id: str,
                 test: str = "student", split_ids: Optional[Sequence[str]] = None) -> list[Board]:
    runs = collect_runs(client, experiment_id)
    if split_ids:
        runs = [r for r in runs if r.split_id in split_ids]
    metrics = list(suite.metrics)
    cat = registry.catalogue
    lower_better = set()
    for m in metrics:
        base = m.split("@")[0]
        if base in cat.metrics and not cat.metrics[base].higher_is_better:
            lower_better.add(m)
    order = [m.key for m in suite.methods]
    boards = []
    for entry in suite.datasets:
        ds_runs = [r for r in runs if r.dataset == entry.key]
        if not ds_runs:
            continue
        split_id = _check_ids(entry.key, ds_runs, "split_id", "split id")
        protocol_id = _check_ids(entry.key, ds_runs, "protocol_id", "protocol id")
        methods = sorted({r.method for r in ds_runs},
                         key=lambda m: (order.index(m) if m in order else len(order), m))
        rows = []
        for method in methods:
            mruns = sorted((r for r in ds_runs if r.method == method), key=lambda r: r.start_time)
            row = Row(method, mruns)
            for m in metrics:
                vals = [r.metrics[m] for r in mruns if m in r.metrics]
                if vals:
                    std = statistics.stdev(vals) if len(vals) > 1 else 0.0
                    row.stats[m] = (statistics.fmean(vals), std, len(vals))
            rows.append(row)
        best: dict[str, set[str]] = {}
        for m in metrics:
            scored = [(r.stats[m][0], r.method) for r in rows if m in r.stats]
            if scored:
                target = (min if m in lower_better else max)(v for v, _ in scored)
                best[m] = {name for v, name in scored if abs(v - target) <= 1e-12}
        comparisons, notes = _significance(suite, client, rows, metrics, test)
        missing = [m for m in order if m not in methods]
        if missing:
            notes.append(f"no finished runs yet for: {', '.join(missing)}.")
        boards.append(Board(entry.key, split_id, protocol_id, rows, best, comparisons, notes,
                            lower_better))
    if not boards:
        raise BenchError(f"no finished cell runs of suite '{suite.suite}' for its datasets "
                         f"({', '.join(d.key for d in suite.datasets)}); run `bench run` first "
                         "(with the same --tracking-uri).")
    return boards


def _significance(suite, client, rows, metrics, test) -> tuple[dict, list[str]]:
    notes: list[str] = []
    if not suite.baseline:
        return {}, ["no `baseline:` in the suite: significance tests skipped."]
    if suite.baseline not in {r.method for r in rows}:
        return {}, [f"baseline '{suite.baseline}' has no finished runs: significance skipped."]
    per_user: dict[str, dict[str, list]] = {}
    for row in rows:
        loaded = [load_per_user(client, r.run_id) for r in row.runs]
        if any(p is None for p in loaded):
            notes.append(f"{row.method}: no per-user metrics (non-ranking task or old run): "
                         "not tested.")
            continue
        per_user[row.method] = {m: [p[m] for p in loaded] for m in metrics
                                if all(m in p for p in loaded)}
    if suite.baseline not in per_user:
        return {}, notes + [f"baseline '{suite.baseline}' has no per-user metrics: "
                            "significance skipped."]
    comps = compare_to_baseline(per_user, suite.baseline, metrics, test)
    n = len({c.method for c in comps})
    if comps:
        notes.append(f"{BETTER}/{WORSE}: significantly better/worse than the baseline "
                     f"'{suite.baseline}' (two-sided paired {test} test via ranx on per-user "
                     f"values averaged over seeds; Holm-corrected over the {n} method(s) "
                     "compared, per metric).")
    return {(c.method, c.metric): c for c in comps}, notes


# --- rendering -----------------------------------------------------------------------------

def _cell_text(row: Row, metric: str, board: Board, alpha: float) -> tuple[str, str, bool]:
    """(value text, significance mark, bold)."""
    if metric not in row.stats:
        return "–", "", False
    mean, std, n = row.stats[metric]
    text = f"{mean:.4f} ± {std:.4f}" if n > 1 else f"{mean:.4f}"
    comp = board.comparisons.get((row.method, metric))
    mark = ""
    if comp is not None and comp.significant(alpha):
        improved = comp.delta < 0 if metric in board.lower_better else comp.delta > 0
        mark = BETTER if improved else WORSE
    return text, mark, row.method in board.best.get(metric, set())


def _seeds(row: Row) -> str:
    return str(len(row.runs))


def render_markdown(suite: Suite, boards: list[Board], command: str, alpha: float,
                    meta: dict[str, str]) -> str:
    metrics = list(suite.metrics)
    lines = [f"`{command}`", "", f"# Leaderboard: {suite.suite}", ""]
    if suite.description:
        lines += [suite.description, ""]
    lines += [f"Test-split metrics, mean ± std over seeds; **bold** = best per column. "
              f"Generated {meta['when']} from MLflow store `{meta['store']}` (git {meta['git']}).",
              ""]
    for b in boards:
        lines += [f"## {b.dataset}", "",
                  f"split id `{b.split_id}` · protocol id `{b.protocol_id}`", ""]
        head = ["method", *metrics, "seeds", "tuning budget"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for row in b.rows:
            name = row.method + (" (baseline)" if row.method == suite.baseline else "")
            cells = []
            for m in metrics:
                text, mark, bold = _cell_text(row, m, b, alpha)
                cells.append((f"**{text}**" if bold else text) + mark)
            lines.append("| " + " | ".join([name, *cells, _seeds(row), row.budget]) + " |")
        lines.append("")
        if b.comparisons:
            lines += [f"Holm-adjusted p-values against '{suite.baseline}' (α = {alpha}):", "",
                      "| method | " + " | ".join(metrics) + " |", "|" + "---|" * (len(metrics) + 1)]
            for row in b.rows:
                if row.method == suite.baseline:
                    continue
                ps = [b.comparisons.get((row.method, m)) for m in metrics]
                lines.append(f"| {row.method} | " + " | ".join(
                    "–" if c is None else f"{c.p_holm:.2g}" for c in ps) + " |")
            lines.append("")
        for note in b.notes:
            lines.append(f"- {note}")
        lines.append("")
    lines.append(f"![{suite.suite}]({meta['png_name']})")
    return "\n".join(lines) + "\n"


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left}th{background:#f3f3f3}
td.best{font-weight:bold}.sig{color:#b35c00;margin-left:2px}code{background:#f6f6f6;padding:1px 4px}
.cmd{font-family:monospace;background:#f6f6f6;padding:6px;border-left:3px solid #888}"""


def render_html(suite: Suite, boards: list[Board], command: str, alpha: float,
                meta: dict[str, str], png: bytes) -> str:
    e = html.escape
    metrics = list(suite.metrics)
    out = ["<!DOCTYPE html>", "<html><head><meta charset='utf-8'>",
           f"<title>Leaderboard: {e(suite.suite)}</title><style>{_CSS}</style></head><body>",
           f"<div class='cmd'>{e(command)}</div>", f"<h1>Leaderboard: {e(suite.suite)}</h1>"]
    if suite.description:
        out.append(f"<p>{e(suite.description)}</p>")
    out.append(f"<p>Test-split metrics, mean ± std over seeds; bold = best per column; hover a "
               f"cell for its p-value. Generated {e(meta['when'])} from <code>{e(meta['store'])}"
               f"</code> (git {e(meta['git'])}).</p>")
    for b in boards:
        out.append(f"<h2>{e(b.dataset)}</h2><p>split id <code>{e(b.split_id)}</code> · protocol id "
                   f"<code>{e(b.protocol_id)}</code></p>")
        out.append("<table><thead><tr><th>method</th>" + "".join(f"<th>{e(m)}</th>" for m in metrics)
                   + "<th>seeds</th><th>tuning budget</th></tr></thead><tbody>")
        for row in b.rows:
            name = e(row.method) + (" <i>(baseline)</i>" if row.method == suite.baseline else "")
            tds = []
            for m in metrics:
                text, mark, bold = _cell_text(row, m, b, alpha)
                comp = b.comparisons.get((row.method, m))
                title = ("baseline" if row.method == suite.baseline else
                         f"p = {comp.p_value:.3g}, Holm-adjusted p = {comp.p_holm:.3g}, "
                         f"Δ = {comp.delta:+.4f} over {comp.n_users} users" if comp else
                         "not tested")
                sig = f"<span class='sig'>{mark}</span>" if mark else ""
                tds.append(f"<td class='{'best' if bold else ''}' title='{e(title)}'>"
                           f"{e(text)}{sig}</td>")
            out.append(f"<tr><td>{name}</td>{''.join(tds)}<td>{_seeds(row)}</td>"
                       f"<td>{e(row.budget)}</td></tr>")
        out.append("</tbody></table>")
        if b.notes:
            out.append("<ul>" + "".join(f"<li>{e(n)}</li>" for n in b.notes) + "</ul>")
    out.append(f"<h2>Plot</h2><img alt='{e(suite.suite)} plot' "
               f"src='data:image/png;base64,{base64.b64encode(png).decode()}'>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def render_png(suite: Suite, boards: list[Board], metric: Optional[str] = None) -> bytes:
    """Bar chart of one metric per method, error bars = std over seeds, one panel per dataset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = metric or suite.metrics[0]
    fig, axes = plt.subplots(1, len(boards), figsize=(max(4.5, 1.3 * max(len(b.rows) for b in boards)
                                                          + 1.5) * len(boards), 4), squeeze=False)
    for ax, b in zip(axes[0], boards):
        rows = [r for r in b.rows if metric in r.stats]
        means = [r.stats[metric][0] for r in rows]
        stds = [r.stats[metric][1] for r in rows]
        colors = ["#888888" if r.method == suite.baseline else "#3b75af" for r in rows]
        ax.bar(range(len(rows)), means, yerr=stds, capsize=5, color=colors)
        ax.set_xticks(range(len(rows)), [f"{r.method}\n(n={r.stats[metric][2]})" for r in rows],
                      fontsize=8)
        ax.set_title(f"{b.dataset} (split {b.split_id[:8]})")
        ax.set_ylabel(f"{metric} (test, mean ± std over seeds)")
        for i, r in enumerate(rows):
            text, mark, _ = _cell_text(r, metric, b, 0.05)
            if mark:
                ax.annotate(mark, (i, means[i] + stds[i]), ha="center", va="bottom")
    fig.suptitle(f"{suite.suite}: {metric}")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def _git() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=5).stdout.strip() or "unknown"
    except Exception:
        return "unknown"


def build_leaderboard(suite: Suite, registry: Registry, *, tracking_uri: Optional[str] = None,
                      out_dir: Path = Path("leaderboards"), command: Optional[str] = None,
                      test: str = "student", alpha: float = 0.05,
                      split_ids: Optional[Sequence[str]] = None,
                      baseline: Optional[str] = None) -> list[Path]:
    """Write ``<out_dir>/<suite>.md``, ``.html`` and ``.png``; return their paths.

    ``baseline`` tests every method against another method than the suite's ``baseline:``
    (e.g. TRPA against GRPO, not against the starting policy); the files are then named
    ``<suite>-vs-<baseline>.*`` so the suite's own board is not overwritten."""
    from .tuning import _redact

    if test not in ("student", "fisher"):
        raise BenchError(f"unknown significance test '{test}'; choose student or fisher.")
    stem = suite.suite
    if baseline is not None and baseline != suite.baseline:
        keys = [m.key for m in suite.methods]
        if baseline not in keys:
            raise BenchError(f"--baseline '{baseline}' is not a method of suite "
                             f"'{suite.suite}'.{closest(baseline, keys)}")
        suite = suite.model_copy(update={"baseline": baseline})
        stem = f"{suite.suite}-vs-{baseline}"
    uri = tracking_uri or suite.tracking.uri
    client, abs_uri = _client(uri)
    exp = client.get_experiment_by_name(suite.suite)
    if exp is None:
        raise BenchError(f"the MLflow store {_redact(uri)} has no experiment '{suite.suite}'; "
                         f"run `bench run` on the suite first (same --tracking-uri).")
    boards = build_boards(suite, registry, client, exp.experiment_id, test, split_ids)
    command = command or f"bench leaderboard <suite> --tracking-uri {uri}"
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    png = render_png(suite, boards)
    paths = [out_dir / f"{stem}.md", out_dir / f"{stem}.html", out_dir / f"{stem}.png"]
    meta = {"when": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "store": _redact(uri), "git": _git(), "png_name": paths[2].name}
    paths[0].write_text(render_markdown(suite, boards, command, alpha, meta))
    paths[1].write_text(render_html(suite, boards, command, alpha, meta, png))
    paths[2].write_bytes(png)
    return paths

