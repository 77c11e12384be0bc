"""Rendering boards: markdown, a self-contained HTML page and a PNG plot.

Renderers only format what :mod:`harness.leaderboard.aggregate` computed. Every label
(method, dataset, suite text) is escaped for the format it goes into.
"""
from __future__ import annotations

import base64
import html
import io
import math
import re
from typing import Optional

from .aggregate import Board, Row

_MD_SPECIAL = re.compile(r"([\\`*\[\]<>|~])")
_MD_UNDERSCORE = re.compile(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")


def md_escape(text: str) -> str:
    """A label as literal markdown text: specials backslash-escaped, newlines flattened
    (a `|` would otherwise split a table cell, a `[..](..)` become a link). An underscore
    inside a word (``bpr_mf``) cannot start emphasis and is left as it is."""
    text = _MD_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))
    return _MD_UNDERSCORE.sub(r"\\_", text)


def _md_code(text: str) -> str:
    return f"`{str(text).replace('`', '')}`"


def cell_text(row: Row, metric: str, board: Board, alpha: float) -> tuple[str, str, bool]:
    """(value text, significance mark, bold) of one table cell."""
    if metric not in row.stats:
        return "–", "", False
    mean, std, n = row.stats[metric]
    text = f"{mean:.4f} ± {std:.4f}" if n > 1 else f"{mean:.4f}"
    return text, board.mark(row, metric, alpha), row.method in board.best.get(metric, set())


def _row_name(row: Row, board: Board) -> str:
    """Plain text of the method column: label, (baseline), [flags]."""
    name = row.method + (" (baseline)" if row.method == board.baseline else "")
    return name + "".join(f" [{f}]" for f in row.flags)


CLAIMS_NOTE = ("Judged from the runs above, never by hand: seed-level paired t-test, the "
               "suite's claims one Holm family; an arm still improving at its epoch budget, "
               "or with fewer than three seeds, makes a claim not testable here.")


def p_value_unit(board: Board) -> str:
    """What one observation of the board's test is, in words."""
    if board.test in ("seeds", "bootstrap"):
        return "over training runs paired by seed" + (
            ", then " + board.unit if board.test == "bootstrap" else "")
    return f"paired over {board.unit} of seed-averaged scores"


def p_value_rows(board: Board, metrics: list[str]):
    """(row, its baseline, shared seeds, comparisons per metric) for every tested row."""
    for row in board.rows:
        base = board.baseline_of.get(row.method)
        if base is None:
            continue
        ps = [board.comparisons.get((row.method, m)) for m in metrics]
        seeds = max((c.n_seeds for c in ps if c is not None), default=0)
        yield row, base, seeds or "–", ps


def p_text(comp) -> str:
    return "–" if comp is None or comp.p_holm != comp.p_holm else f"{comp.p_holm:.2g}"


def _header(metric: str, board: Board) -> str:
    return f"{metric} {board.direction(metric)}"


def render_markdown(suite, boards: list[Board], command: str, alpha: float,
                    meta: dict[str, str]) -> str:
    metrics = list(suite.metrics)
    lines = [f"`{command}`", "", f"# Leaderboard: {md_escape(suite.suite)}", ""]
    if meta.get("notes_name"):
        lines += [f"Analysis and claims: [{meta['notes_name']}]({meta['notes_name']}) "
                  "(hand-written; `bench leaderboard` never overwrites it).", ""]
    if suite.description:
        lines += [md_escape(suite.description), ""]
    lines += ["Test-split metrics, mean ± std over seeds; **bold** = best per column "
              "(↑ higher is better, ↓ lower is better). "
              f"Generated {meta['when']} from MLflow store {_md_code(meta['store'])} "
              f"(git {meta['git']}).", ""]
    for b in boards:
        lines += [f"## {md_escape(b.dataset)}", "",
                  f"split id {_md_code(b.split_id)} · protocol id {_md_code(b.protocol_id)}", ""]
        head = ["method", *(_header(m, b) for m in metrics), *b.column_names]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for row in b.rows:
            cells = []
            for m in metrics:
                text, mark, bold = cell_text(row, m, b, alpha)
                cells.append((f"**{text}**" if bold else text) + mark)
            extra = [md_escape(row.columns.get(c, "")) for c in b.column_names]
            lines.append("| " + " | ".join([md_escape(_row_name(row, b)), *cells, *extra]) + " |")
        lines.append("")
        if b.comparisons:
            lines += [f"Holm-adjusted p-values (α = {alpha}, {p_value_unit(b)}; – = not "
                      "tested or too few seeds):", "",
                      "| method | vs | seeds | " + " | ".join(metrics) + " |",
                      "|" + "---|" * (len(metrics) + 3)]
            for row, base, n_seeds, ps in p_value_rows(b, metrics):
                lines.append(f"| {md_escape(row.method)} | {md_escape(base)} | {n_seeds} | "
                             + " | ".join(p_text(c) for c in ps) + " |")
            lines.append("")
        if b.claims:
            lines += ["### Claims", "", CLAIMS_NOTE, ""]
            lines += [f"- **{v.verdict}**: {md_escape(v.body())}" for v in b.claims] + [""]
        for note in b.notes:
            lines.append(f"- {md_escape(note)}")
        lines.append("")
    lines.append(f"![{md_escape(suite.suite)}]({meta['png_name']})")
    return "\n".join(lines) + "\n"


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:100%;box-sizing:border-box}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left}th{background:#f3f3f3}
td.best{font-weight:bold}.sig{color:#b35c00;margin-left:2px}.flag{color:#a00;font-size:85%}
code{background:#f6f6f6;padding:1px 4px;overflow-wrap:anywhere}
.cmd{font-family:monospace;background:#f6f6f6;padding:6px;border-left:3px solid #888;overflow-wrap:anywhere}
.plot{max-width:100%}.plot img{max-width:100%;height:auto;display:block}
li{overflow-wrap:anywhere}"""


def render_html(suite, boards: list[Board], command: str, alpha: float,
                meta: dict[str, str], png: bytes) -> str:
    e = html.escape
    metrics = list(suite.metrics)
    out = ["<!DOCTYPE html>", "<html><head><meta charset='utf-8'>",
           "<meta name='viewport' content='width=device-width, initial-scale=1'>",
           f"<title>Leaderboard: {e(suite.suite)}</title><style>{_CSS}</style></head><body>",
           f"<div class='cmd'>{e(command)}</div>", f"<h1>Leaderboard: {e(suite.suite)}</h1>"]
    if meta.get("notes_name"):
        out.append(f"<p>Analysis and claims: <a href='{e(meta['notes_name'])}'>"
                   f"{e(meta['notes_name'])}</a> (hand-written).</p>")
    if suite.description:
        out.append(f"<p>{e(suite.description)}</p>")
    out.append("<p>Test-split metrics, mean ± std over seeds; bold = best per column (↑ higher "
               "is better, ↓ lower is better); hover a cell for its p-value. Generated "
               f"{e(meta['when'])} from <code>{e(meta['store'])}</code> (git {e(meta['git'])}).</p>")
    for b in boards:
        out.append(f"<h2>{e(b.dataset)}</h2><p>split id <code>{e(b.split_id)}</code> · protocol "
                   f"id <code>{e(b.protocol_id)}</code></p>")
        out.append("<div class='scroll'><table><thead><tr><th>method</th>"
                   + "".join(f"<th>{e(_header(m, b))}</th>" for m in metrics)
                   + "".join(f"<th>{e(c)}</th>" for c in b.column_names) + "</tr></thead><tbody>")
        for row in b.rows:
            name = e(row.method) + (" <i>(baseline)</i>" if row.method == b.baseline else "")
            name += "".join(f" <span class='flag'>[{e(f)}]</span>" for f in row.flags)
            tds = []
            for m in metrics:
                text, mark, bold = cell_text(row, m, b, alpha)
                comp = b.comparisons.get((row.method, m))
                title = ("baseline" if row.method == b.baseline else
                         f"p = {comp.p_value:.3g}, Holm-adjusted p = {comp.p_holm:.3g}, "
                         f"Δ = {comp.delta:+.4f} over {comp.n_users} {b.unit}" if comp else
                         "not tested")
                sig = f"<span class='sig'>{mark}</span>" if mark else ""
                tds.append(f"<td class='{'best' if bold else ''}' title='{e(title)}'>"
                           f"{e(text)}{sig}</td>")
            extra = "".join(f"<td>{e(row.columns.get(c, ''))}</td>" for c in b.column_names)
            out.append(f"<tr><td>{name}</td>{''.join(tds)}{extra}</tr>")
        out.append("</tbody></table></div>")
        if b.comparisons:
            out.append(f"<p>Holm-adjusted p-values (α = {alpha}, {e(p_value_unit(b))}; – = "
                       "not tested or too few seeds):</p>")
            out.append("<div class='scroll'><table class='pvalues'><thead><tr><th>method</th>"
                       "<th>vs</th><th>seeds</th>"
                       + "".join(f"<th>{e(m)}</th>" for m in metrics) + "</tr></thead><tbody>")
            for row, base, n_seeds, ps in p_value_rows(b, metrics):
                out.append(f"<tr><td>{e(row.method)}</td><td>{e(base)}</td><td>{n_seeds}</td>"
                           + "".join(f"<td>{p_text(c)}</td>" for c in ps) + "</tr>")
            out.append("</tbody></table></div>")
        if b.claims:
            out.append(f"<h3>Claims</h3><p>{e(CLAIMS_NOTE)}</p><ul>"
                       + "".join(f"<li><b>{e(v.verdict)}</b>: {e(v.body())}</li>"
                                 for v in b.claims) + "</ul>")
        if b.notes:
            out.append("<ul>" + "".join(f"<li>{e(n)}</li>" for n in b.notes) + "</ul>")
    out.append(f"<h2>Plot</h2><div class='plot'><img alt='{e(suite.suite)} plot' "
               f"src='data:image/png;base64,{base64.b64encode(png).decode()}'></div>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


BAR_COLOR, BASELINE_COLOR = "#3b75af", "#888888"
PANELS_PER_ROW = 3


def render_png(suite, boards: list[Board], metric: Optional[str] = None,
               alpha: float = 0.05) -> bytes:
    """Bar chart of one metric per method, error bars = std over seeds, one panel per
    dataset, at most three panels a row (so the image keeps a readable width)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = metric or suite.metrics[0]
    ncols = min(PANELS_PER_ROW, len(boards))
    nrows = math.ceil(len(boards) / ncols)
    width = max(4.5, 1.3 * max(len(b.rows) for b in boards) + 1.5)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, 4 * nrows), squeeze=False)
    flat = list(axes.flat)
    for ax in flat[len(boards):]:
        ax.axis("off")
    for ax, b in zip(flat, boards):
        rows = [r for r in b.rows if metric in r.stats]
        means = [r.stats[metric][0] for r in rows]
        stds = [r.stats[metric][1] for r in rows]
        colors = [BASELINE_COLOR if r.method == b.baseline else BAR_COLOR for r in rows]
        ax.bar(range(len(rows)), means, yerr=stds, capsize=5, color=colors)
        ax.set_xticks(range(len(rows)), [f"{r.method}\n(n={r.stats[metric][2]})" for r in rows],
                      fontsize=8)
        ax.set_title(f"{b.dataset} (split {b.split_id[:8]})")
        ax.set_ylabel(f"{metric} {b.direction(metric)} (test, mean ± std)")
        for i, r in enumerate(rows):
            mark = b.mark(r, metric, alpha)
            if mark:
                ax.annotate(mark, (i, means[i] + stds[i]), ha="center", va="bottom")
    fig.suptitle(f"{suite.suite}: {metric}")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()
