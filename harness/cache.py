"""The one on-disk cache of bench: splits, trained backbones, LLMs, generated negatives.

Why one module: a cache entry is reused by every later run, so a truncated, garbled or
tampered file would silently change every result built on it (a split with train and test
swapped scored NDCG@10 0.47 instead of 0.14 and was recorded as finished). Every entry is
therefore

- **content-addressed**: its folder name is a hash of the inputs that made it
  (:func:`content_key`), so other inputs never reuse it;
- **written atomically**: the payload is built in a private temporary folder and published
  with one ``rename``, so a reader never sees half an entry and parallel writers of the
  same key leave exactly one;
- **verified on read**: ``manifest.json`` records the inputs and the SHA-256 of every
  payload file. An entry whose manifest is missing or unreadable, whose inputs differ,
  whose files do not hash to the manifest, or whose loader raises, is discarded and
  rebuilt, with one warning line naming the folder.

Payloads are plain data (``.npz`` without pickles, JSON, safetensors, ``torch.save`` of
tensors read back with ``weights_only=True``): a planted file can fail a load, never run
code. Layout: ``<root>/<kind>/<key>/{manifest.json, payload files...}``.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
import uuid
from pathlib import Path
from typing import Any, Callable, Optional, TypeVar

T = TypeVar("T")

MANIFEST = "manifest.json"
FORMAT = 1

log = logging.getLogger("bench.cache")


class _Stderr(logging.StreamHandler):
    """Writes to the *current* ``sys.stderr`` (so pytest's capture and the CLI both see it)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("warning: %(message)s"))

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


if not log.handlers:
    log.addHandler(_Stderr())
    log.setLevel(logging.WARNING)
    log.propagate = False


def _canonical(inputs: Any) -> Any:
    """``inputs`` as JSON would give it back (what the manifest stores and compares)."""
    return json.loads(json.dumps(inputs, sort_keys=True, default=str))


def content_key(inputs: Any, length: int = 16) -> str:
    """Hex SHA-256 of ``inputs`` (any JSON-able structure; sorted keys, ``str`` fallback)."""
    blob = json.dumps(inputs, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _payload_hashes(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): file_sha256(p)
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != MANIFEST}


class CacheEntryInvalid(Exception):
    """Why a stored entry cannot be used (turned into the one warning line)."""


def verify(folder: Path, kind: str, inputs: Any) -> dict:
    """The entry's manifest if ``folder`` is a complete, untouched entry for ``inputs``;
    raises :class:`CacheEntryInvalid` saying what is wrong otherwise."""
    if not folder.is_dir():
        raise CacheEntryInvalid("not a folder")
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CacheEntryInvalid(f"no {MANIFEST}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CacheEntryInvalid(f"unreadable {MANIFEST} ({type(exc).__name__})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT \
            or manifest.get("kind") != kind:
        raise CacheEntryInvalid(f"{MANIFEST} is not a bench {kind} manifest")
    if manifest.get("inputs") != _canonical(inputs):
        raise CacheEntryInvalid("made from other inputs")
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise CacheEntryInvalid(f"{MANIFEST} lists no files")
    actual = _payload_hashes(folder)
    for name, digest in files.items():
        if name not in actual:
            raise CacheEntryInvalid(f"file {name} is missing")
        if actual[name] != digest:
            raise CacheEntryInvalid(f"file {name} does not match its recorded SHA-256")
    extra = sorted(set(actual) - set(files))
    if extra:
        raise CacheEntryInvalid(f"unexpected file {extra[0]}")
    return manifest


def _discard(folder: Path) -> None:
    """Move a bad entry out of the way first (one rename), then delete it, so a parallel
    reader never mixes its files with a new entry's."""
    if not folder.exists() and not folder.is_symlink():
        return
    trash = folder.with_name(f".{folder.name}.discarded-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        os.replace(folder, trash)
    except OSError:
        trash = folder
    if trash.is_dir() and not trash.is_symlink():
        shutil.rmtree(trash, ignore_errors=True)
    else:
        try:
            trash.unlink()
        except OSError:
            pass


def _publish(tmp: Path, folder: Path, kind: str, inputs: Any) -> None:
    manifest = {"format": FORMAT, "kind": kind, "key": folder.name,
                "inputs": _canonical(inputs), "files": _payload_hashes(tmp)}
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True), encoding="utf-8")
    try:
        os.rename(tmp, folder)  # atomic; fails if a parallel writer published first
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)


def get_or_build(root: Path | str, kind: str, inputs: Any,
                 build: Callable[[Path], T], load: Callable[[Path], T], *,
                 key: Optional[str] = None, enabled: bool = True) -> tuple[T, Path, bool]:
    """``(value, entry folder, came_from_cache)`` for the entry of ``inputs``.

    ``build(folder)`` computes the value and writes its payload files into ``folder`` (a
    fresh private folder); ``load(folder)`` reads a verified entry back. ``key`` names
    the entry (default :func:`content_key` of ``inputs``; pass one that is itself a
    content hash, such as a split id). ``enabled=False`` builds into a throw-away folder
    and keeps nothing.
    """
    folder = Path(root) / kind / (key or content_key(inputs))
    if enabled and (folder.exists() or folder.is_symlink()):
        try:
            verify(folder, kind, inputs)
            return load(folder), folder, True
        except CacheEntryInvalid as exc:
            reason = str(exc)
        except Exception as exc:  # the payload hashes right but does not load
            reason = f"does not load ({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''})"
        log.warning(f"cache entry {folder} ({kind}) is invalid: {reason}; discarded and rebuilt.")
        _discard(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    try:
        value = build(tmp)
        if not enabled:
            return value, folder, False
        _publish(tmp, folder, kind, inputs)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return value, folder, False
