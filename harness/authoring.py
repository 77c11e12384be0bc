"""The plugin author's kit behind ``bench describe`` and ``bench new-plugin``.

``describe`` reads the catalogue the registration hooks built, so what it prints is what
``bench validate`` checks against: every parameter with its type, default, bounds and
doc. ``new-plugin`` renders a cookiecutter template shipped inside the package
(``harness/templates/plugin``): an installable distribution with its ``bench`` entry
point, a method, a suite and tests that use :mod:`harness.testing`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from pydantic import BaseModel

from .api import BenchError

TEMPLATE = Path(__file__).with_name("templates") / "plugin"
KINDS = ("method", "sampler", "dataset", "metric", "split", "augmenter")
NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


@dataclass
class ParamDoc:
    name: str
    type: str
    default: str
    doc: str


@dataclass
class PartDoc:
    kind: str
    name: str
    plugin: str
    description: str
    facts: dict[str, str] = field(default_factory=dict)
    params: list[ParamDoc] = field(default_factory=list)


def _type_name(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) if isinstance(annotation, type) else None
    text = text or str(annotation)
    return re.sub(r"\btyping\.|\bpydantic\.[\w.]*\.|<class '|'>", "", text)


def _bounds(info: Any) -> str:
    out = []
    for meta in info.metadata:
        for attr, sym in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            value = getattr(meta, attr, None)
            if value is not None:
                out.append(f"{sym} {value}")
    return ", ".join(out)


def param_docs(model: Optional[type[BaseModel]]) -> list[ParamDoc]:
    """One row per field of a params model, keyed as a suite writes it (the alias)."""
    if model is None:
        return []
    rows = []
    for name, info in model.model_fields.items():
        if info.is_required():
            default = "(required)"
        elif info.default_factory is not None:
            default = repr(info.default_factory())
        else:
            default = repr(info.default)
        doc = " ".join(filter(None, [info.description or "", _bounds(info) and f"[{_bounds(info)}]"]))
        rows.append(ParamDoc(info.alias or name, _type_name(info.annotation), default, doc))
    return rows


def describe(registry: Any, name: str) -> list[PartDoc]:
    """Every plugin part called ``name`` (a method and a sampler may share a name)."""
    cat = registry.catalogue
    tables = {"method": cat.methods, "sampler": cat.samplers, "dataset": cat.datasets,
              "metric": cat.metrics, "split": cat.splits, "augmenter": cat.augmenters}
    out = []
    for kind, table in tables.items():
        spec = table.get(name)
        if spec is None:
            continue
        doc = PartDoc(kind, name, registry.part_version(kind, name), spec.description or "")
        if getattr(spec, "tasks", None):
            doc.facts["tasks"] = ", ".join(spec.tasks)
        if kind == "dataset":
            doc.facts["default task"] = spec.default_task
        if kind == "sampler":
            if spec.requires:
                doc.facts["needs a model with"] = ", ".join(spec.requires)
            doc.facts["note"] = ("the harness also passes `n` (negatives per pair, from the "
                                 "method's n_negatives); do not set it in sampler_params")
        if kind == "metric":
            doc.facts["usage"] = f"{name}@K" if spec.needs_cutoff else name
            doc.facts["better"] = "higher" if spec.higher_is_better else "lower"
            doc.facts["computed by"] = "ranx" if spec.ranx else "the plugin"
        if kind == "augmenter" and spec.requires:
            doc.facts["needs a model with"] = ", ".join(spec.requires)
        doc.params = param_docs(getattr(spec, "params", None))
        if kind == "split":
            doc.params = _signature_docs(spec.split)
        out.append(doc)
    if not out:
        from .registry import closest

        known = sorted(set().union(*tables.values()))
        raise BenchError(f"no method, sampler, dataset, metric, split or augmenter is called "
                         f"'{name}'.{closest(name, known)} See `bench ls methods` (or datasets, "
                         "metrics, samplers).")
    return out


def _signature_docs(fn: Any) -> list[ParamDoc]:
    """A split's options, from its signature (the first argument is the events)."""
    import inspect

    rows = []
    for p in list(inspect.signature(fn).parameters.values())[1:]:
        if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            continue
        default = "(required)" if p.default is p.empty else repr(p.default)
        kind = "" if p.annotation is p.empty else _type_name(p.annotation)
        rows.append(ParamDoc(p.name, kind, default, ""))
    return rows


def new_plugin(name: str, output_dir: Path = Path("."), description: str = "") -> Path:
    """Render the plugin template as ``output_dir/NAME``; returns that folder."""
    from cookiecutter.main import cookiecutter

    if not NAME_RE.match(name):
        raise BenchError(f"plugin name '{name}': use letters, digits, '-' and '_', starting "
                         "with a letter (e.g. 'my-method').")
    target = Path(output_dir) / name
    if target.exists():
        raise BenchError(f"{target}: already exists; choose another name or folder.")
    context = {"name": name}
    if description:
        context["description"] = description
    out = cookiecutter(str(TEMPLATE), no_input=True, extra_context=context,
                       output_dir=str(output_dir))
    return Path(out)
