"""Grid control: suites that extend other suites, ``--set`` overrides and ``--only`` filters.

All three act on the suite *before or after* validation in the same way a hand-edited file
would: ``extends:`` and ``--set`` change the raw YAML mapping, which is then validated
like any file (so a wrong key or value fails exactly as it would in the file, and an
override that changes a cell's resolved configuration changes its hash); ``--only``
keeps a subset of the validated cells.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

import yaml

from .api import BenchError
from .registry import closest

MAX_EXTENDS_DEPTH = 8
KEYED_LISTS = ("methods", "datasets")  # lists whose entries are addressed by label or name


class GridError(BenchError):
    """A bad ``extends:``, ``--set`` or ``--only``: nothing has run (exit status 2)."""


def entry_key(entry: Any) -> Optional[str]:
    """A method or dataset entry's key, as ``MethodEntry.key``: its label, else its name."""
    if isinstance(entry, dict):
        key = entry.get("label") or entry.get("name")
        return None if key is None else str(key)
    return None


# --- extends ----------------------------------------------------------------------------------

def _merge(base: Any, over: Any) -> Any:
    """``over`` on top of ``base``: mappings merge key by key, anything else is replaced."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = _merge(base[k], v) if k in base else v
        return out
    return over


def _merge_entries(base: list, over: dict, where: str) -> list:
    """A keyed override of a methods/datasets list: ``{key: {...}}`` merges into the entry
    with that key, ``{key: null}`` drops it, an unknown key adds an entry (``name``
    defaults to the key, which otherwise becomes its ``label``)."""
    keys = [entry_key(e) for e in base]
    out = [copy.deepcopy(e) for e in base]
    for key, change in over.items():
        key = str(key)
        if key in keys:
            i = keys.index(key)
            if change is None:
                out[i] = None
            elif isinstance(change, dict):
                out[i] = _merge(out[i], change)
            else:
                raise GridError(f"{where}.{key}: expected a mapping of overrides or null (to "
                                f"drop it), got {change!r}.")
        elif change is None:
            raise GridError(f"{where}.{key}: cannot drop '{key}': the extended suite has no "
                            f"such entry.{closest(key, [k for k in keys if k])}")
        elif isinstance(change, dict):
            entry = {"name": key, **change}
            if entry["name"] != key and not entry.get("label"):
                entry["label"] = key  # the mapping key is the entry's key
            out.append(entry)
            keys.append(key)
        else:
            raise GridError(f"{where}.{key}: expected a mapping, got {change!r}.")
    return [e for e in out if e is not None]


def resolve_extends(raw: Any, source: Path, read: Callable[[Path], Any],
                    _seen: Sequence[Path] = ()) -> Any:
    """The suite mapping with its ``extends:`` chain applied (the extended file's path is
    relative to the extending file). In an extending suite, ``methods:``/``datasets:`` may
    be a mapping keyed by label/name (merge, ``null`` drops, new keys add); as a list
    they replace the parent's list. Every other mapping merges key by key; other values
    replace."""
    if not isinstance(raw, dict) or "extends" not in raw:
        return raw
    raw = dict(raw)
    target = raw.pop("extends")
    if not isinstance(target, str) or not target.strip():
        raise GridError(f"{source}: extends: expected the path of another suite file, got "
                        f"{target!r}.")
    path = (Path(source).parent / target)
    seen = [*_seen, Path(source).resolve()]
    if path.resolve() in seen:
        chain = " -> ".join(str(p) for p in [*seen, path.resolve()])
        raise GridError(f"{source}: extends: a cycle ({chain}).")
    if len(seen) > MAX_EXTENDS_DEPTH:
        raise GridError(f"{source}: extends: more than {MAX_EXTENDS_DEPTH} levels.")
    if not path.is_file():
        raise GridError(f"{source}: extends: no such suite file {path}.")
    parent = resolve_extends(read(path), path, read, seen)
    if not isinstance(parent, dict):
        raise GridError(f"{path}: a suite must be a YAML mapping (extended by {source}).")
    out = dict(parent)
    for key, value in raw.items():
        if key in KEYED_LISTS and isinstance(value, dict):
            base = parent.get(key) or []
            if not isinstance(base, list):
                raise GridError(f"{path}: {key}: expected a list.")
            out[key] = _merge_entries(base, value, f"{source}: {key}")
        elif key in parent:
            out[key] = _merge(parent[key], value)
        else:
            out[key] = value
    return out


# --- --set --------------------------------------------------------------------------------------

def _parse_value(text: str, where: str) -> Any:
    try:
        return yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        raise GridError(f"{where}: '{text}' is not a YAML value (quote strings with spaces or "
                        "colons).") from None


def apply_set(raw: dict, assignment: str) -> dict:
    """``a.b.c=value`` on the raw suite (a copy). In ``methods``/``datasets`` the segment
    after the list names an entry by label or name (or its index); the value is YAML
    (``0.01``, ``[0, 1]``, ``null``, ``{a: 1}``)."""
    where = f"--set {assignment}"
    if "=" not in assignment:
        raise GridError(f"{where}: expected KEY.PATH=VALUE, e.g. methods.bpr_mf.params.lr=0.01.")
    path_text, value_text = assignment.split("=", 1)
    parts = [p for p in path_text.strip().split(".")]
    if not path_text.strip() or any(not p for p in parts):
        raise GridError(f"{where}: empty key in '{path_text}'.")
    value = _parse_value(value_text, where)
    raw = copy.deepcopy(raw)
    node: Any = raw
    walked: list[str] = []
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            keys = [entry_key(e) for e in node]
            if part in keys:
                idx = keys.index(part)
            elif part.isdigit() and int(part) < len(node):
                idx = int(part)
            else:
                raise GridError(f"{where}: {'.'.join(walked)} has no entry '{part}'."
                                f"{closest(part, [k for k in keys if k])} Known: "
                                f"{', '.join(k for k in keys if k) or 'none'}.")
            if last:
                node[idx] = value
            else:
                node = node[idx]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            else:
                if node.get(part) is None:
                    node[part] = {}
                node = node[part]
        else:
            raise GridError(f"{where}: '{'.'.join(walked)}' is a value ({node!r}), not a mapping "
                            "or a list.")
        walked.append(part)
    return raw


def apply_sets(raw: Any, assignments: Iterable[str]) -> Any:
    for a in assignments:
        if not isinstance(raw, dict):
            break  # the validator names the real problem
        raw = apply_set(raw, a)
    return raw


# --- --only ------------------------------------------------------------------------------------

ONLY_KEYS = ("method", "dataset", "seed")


def parse_only(filters: Iterable[str]) -> dict[str, set[str]]:
    """``--only method=a,b,seed=0 --only dataset=d`` -> {method: {a, b}, seed: {0}, dataset: {d}}.

    A bare value after a comma belongs to the key before it; values of one key are
    alternatives, different keys must all match."""
    out: dict[str, set[str]] = {}
    for text in filters:
        key = None
        for piece in text.split(","):
            piece = piece.strip()
            if not piece:
                continue
            if "=" in piece:
                key, value = (s.strip() for s in piece.split("=", 1))
                if key not in ONLY_KEYS:
                    raise GridError(f"--only {text}: unknown key '{key}'.{closest(key, ONLY_KEYS)} "
                                    f"Keys: {', '.join(ONLY_KEYS)}.")
            elif key is None:
                raise GridError(f"--only {text}: expected KEY=VALUE, e.g. method=bpr_mf,seed=0.")
            else:
                value = piece
            if not value:
                raise GridError(f"--only {text}: empty value for '{key}'.")
            out.setdefault(key, set()).add(value)
    return out


def select_cells(cells: list, filters: Iterable[str], suite: Any) -> list:
    """The cells matching every ``--only`` key; a value the suite does not have is an error
    (with the closest names), so a typo never silently selects nothing."""
    wanted = parse_only(filters)
    if not wanted:
        return cells
    known = {"method": {m.key for m in suite.methods} | {m.name for m in suite.methods},
             "dataset": {d.key for d in suite.datasets} | {d.name for d in suite.datasets},
             "seed": {str(s) for s in suite.seeds}}
    for key, values in wanted.items():
        for v in sorted(values):
            if v not in known[key]:
                raise GridError(f"--only {key}={v}: the suite has no {key} '{v}'."
                                f"{closest(v, sorted(known[key]))} Known: "
                                f"{', '.join(sorted(known[key]))}.")

    def keep(cell) -> bool:
        fields = {"method": {cell.method.key, cell.method.name},
                  "dataset": {cell.dataset.key, cell.dataset.name}, "seed": {str(cell.seed)}}
        return all(fields[k] & v for k, v in wanted.items())

    chosen = [c for c in cells if keep(c)]
    if not chosen:
        raise GridError(f"--only {' '.join(filters)}: no cell of the suite matches every filter.")
    return chosen
