"""Plugins import only the harness's public surface, as a third-party plugin would.

Allowed: ``harness.api``, ``harness.hookspecs`` and the shared building blocks
``harness.blocks``, ``harness.llm``, ``harness.tasks`` (and their submodules). Everything
else in ``harness`` is implementation that may change without notice; a plugin that needs
something from it asks for it to be made public (in ``harness.api``) instead.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PUBLIC = ("harness.api", "harness.hookspecs", "harness.blocks", "harness.llm", "harness.tasks")
PLUGIN_DIRS = sorted(p for p in (ROOT / "plugins").iterdir()
                     if p.is_dir() and (p / "__init__.py").exists())


def harness_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every ``harness`` import in a file, at any depth (lazy ones too)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "harness"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "harness":  # from harness import x: x is a module
                out += [(node.lineno, f"harness.{a.name}") for a in node.names]
            elif node.module.split(".")[0] == "harness":
                out.append((node.lineno, node.module))
    return out


def is_public(module: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in PUBLIC)


def test_every_builtin_plugin_is_checked():
    names = {p.name for p in PLUGIN_DIRS}
    assert {"baselines", "tta4sr", "hnlmrec", "causaldiffrec", "trpa"} <= names


@pytest.mark.parametrize("plugin", PLUGIN_DIRS, ids=lambda p: p.name)
def test_plugin_imports_only_the_public_surface(plugin: Path):
    bad = [f"{f.relative_to(ROOT)}:{line}: {module}"
           for f in sorted(plugin.rglob("*.py")) for line, module in harness_imports(f)
           if not is_public(module)]
    assert not bad, ("plugins may import only " + ", ".join(PUBLIC) + "; found:\n  "
                     + "\n  ".join(bad))


def test_the_check_sees_lazy_and_aliased_imports(tmp_path: Path):
    src = tmp_path / "m.py"
    src.write_text("def f():\n    from harness.scoring import x\n    import harness.runner as r\n"
                   "from harness import context\nfrom harness.api import ok\n")
    found = [m for _, m in harness_imports(src)]
    assert sorted(m for m in found if not is_public(m)) == ["harness.context", "harness.runner",
                                                            "harness.scoring"]
