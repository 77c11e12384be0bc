"""Reading files a user hands to bench (suites, run files): text or a one-line error.

Why: a suite path that is a folder, a binary file or text in another encoding used to end
in a Python traceback, and a ~1 KB YAML alias bomb passed ``bench validate`` and then
exhausted memory when the suite was expanded. Everything a user passes in goes through
here first, so each of those is one :class:`~harness.api.BenchError` line (exit 2).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Union

import yaml

from .api import BenchError

#: a suite or run file larger than this is refused (suites are a few KB; run files of
#: ml-100k-sized data are a few MB)
MAX_BYTES = 512 * 1024 * 1024
#: YAML aliases may repeat structures, but the document they expand to stays this small
MAX_YAML_NODES = 200_000


def read_text(path: Union[str, Path], what: str = "file", error: type[BenchError] = BenchError,
              max_bytes: int = MAX_BYTES) -> str:
    """The UTF-8 text of ``path``; a missing path, a folder, a binary or non-UTF-8 file
    or an oversized one raises ``error`` with one line naming the path."""
    path = Path(path)
    if not path.exists():
        raise error(f"{path}: no such {what}.")
    if path.is_dir():
        raise error(f"{path}: is a folder, not a {what}.")
    if not path.is_file():
        raise error(f"{path}: is not a regular file (a {what} is a text file).")
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise error(f"{path}: {size} bytes is too large for a {what} "
                        f"(at most {max_bytes}).")
        data = path.read_bytes()
    except OSError as exc:
        raise error(f"{path}: cannot read the {what}: {exc.strerror or exc}.") from None
    if b"\x00" in data[:65536]:
        raise error(f"{path}: is a binary file, not a {what} (UTF-8 text).")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise error(f"{path}: is not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}); "
                    f"save the {what} as UTF-8.") from None


def load_yaml(text: str, source: str, error: type[BenchError] = BenchError,
              max_nodes: int = MAX_YAML_NODES) -> Any:
    """``yaml.safe_load`` (no python tags) whose result, with every alias expanded, has at
    most ``max_nodes`` nodes; recursive aliases are refused."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise error(f"{source}{where}: not valid safe YAML: {problem}. Suites are read "
                    "with the safe loader; python tags such as !!python/object are "
                    "refused.") from None
    except RecursionError:
        raise error(f"{source}: the YAML is nested too deeply.") from None
    _check_expansion(data, source, error, max_nodes)
    return data


def _check_expansion(data: Any, source: str, error: type[BenchError], max_nodes: int) -> None:
    """Count the nodes of ``data`` as if every shared (aliased) part were copied, in time
    linear in the *distinct* nodes; stop as soon as the count passes ``max_nodes``."""
    sizes: dict[int, int] = {}
    open_ids: set[int] = set()

    def size(node: Any, depth: int = 0) -> int:
        if not isinstance(node, (dict, list)):
            return 1
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_ids:
            raise error(f"{source}: a YAML alias refers to a node that contains it (a "
                        "recursive structure); suites must be finite trees.")
        if depth > 200:
            raise error(f"{source}: the YAML is nested too deeply.")
        open_ids.add(key)
        children = [*node.keys(), *node.values()] if isinstance(node, dict) else node
        total = 1
        for child in children:
            total += size(child, depth + 1)
            if total > max_nodes:
                raise error(f"{source}: the YAML expands to more than {max_nodes} nodes once "
                            "its aliases (*name) are resolved; refused (an alias bomb?). "
                            "Repeat less through aliases.")
        open_ids.discard(key)
        sizes[key] = total
        return total

    size(data)
