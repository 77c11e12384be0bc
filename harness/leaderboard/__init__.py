"""Leaderboards from the MLflow store: markdown, a self-contained HTML page and a PNG plot.

Read-only over MLflow: every number comes from finished cell runs the runner (or
``bench evaluate``) logged, so a leaderboard can be rebuilt from any store at any time.
Rows are methods, columns metrics, one table per dataset. A column only mixes runs with
the same split id and protocol id; anything else is refused rather than averaged.

Three modules, one job each: :mod:`.runs` reads finished runs (through
:mod:`harness.tracking`), :mod:`.aggregate` turns them into boards (statistics,
significance, columns, flags), :mod:`.render` formats boards; :mod:`.build` ties them to
``bench leaderboard``'s files.
"""
from .aggregate import (BETTER, COLUMNS, FLAGGERS, SIGNIFICANCE_TESTS, WORSE, Board,
                        BoardOptions, Column, Row, build_boards)
from .build import build_leaderboard, confined, load_boards, notes_name, safe_stem
from .render import cell_text, md_escape, render_html, render_markdown, render_png
from .runs import RunRecord, collect_runs, experiment_runs, load_per_user, mean_std

_cell_text = cell_text  # the name older tests and scripts use

__all__ = ["BETTER", "WORSE", "Board", "BoardOptions", "Column", "COLUMNS", "FLAGGERS", "Row",
           "RunRecord", "SIGNIFICANCE_TESTS", "build_boards", "build_leaderboard", "cell_text",
           "collect_runs", "confined", "experiment_runs", "load_boards", "load_per_user",
           "md_escape", "mean_std", "notes_name", "render_html", "render_markdown",
           "render_png", "safe_stem"]
