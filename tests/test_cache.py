"""harness.cache: entries are content-keyed, written atomically and verified on read; a
tampered, truncated or planted entry is discarded and rebuilt (one warning line), never
trusted and never executed (issue 22 items 1 and 2)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.testing import tiny_suite
from harness import cache
from harness.runner import run_suite
from harness.suite import validate_suite


def _entry(root: Path, calls: list, payload: str = "hello"):
    def build(folder: Path) -> str:
        calls.append("build")
        (folder / "data.txt").write_text(payload)
        return payload

    def load(folder: Path) -> str:
        calls.append("load")
        return (folder / "data.txt").read_text()

    return cache.get_or_build(root, "demo", {"x": 1}, build, load)


def _warnings(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]


def test_entry_is_built_once_then_read_back(tmp_path, capsys):
    calls: list = []
    value, folder, hit = _entry(tmp_path, calls)
    assert (value, hit, calls) == ("hello", False, ["build"])
    manifest = json.loads((folder / cache.MANIFEST).read_text())
    assert manifest["inputs"] == {"x": 1} and set(manifest["files"]) == {"data.txt"}
    assert folder.parent == tmp_path / "demo" and folder.name == cache.content_key({"x": 1})
    value, _, hit = _entry(tmp_path, calls)
    assert (value, hit, calls[-1]) == ("hello", True, "load")
    assert not _warnings(capsys)
    # nothing but the entry is left behind (no temporary folders)
    assert [p.name for p in (tmp_path / "demo").iterdir()] == [folder.name]


@pytest.mark.parametrize("damage", ["edit", "truncate", "empty", "drop_manifest",
                                    "garble_manifest", "other_inputs", "extra_file"])
def test_damaged_entry_is_rebuilt_with_one_warning_naming_it(tmp_path, capsys, damage):
    calls: list = []
    _, folder, _ = _entry(tmp_path, calls)
    data, manifest = folder / "data.txt", folder / cache.MANIFEST
    if damage == "edit":
        data.write_text("HELLO")
    elif damage == "truncate":
        data.write_text("he")
    elif damage == "empty":
        data.write_bytes(b"")
    elif damage == "drop_manifest":
        manifest.unlink()
    elif damage == "garble_manifest":
        manifest.write_bytes(b"\x00\xff garbage")
    elif damage == "other_inputs":
        m = json.loads(manifest.read_text())
        m["inputs"] = {"x": 2}
        manifest.write_text(json.dumps(m))
    elif damage == "extra_file":
        (folder / "planted.pkl").write_bytes(b"x")
    calls.clear()
    value, _, hit = _entry(tmp_path, calls)
    assert (value, hit, calls) == ("hello", False, ["build"])
    lines = _warnings(capsys)
    assert len(lines) == 1 and str(folder) in lines[0] and "rebuilt" in lines[0]
    # the rebuilt entry is good again
    assert _entry(tmp_path, calls)[2] is True and not _warnings(capsys)


def test_entry_whose_loader_fails_is_rebuilt(tmp_path, capsys):
    def build(folder):
        (folder / "x.npz").write_bytes(b"not a zip")  # hashes fine, loads badly
        return 1

    def load(folder):
        np.load(folder / "x.npz", allow_pickle=False)

    cache.get_or_build(tmp_path, "demo", {}, build, load)
    value, _, hit = cache.get_or_build(tmp_path, "demo", {}, build, load)
    assert (value, hit) == (1, False)
    (line,) = _warnings(capsys)
    assert "does not load" in line and "demo" in line


def test_disabled_cache_keeps_nothing(tmp_path):
    calls: list = []
    value, _, hit = cache.get_or_build(tmp_path, "demo", {}, lambda f: calls.append(1) or 7,
                                       lambda f: 0, enabled=False)
    assert (value, hit) == (7, False) and not any((tmp_path / "demo").iterdir())


# --- splits: a swapped train/test file is rebuilt and gives the true metrics ----------------

def test_tampered_split_is_rebuilt_and_gives_the_true_metrics(workdir, registry, capsys):
    suite, cells = validate_suite(tiny_suite(methods=[{"name": "pop"}], seeds=[0]), registry)
    first = run_suite(suite, cells, registry, force=True)[0]
    assert first.status == "finished"
    (entry,) = [p for p in (workdir / ".bench_cache" / "splits").iterdir()]
    split_file = entry / "split.npz"
    with np.load(split_file) as stored:
        parts = {k: stored[k] for k in stored.files}
    np.savez_compressed(split_file, train=parts["test"], valid=parts["valid"], test=parts["train"])
    capsys.readouterr()
    again = run_suite(suite, cells, registry, force=True)[0]
    assert again.status == "finished"
    assert again.metrics["ndcg@10"] == first.metrics["ndcg@10"]
    assert again.metrics["recall@10"] == first.metrics["recall@10"]
    (line,) = _warnings(capsys)
    assert f"splits/{entry.name}" in line and "split.npz" in line


def test_truncated_split_is_rebuilt_not_a_raw_error(workdir, registry, capsys):
    suite, cells = validate_suite(tiny_suite(methods=[{"name": "pop"}], seeds=[0]), registry)
    first = run_suite(suite, cells, registry, force=True)[0]
    (entry,) = list((workdir / ".bench_cache" / "splits").iterdir())
    blob = (entry / "split.npz").read_bytes()
    (entry / "split.npz").write_bytes(blob[: len(blob) // 2])
    again = run_suite(suite, cells, registry, force=True)[0]
    assert again.status == "finished"
    assert again.metrics["ndcg@10"] == first.metrics["ndcg@10"]


# --- planted pickles never run ----------------------------------------------------------------

class _Payload:
    """Unpickling this runs ``open(marker, 'w')`` (what an attacker's file would do)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _plant(entry: Path, filename: str, marker: Path) -> None:
    """Replace ``filename`` with a code-running pickle and fix the manifest's hash, so the
    entry passes verification and only the loader stands between the file and the code."""
    torch.save({"x": _Payload(str(marker))}, entry / filename)
    manifest = json.loads((entry / cache.MANIFEST).read_text())
    manifest["files"][filename] = cache.file_sha256(entry / filename)
    (entry / cache.MANIFEST).write_text(json.dumps(manifest))


def test_planted_pickle_in_a_tta_backbone_entry_does_not_run(workdir, capsys):
    import plugins.baselines
    import plugins.tta4sr
    from harness.registry import Registry
    from harness.runner import prepare_dataset, run_cell

    reg = Registry(autoload=False)
    reg.register(plugins.baselines, name="baselines")
    reg.register(plugins.tta4sr, name="tta4sr")
    bp = {"dim": 8, "max_len": 12, "epochs": 1, "batch_size": 64}
    _, cells = validate_suite({
        "suite": "t", "seeds": [0], "metrics": ["ndcg@10"],
        "datasets": [{"name": "synthetic", "task": "sequential",
                      "params": {"n_users": 40, "n_items": 30, "n_interactions": 900},
                      "split": {"strategy": "leave_one_out"}}],
        "methods": [{"name": "tta4sr", "params": {"backbone_params": bp}}]}, reg)
    ds = prepare_dataset(cells[0].dataset, cells[0].task, reg, workdir)
    first = run_cell(cells[0], ds, reg, cache_dir=workdir)[0]
    (entry,) = [p for p in (workdir / "tta4sr").iterdir() if not p.name.startswith(".")]
    marker = workdir / "pwned"
    # the pickle really runs code when loaded the unsafe way
    _plant(entry, "weights.pt", marker)
    torch.load(entry / "weights.pt", weights_only=False)
    assert marker.exists()
    marker.unlink()
    capsys.readouterr()
    again = run_cell(cells[0], ds, reg, cache_dir=workdir)[0]
    assert not marker.exists()
    assert again["backbone_cached"] == 0.0 and again["ndcg@10"] == first["ndcg@10"]
    (line,) = _warnings(capsys)
    assert str(entry) in line and "does not load" in line
    # and the rebuilt entry is a good one
    assert run_cell(cells[0], ds, reg, cache_dir=workdir)[0]["backbone_cached"] == 1.0


def test_planted_pickle_in_hnlmrec_negatives_does_not_run(tmp_path, capsys):
    from plugins.hnlmrec import semantic
    from plugins.hnlmrec.params import HNLMRecParams
    from tests.hnlmrec_fixtures import TINY, tiny_dataset

    ds = tiny_dataset()
    p = HNLMRecParams(**TINY, route="A")
    first = semantic.build(ds, p, seed=0, cache_dir=tmp_path)
    (entry,) = [e for e in (tmp_path / "hnlmrec").iterdir() if e.name.startswith("A-")]
    marker = tmp_path / "pwned"
    _plant(entry, "tensors.pt", marker)
    capsys.readouterr()
    again = semantic.build(ds, p, seed=0, cache_dir=tmp_path)
    assert not marker.exists() and again.source == "built"
    assert torch.equal(again.vectors, first.vectors)
    (line,) = _warnings(capsys)
    assert str(entry) in line


def test_no_cache_reader_unpickles(tmp_path):
    """Every cache read in the harness and the built-in plugins is weights-only."""
    root = Path(__file__).resolve().parents[1]
    offenders = []
    for path in list((root / "harness").rglob("*.py")) + list((root / "plugins").rglob("*.py")):
        text = path.read_text()
        if "weights_only=False" in text or "allow_pickle=True" in text or "pickle.load" in text:
            offenders.append(str(path.relative_to(root)))
    assert not offenders, offenders
    hand_written = []
    for path in list((root / "harness").rglob("*.py")) + list((root / "plugins").rglob("*.py")):
        if path.name != "cache.py" and "os.replace(" in path.read_text():
            hand_written.append(str(path.relative_to(root)))
    assert not hand_written, f"write cache entries through harness.cache: {hand_written}"
