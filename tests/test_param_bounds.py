"""Every numeric parameter of every installed method, sampler and dataset is bounded, so
`bench validate` refuses `epochs: 0`, `lr: 1e30`, `dim: -1`, `batch_size: 0`,
`eval_every: 0`, a NaN learning rate or seed 2**64 before anything runs (issue 22 item 4).

Use the annotated types of :mod:`harness.api` (``PositiveInt``, ``NonNegativeInt``,
``Seed``, ``Rate``, ``PositiveFloat``, ``NonNegativeFloat``, ``Fraction``,
``FiniteFloat``) in a params model and these tests hold.
"""
from __future__ import annotations

import re
import types
import typing

import annotated_types as at
import pytest
from pydantic import BaseModel

from harness.registry import Registry

SEED_MAX = 2**32 - 1
AT_LEAST_ONE = re.compile(r"(^|_)(epochs|dim|batch_size)$")
LEARNING_RATE = re.compile(r"(^|_)lr\d*$")
SEED = re.compile(r"(^|_)seed$")


def _numeric(annotation) -> type | None:
    """int or float when the field holds a number (Optional[...] unwrapped), else None."""
    if annotation in (int, float):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return _numeric(args[0])
    return None


def _nested(annotation) -> list[type[BaseModel]]:
    out = []
    for a in (annotation, *typing.get_args(annotation)):
        if isinstance(a, type) and issubclass(a, BaseModel):
            out.append(a)
    return out


def _bounds(info) -> dict[str, float]:
    b = {}
    for m in info.metadata:
        for name in ("ge", "gt", "le", "lt"):
            if isinstance(m, getattr(at, name.capitalize())):
                b[name] = getattr(m, name)
        if getattr(m, "allow_inf_nan", None) is False:
            b["finite"] = True
    return b


def problems(model: type[BaseModel], owner: str, seen: set | None = None) -> list[str]:
    seen = set() if seen is None else seen
    if model in seen:
        return []
    seen.add(model)
    out = []
    finite_model = model.model_config.get("allow_inf_nan") is False
    for name, info in model.model_fields.items():
        for sub in _nested(info.annotation):
            out += problems(sub, f"{owner}.{name}", seen)
        kind = _numeric(info.annotation)
        if kind is None:
            continue
        b = _bounds(info)
        where = f"{owner}.{name}"
        lower = b.get("ge", b.get("gt"))
        if not ({"ge", "gt", "le", "lt"} & set(b)):
            out.append(f"{where}: unbounded {kind.__name__}")
        if kind is float and not (finite_model or b.get("finite")):
            out.append(f"{where}: float that accepts NaN/inf")
        if AT_LEAST_ONE.search(name) and (lower is None or lower < 1 or
                                          ("gt" in b and b["gt"] < 0)):
            out.append(f"{where}: must be >= 1 (PositiveInt)")
        if LEARNING_RATE.search(name) and not ("gt" in b and b["gt"] >= 0 and "le" in b):
            out.append(f"{where}: a learning rate must be finite, > 0 and bounded above (Rate)")
        if SEED.search(name) and not (b.get("ge") == 0 and b.get("le") == SEED_MAX):
            out.append(f"{where}: a seed must lie in 0..2**32-1 (Seed)")
    return out


@pytest.fixture(scope="module")
def builtin():
    """(catalogue, is_builtin(kind, name)): the parts bench itself ships (its core and the
    plugins of the ``bench`` distribution), not whatever else is installed."""
    registry = Registry()
    ours = {row["name"] for row in registry.plugins_info()
            if row["distribution"] in ("bench", "bench (core)")}
    cat = registry.catalogue
    return cat, lambda kind, name: cat.owners.get((kind, name)) in ours


def test_every_builtin_method_param_is_bounded(builtin):
    cat, ours = builtin
    found = [p for name, spec in sorted(cat.methods.items()) if ours("method", name)
             for p in problems(spec.params, f"method {name}")]
    assert not found, "\n".join(found)
    assert sum(ours("method", n) for n in cat.methods) >= 20  # the built-ins were seen


def test_every_builtin_sampler_and_dataset_param_is_bounded(builtin):
    cat, ours = builtin
    found = []
    for kind, table in (("sampler", cat.samplers), ("dataset", cat.datasets)):
        for name, spec in sorted(table.items()):
            if spec.params is not None and ours(kind, name):
                found += problems(spec.params, f"{kind} {name}")
    assert not found, "\n".join(found)


def test_the_example_plugin_bounds_its_params():
    from pathlib import Path
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples" / "bench-userknn"))
    try:
        import bench_userknn
    finally:
        sys.path.pop(0)
    assert not problems(bench_userknn.UserKNNParams, "method userknn (example)")


def test_the_checker_catches_unbounded_params():
    from pydantic import Field

    from harness.api import Params

    class Loose(Params):
        epochs: int = 5
        lr: float = Field(1e-3, gt=0)
        seed: int = 0

    found = problems(Loose, "m")
    assert any("m.epochs" in p for p in found) and any("m.lr" in p for p in found)
    assert any("m.seed" in p for p in found)
