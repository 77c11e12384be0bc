"""`bench validate`'s checks of the plugin parts a suite names, beyond the suite schema.

Why: each mistake here used to pass validate and then fail cell by cell at run time (an
unknown sampler, ``sampler_params`` a sampler does not take, a dataset param the loader
does not know, a missing data folder, a topk metric on a reasoning dataset, ``accuracy@10``,
a method label with a space that breaks ``run.trec``). Each check returns problem lines
``<file>: <key path>: <what is wrong>. <closest names of that key's own kind>``.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from .api import BenchError
from .registry import Catalogue, closest
from .scoring import MetricName


def _known(name: str, known: list[str] | dict, kind: str) -> str:
    hint = closest(name, known)
    return hint or f" Known {kind}: {', '.join(sorted(known)) or 'none'}."


def model_problems(model: type[BaseModel], values: dict, where: str,
                   hidden: tuple[str, ...] = ()) -> tuple[Any, list[str]]:
    """``(parsed or None, problem lines)`` of ``values`` against a params model; unknown
    keys get the closest known ones (``hidden`` keys are not offered)."""
    try:
        return model.model_validate(values), []
    except ValidationError as exc:
        known = [f for f in model.model_fields if f not in hidden]
        lines = []
        for err in exc.errors():
            loc = ".".join(map(str, err["loc"]))
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown key." + _known(str(err["loc"][-1]), known, "keys")
            lines.append(f"{where}{'.' + loc if loc else ''}: {msg}".rstrip(".") + ".")
        return None, lines


def dataset_problems(entry: Any, index: int, spec: Any, task: str, source: str,
                     registry: Any = None) -> list[str]:
    """A dataset's ``params`` against its loader's params model, and that a ``path`` exists.

    Data the user points to with a ``path`` is also read once (through the loader, as a
    run would), so a malformed file is reported here, naming the file, line and column,
    instead of failing every cell of the dataset later."""
    if spec.params is None:
        return []
    params = dict(entry.params)
    if task == "signed":
        params.pop("sign_offset", None)  # the harness's like/dislike threshold, not the loader's
    where = f"{source}: datasets[{index}].params"
    parsed, problems = model_problems(spec.params, params, where)
    path = getattr(parsed, "path", None)
    if not isinstance(path, str):
        return problems
    if not Path(path).expanduser().exists():
        problems.append(f"{where}.path: {path} does not exist (dataset '{entry.name}' is read "
                        "from there).")
    elif registry is not None and not problems:
        try:
            registry.pm.hook.bench_load_dataset(name=entry.name, params=params, ctx=None)
        except BenchError as exc:
            problems.append(f"{where}.path: {' '.join(str(exc).split())}")
    return problems


def sampler_problems(params: dict, index: int, samplers: dict, source: str) -> list[str]:
    """A method's ``sampler`` is a registered sampler, and its ``sampler_params`` fit that
    sampler's params model (the harness adds ``n`` from ``n_negatives`` itself)."""
    name = params.get("sampler")
    if not isinstance(name, str):
        return []
    where = f"{source}: methods[{index}].params"
    if name not in samplers:
        return [f"{where}.sampler: unknown sampler '{name}'.{_known(name, samplers, 'samplers')}"]
    sampler_params = params.get("sampler_params")
    model = samplers[name].params
    if model is None or not isinstance(sampler_params, dict):
        return []
    if "n" in sampler_params:
        return [f"{where}.sampler_params.n: the harness sets n (negatives per pair) from the "
                f"method's n_negatives; write `n_negatives: {sampler_params['n']}` instead."]
    values = {**sampler_params, "n": params.get("n_negatives", 1)}
    return model_problems(model, values, f"{where}.sampler_params", hidden=("n",))[1]


def metric_problems(metrics: list[str], tasks: dict[str, str], cat: Catalogue,
                    source: str) -> list[str]:
    """Every metric is defined for every dataset's task, and only metrics that take a
    cutoff carry one."""
    problems = []
    for m in metrics:
        try:
            name = MetricName.parse(m)
        except Exception:
            continue  # reported by the name check
        spec = cat.metrics.get(name.base)
        if spec is None:
            continue
        if name.k is not None and not spec.needs_cutoff and not spec.ranx:
            problems.append(f"{source}: metrics: '{m}': '{name.base}' takes no cutoff; write "
                            f"'{name.base}'.")
        for dataset, task in tasks.items():
            if task not in spec.tasks:
                fits = [n for n, s in cat.metrics.items() if task in s.tasks]
                problems.append(f"{source}: metrics: '{m}' is not defined for dataset "
                                f"'{dataset}' (a '{task}' task; '{name.base}' is for "
                                f"{', '.join(spec.tasks)}).{_known(name.base, fits, 'metrics for ' + repr(task))}")
    return problems


def label_problems(methods: list[Any], source: str) -> list[str]:
    """Method labels go into MLflow tags, run files and board rows: no control characters
    (tab, newline, ...) and no leading/trailing space. Inner spaces are fine: run files
    percent-encode them (:func:`harness.scoring.trec_field`)."""
    problems = []
    for i, m in enumerate(methods):
        if re.search(r"[\x00-\x1f\x7f]", m.key) or m.key != m.key.strip() or not m.key:
            field = "label" if m.label else "name"
            fixed = re.sub(r"[\s\x00-\x1f\x7f]+", " ", m.key).strip() or "method"
            problems.append(f"{source}: methods[{i}].{field}: {m.key!r} has a control character "
                            f"(tab, newline, ...) or surrounding spaces; e.g. {fixed!r}.")
    return problems
