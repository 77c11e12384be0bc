"""From finished runs to boards: rows (methods), per-metric statistics over seeds, the best
value per column, significance against a baseline, notes, extra columns and row flags.

Pure computation over :class:`~harness.leaderboard.runs.RunRecord` values (the per-unit
values of a run come through a loader function), so it is tested without MLflow and the
renderers never recompute a number.

Extension points, so later work plugs in without touching the renderers:

- a significance test is a :class:`SignificanceTest` in :data:`SIGNIFICANCE_TESTS`
  (``bench leaderboard --test NAME`` picks one); it returns :class:`Comparison` values;
- an extra table column is a :class:`Column` appended to :data:`COLUMNS` (or passed in
  :class:`BoardOptions.columns`); its value is computed from a :class:`Row`;
- a row flag (e.g. "best epoch at the end of the budget") is a :data:`Flagger` in
  :data:`FLAGGERS` (or :class:`BoardOptions.flaggers`); flags are shown next to the
  method and listed in ``bench results``;
- the baseline of each row comes from :meth:`BoardOptions.baseline_of` (a method's own
  ``baseline:`` in the suite, else the suite's), so a per-group baseline overrides only
  the methods of that group.

The default test is over **training runs** (``seeds``: runs paired by seed); the per-unit
tests (``student``, ``fisher``: users, puzzles or prompts of seed-averaged scores) stay
available as labelled options. Arms with fewer than three shared seeds get no mark.
"""
from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional, Protocol, Sequence

from ..api import BenchError
from ..claims import Verdict, judge
from ..significance import MIN_SEEDS, UNIT_LABELS, Comparison, compare_runs
from .runs import RunRecord, mean_std

BETTER, WORSE = "▲", "▼"

#: what one paired observation of a task is, for the board's footnote
UNITS = {"topk": "users", "sequential": "users", "signed": "users", "reasoning": "puzzles",
         "preference": "prompts"}

PerUnitLoader = Callable[[RunRecord], Optional[Mapping[str, Mapping[str, float]]]]


@dataclass
class Row:
    method: str
    runs: list[RunRecord]
    stats: dict[str, tuple[float, float, int]] = field(default_factory=dict)  # mean, std, n
    flags: list[str] = field(default_factory=list)  # short warnings, e.g. "under-trained"
    columns: dict[str, str] = field(default_factory=dict)  # extra column header -> text

    @property
    def external(self) -> bool:
        return bool(self.runs) and self.runs[-1].external

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
        chosen = _chosen_params(tags.get("bench.tuned_params"))
        if chosen:  # the value validation picked, so the board shows what was run
            extra.append(f"chose {chosen}")
        return (f"{tags['bench.tuning_trials']}/{tags['bench.tuning_budget']} trials "
                f"({', '.join(e for e in extra if e)})")


def _chosen_params(raw: Optional[str]) -> str:
    """``{"alpha": 0.01}`` (the tag ``bench.tuned_params``) as ``alpha=0.01``."""
    if not raw:
        return ""
    try:
        params = json.loads(raw)
    except ValueError:
        return ""
    if not isinstance(params, dict):
        return ""
    return " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                    for k, v in sorted(params.items()))


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
    baseline: Optional[str] = None
    task: str = "topk"
    test: str = "seeds"
    column_names: list[str] = field(default_factory=list)  # extra columns, in order
    #: method -> the label it is tested against (a per-group baseline differs from `baseline`)
    baseline_of: dict[str, str] = field(default_factory=dict)
    claims: list[Verdict] = field(default_factory=list)  # the suite's claims, judged here

    @property
    def unit(self) -> str:
        return UNITS.get(self.task, "units")

    def direction(self, metric: str) -> str:
        return "↓" if metric in self.lower_better else "↑"

    def mark(self, row: Row, metric: str, alpha: float) -> str:
        """▲/▼ when the row differs significantly from the baseline on ``metric``."""
        comp = self.comparisons.get((row.method, metric))
        if comp is None or not comp.significant(alpha):
            return ""
        improved = comp.delta < 0 if metric in self.lower_better else comp.delta > 0
        return BETTER if improved else WORSE


# --- pluggable parts --------------------------------------------------------------------------

class SignificanceTest(Protocol):
    """Compares every row with the baseline row, per metric, already multiplicity-corrected."""

    name: str

    def compare(self, rows: Sequence[Row], baseline_of: Mapping[str, str],
                metrics: Sequence[str], load: PerUnitLoader
                ) -> tuple[list[Comparison], list[str]]:
        """(comparisons of each method with ``baseline_of[method]``, notes for the board)."""

    def describe(self, baseline: str, n_methods: int, unit: str) -> str:
        """The footnote: what was tested, on which unit, how it was corrected."""


def per_seed_values(rows: Sequence[Row], metrics: Sequence[str], load: PerUnitLoader
                    ) -> tuple[dict[str, dict[str, dict[str, Mapping[str, float]]]], list[str]]:
    """``{method: {metric: {seed: {unit: value}}}}`` from the runs' per-unit artifacts, and
    notes naming the rows that have none (they are not tested).

    A metric that is one statistic of the whole run (a global AUC, a perplexity) has no
    per-unit values; when every run of the row logged it and none has units for it, each
    run contributes its logged value as a single unit, which is all a test over training
    runs needs (a per-user test then has one unit and is skipped)."""
    notes: list[str] = []
    out: dict[str, dict[str, dict[str, Mapping[str, float]]]] = {}
    for row in rows:
        loaded = [(r.seed, load(r)) for r in row.runs]
        if any(p is None for _, p in loaded):
            notes.append(f"{row.method}: no per-unit metrics (non-ranking task or old "
                         "run): not tested.")
            continue
        out[row.method] = {}
        for m in metrics:
            if all(m in p for _, p in loaded):
                out[row.method][m] = {seed: p[m] for seed, p in loaded}
            elif all(m not in p and m in r.metrics for (_, p), r in zip(loaded, row.runs)):
                out[row.method][m] = {seed: {"run": r.metrics[m]}
                                      for (seed, _), r in zip(loaded, row.runs)}
    return out, notes


@dataclass
class PairedTest:
    """A paired test of each method against its baseline, Holm over the methods compared
    per metric (see :mod:`harness.significance`). ``unit`` is what one observation is:
    a training run (``seeds``, the default), seeds then units (``bootstrap``), or a unit
    of seed-averaged scores (``users``: the per-user ``student``/``fisher`` tests)."""

    name: str
    unit: str = "seeds"

    def compare(self, rows, baseline_of, metrics, load):
        per_seed, notes = per_seed_values(rows, metrics, load)
        missing = sorted({b for m, b in baseline_of.items() if m in per_seed
                          and b not in per_seed and b in {r.method for r in rows}})
        notes += [f"baseline '{b}' has no per-unit metrics: its comparisons are skipped."
                  for b in missing]
        comps = compare_runs(per_seed, baseline_of, metrics, unit=self.unit,
                             test="student" if self.unit != "users" else self.name)
        few = sorted({c.method for c in comps if c.unit != "users" and c.n_seeds < MIN_SEEDS})
        if few:
            notes.append(f"no significance mark for {', '.join(few)}: fewer than {MIN_SEEDS} "
                         "training seeds shared with the baseline.")
        flat = sorted({f"{c.method} vs {c.baseline}" for c in comps
                       if self.unit == "seeds" and c.unit == "bootstrap"})
        if flat:
            notes.append(f"{', '.join(flat)}: the same difference on every seed (neither arm's "
                         "result depends on the training seed), so tested with the "
                         "hierarchical bootstrap over users instead of over seeds.")
        return comps, notes

    def describe(self, baseline, n_methods, unit):
        if self.unit == "users":
            what = (f"two-sided paired {self.name} test over {unit}, each {unit[:-1]}'s value "
                    "averaged over seeds (ignores training variance)")
        else:
            what = UNIT_LABELS[self.unit]
        return (f"{BETTER}/{WORSE}: significantly better/worse than the baseline '{baseline}' "
                f"({what}; Holm-corrected over the {n_methods} method(s) compared, per "
                f"metric; test: `{self.name}`).")


SIGNIFICANCE_TESTS: dict[str, SignificanceTest] = {
    "seeds": PairedTest("seeds", "seeds"),
    "bootstrap": PairedTest("bootstrap", "bootstrap"),
    "student": PairedTest("student", "users"),
    "fisher": PairedTest("fisher", "users"),
}


@dataclass
class Column:
    """An extra column after the metrics: a header and the text for a row."""

    header: str
    value: Callable[[Row], str]
    #: shown only on a board where some row has a value (not every row "–")
    optional: bool = False


def _run_values(row: Row, metric: str) -> list[float]:
    return [r.metrics[metric] for r in row.runs if metric in r.metrics]


def _mean_text(row: Row, metric: str, digits: int = 0) -> str:
    values = _run_values(row, metric)
    return f"{statistics.fmean(values):,.{digits}f}" if values else "–"


def _epochs_text(row: Row) -> str:
    """best / run / budget epochs (means over seeds, 1-based) for epoch-based training."""
    best, run, budget = (_run_values(row, k) for k in ("best_epoch", "epochs_run", "epoch_budget"))
    if not best or not budget:
        return "–"
    return (f"{statistics.fmean(best) + 1:.0f} / {statistics.fmean(run or budget):.0f} / "
            f"{statistics.fmean(budget):.0f}")


def _num(value: float) -> str:
    return f"{value:g}"


def selected_text(row: Row) -> str:
    """What each run chose on validation: its ``selected_<knob>`` metrics (a range as
    ``selected_<knob>_lo``/``_hi``), with how many runs chose each setting, e.g.
    ``ratio 0.5 (2), ratio 0.7 (1)``."""
    settings: dict[str, int] = {}
    for run in row.runs:
        names = sorted(k for k in run.metrics if k.startswith("selected_"))
        parts = []
        for name in names:
            knob = name[len("selected_"):]
            if knob.endswith("_hi") and f"selected_{knob[:-3]}_lo" in run.metrics:
                continue
            if knob.endswith("_lo") and f"selected_{knob[:-3]}_hi" in run.metrics:
                lo, hi = run.metrics[name], run.metrics[f"selected_{knob[:-3]}_hi"]
                parts.append(f"{knob[:-3]} [{_num(lo)}, {_num(hi)}]")
            else:
                parts.append(f"{knob} {_num(run.metrics[name])}")
        if parts:
            text = " ".join(parts)
            settings[text] = settings.get(text, 0) + 1
    return ", ".join(f"{text} ({n})" for text, n in settings.items()) or "–"


COLUMNS: list[Column] = [
    Column("seeds", lambda row: str(len(row.runs))),
    Column("tuning budget", lambda row: row.budget),
    Column("optimiser steps", lambda row: _mean_text(row, "optimizer_steps")),
    Column("epochs best/run/budget", _epochs_text),
    Column("train s", lambda row: mean_std(_run_values(row, "train_seconds"), 1)),
    Column("chosen on valid (runs)", selected_text, optional=True),
]

#: a row flag: (row, board) -> short text, or None when the row is fine
Flagger = Callable[[Row, Board], Optional[str]]


def still_improving_flag(row: Row, board: Board) -> Optional[str]:
    """Flags an arm any of whose runs had its best validation epoch in the last
    ``patience`` evaluations of its budget (:func:`harness.api.still_improving`)."""
    n = sum(r.metrics.get("still_improving", 0.0) > 0 for r in row.runs)
    return f"still improving in {n}/{len(row.runs)} runs" if n else None


FLAGGERS: list[Flagger] = [still_improving_flag]


@dataclass
class BoardOptions:
    test: str = "seeds"
    split_ids: Optional[Sequence[str]] = None
    baseline: Optional[str] = None  # default: the suite's `baseline:`
    columns: Optional[list[Column]] = None  # default: COLUMNS
    flaggers: Optional[list[Flagger]] = None  # default: FLAGGERS

    def baseline_for(self, suite, dataset_key: str) -> Optional[str]:
        """The board's main baseline (the suite's, or the ``--baseline`` override)."""
        return self.baseline if self.baseline is not None else suite.baseline

    def baseline_of(self, suite) -> dict[str, str]:
        """Method -> the label it is tested against: with a ``--baseline`` override every
        method is tested against it; otherwise a method's own ``baseline:``, else the
        suite's."""
        if self.baseline is not None:
            return {m.key: self.baseline for m in suite.methods if m.key != self.baseline}
        return suite.baseline_of()

    def significance_test(self) -> SignificanceTest:
        if self.test not in SIGNIFICANCE_TESTS:
            raise BenchError(f"unknown significance test '{self.test}'; choose one of "
                             f"{', '.join(SIGNIFICANCE_TESTS)}.")
        return SIGNIFICANCE_TESTS[self.test]


# --- building ----------------------------------------------------------------------------------

def lower_is_better(metrics: Sequence[str], catalogue) -> set[str]:
    out = set()
    for m in metrics:
        base = m.split("@")[0]
        if base in catalogue.metrics and not catalogue.metrics[base].higher_is_better:
            out.add(m)
    return out


def _check_ids(dataset: str, runs: list[RunRecord], attr: str, what: str) -> str:
    ids = {getattr(r, attr) for r in runs}
    if len(ids) > 1:
        detail = "; ".join(sorted(f"{r.method} seed {r.seed}: {getattr(r, attr)}" for r in runs))
        hint = " Rerun the stale cells (bench run --force) or pick one with --split-id." \
            if attr == "split_id" else " Rerun the stale cells with the suite's current metrics."
        raise BenchError(f"dataset '{dataset}': runs on different {what}s cannot share a "
                         f"leaderboard column ({detail}).{hint}")
    return ids.pop()


def seed_stats(values: list[float]) -> tuple[float, float, int]:
    """(mean, sample std (0 for one value), n) over seeds."""
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return statistics.fmean(values), std, len(values)


def build_boards(suite, catalogue, runs: list[RunRecord], load: PerUnitLoader,
                 options: Optional[BoardOptions] = None) -> list[Board]:
    """One board per suite dataset with finished runs. Runs of method labels the suite no
    longer has are left out and named in a note (``bench evaluate`` entries stay)."""
    options = options or BoardOptions()
    test = options.significance_test()
    load = _memoised(load)  # tests and claims read the same per-unit artifacts
    columns = COLUMNS if options.columns is None else options.columns
    flaggers = FLAGGERS if options.flaggers is None else options.flaggers
    if options.split_ids:
        runs = [r for r in runs if r.split_id in options.split_ids]
    metrics = list(suite.metrics)
    lower = lower_is_better(metrics, catalogue)
    order = [m.key for m in suite.methods]
    boards = []
    for entry in suite.datasets:
        ds_runs = [r for r in runs if r.dataset == entry.key]
        stale = sorted({r.method for r in ds_runs if r.method not in order and not r.external})
        ds_runs = [r for r in ds_runs if r.method in order or r.external]
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
                    row.stats[m] = seed_stats(vals)
            rows.append(row)
        best: dict[str, set[str]] = {}
        for m in metrics:
            scored = [(r.stats[m][0], r.method) for r in rows if m in r.stats]
            if scored:
                target = (min if m in lower else max)(v for v, _ in scored)
                best[m] = {name for v, name in scored if abs(v - target) <= 1e-12}
        task = ds_runs[-1].tags.get("bench.task", "topk")
        baseline = options.baseline_for(suite, entry.key)
        board = Board(entry.key, split_id, protocol_id, rows, best, {}, [], lower, baseline,
                      task, test.name, [c.header for c in columns])
        board.baseline_of = {m: b for m, b in options.baseline_of(suite).items()
                             if m in methods and b in methods}
        if baseline in methods:  # a bench-evaluate entry is tested against the main baseline
            board.baseline_of.update({m: baseline for m in methods
                                      if m not in board.baseline_of and m != baseline
                                      and m not in order})
        board.comparisons, board.notes = _significance(board, test, metrics, load)
        claims = [c for c in getattr(suite, "claims", []) if c.dataset in (None, entry.key)]
        if claims:
            per_seed, _ = per_seed_values(rows, sorted({c.metric for c in claims}), load)
            flagged = {r.method: sum(x.metrics.get("still_improving", 0.0) > 0 for x in r.runs)
                       for r in rows}
            board.claims = judge(claims, per_seed, flagged)
        missing = [m for m in order if m not in methods]
        if missing:
            board.notes.append(f"no finished runs yet for: {', '.join(missing)}.")
        if stale:
            board.notes.append(f"left out: runs of {', '.join(stale)}, no longer a method "
                               "of this suite.")
        for row in rows:
            row.columns = {c.header: c.value(row) for c in columns}
            row.flags = [f for f in (flag(row, board) for flag in flaggers) if f]
        empty = {c.header for c in columns
                 if c.optional and all(row.columns[c.header] in ("", "–") for row in rows)}
        board.column_names = [c for c in board.column_names if c not in empty]
        for row in rows:
            row.columns = {h: v for h, v in row.columns.items() if h not in empty}
        boards.append(board)
    if not boards:
        raise BenchError(f"no finished cell runs of suite '{suite.suite}' for its datasets "
                         f"({', '.join(d.key for d in suite.datasets)}); run `bench run` first "
                         "(with the same --tracking-uri).")
    return boards


def _memoised(load: PerUnitLoader) -> PerUnitLoader:
    cache: dict[str, Optional[Mapping[str, Mapping[str, float]]]] = {}

    def cached(run: RunRecord):
        if run.run_id not in cache:
            cache[run.run_id] = load(run)
        return cache[run.run_id]

    return cached


def _significance(board: Board, test: SignificanceTest, metrics: list[str],
                  load: PerUnitLoader) -> tuple[dict, list[str]]:
    baseline = board.baseline
    if not board.baseline_of:
        if not baseline:
            return {}, ["no `baseline:` in the suite: significance tests skipped."]
        return {}, [f"baseline '{baseline}' has no finished runs: significance skipped."]
    comps, notes = test.compare(board.rows, board.baseline_of, metrics, load)
    if comps:
        others = sorted({c.baseline for c in comps} - {baseline})
        label = baseline or ", ".join(others)
        if baseline and others:
            label += f" (per-group baselines: {', '.join(others)})"
        notes.append(test.describe(label, len({c.method for c in comps}), board.unit))
    return {(c.method, c.metric): c for c in comps}, notes
