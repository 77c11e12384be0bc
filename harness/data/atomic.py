"""Reader for RecBole atomic files (``.inter``, ``.user``, ``.item``).

Any dataset in RecBole's format (the de-facto exchange format of the field) loads with
this reader, so users can bring their own data without writing a plugin.
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import IO, Callable, Optional, Union

import numpy as np
import pandas as pd

from ..api import BenchError
from .interactions import Interactions

Source = Union[Path, Callable[[str], Optional[IO[bytes]]]]


def read_atomic_table(handle: IO[bytes], where: str) -> pd.DataFrame:
    """One atomic file as a DataFrame with the type suffixes stripped from the header.

    ``token`` columns stay strings; ``float`` columns become floats (a value that is not a
    number is an error naming the file, line and column, never a silent NaN); ``*_seq``
    columns stay space-separated strings (the caller splits what it needs). An empty,
    binary, non-UTF-8 or malformed file is an error naming the file.
    """
    frame = read_tsv(handle.read(), where, header=0)
    columns = {}
    for col in frame.columns:
        if ":" not in col:
            raise BenchError(f"{where}: header column '{col}' has no ':type' suffix "
                             "(RecBole atomic files use 'name:token', 'name:float', ...).")
        name, kind = col.split(":", 1)
        columns[col] = name
        if kind == "float":
            frame[col] = numeric_column(frame[col], where, col, first_line=2, allow_empty=True)
    return frame.rename(columns=columns)


def read_tsv(raw: bytes, where: str, header: Optional[int] = 0, sep: str = "\t",
             names: Optional[list[str]] = None, encoding: str = "utf-8") -> pd.DataFrame:
    """A delimited text file as strings; every way it can be unreadable is one error line
    naming ``where``."""
    if not raw.strip():
        raise BenchError(f"{where}: the file is empty.")
    if b"\x00" in raw[:65536]:
        raise BenchError(f"{where}: is a binary file, not delimited text.")
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise BenchError(f"{where}: line {line} is not {encoding.upper()} text "
                         f"(byte 0x{raw[exc.start]:02x}).") from None
    try:
        with warnings.catch_warnings():  # a row with extra fields would silently lose data
            warnings.simplefilter("error", pd.errors.ParserWarning)
            return pd.read_csv(io.StringIO(text), sep=sep, header=header, names=names,
                               dtype=str, keep_default_na=False, quoting=3, index_col=False)
    except (pd.errors.ParserError, pd.errors.ParserWarning, pd.errors.EmptyDataError,
            ValueError) as exc:
        detail = " ".join(str(exc).split())
        raise BenchError(f"{where}: cannot be parsed as {'tab' if sep == chr(9) else repr(sep)}-"
                         f"separated text: {detail}") from None


def numeric_column(values: pd.Series, where: str, column: str, first_line: int,
                   allow_empty: bool = False) -> pd.Series:
    """``values`` (strings or numbers) as floats; the first value that is not a finite
    number (or, unless ``allow_empty``, is empty) is an error naming the file, line and
    column, never a silent NaN."""
    if pd.api.types.is_numeric_dtype(values):
        text, numbers = None, values.astype(np.float64)
    else:
        text = values.astype(str).str.strip()
        numbers = pd.to_numeric(text.where(text != "", None), errors="coerce").astype(np.float64)
    bad = ~np.isfinite(numbers.to_numpy())
    if allow_empty:
        bad &= numbers.notna().to_numpy() if text is None else (text != "").to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        shown = str(numbers.iloc[row]) if text is None else text.iloc[row]
        value = "an empty value" if shown in ("", "nan") and (text is None or not shown) \
            else repr(shown)
        raise BenchError(f"{where}: line {row + first_line}, column '{column}': {value} is "
                         "not a number.")
    return numbers


def _opener(source: Source) -> Callable[[str], Optional[IO[bytes]]]:
    if callable(source):
        return source
    root = Path(source)

    def open_file(filename: str) -> Optional[IO[bytes]]:
        path = root / filename
        return path.open("rb") if path.exists() else None

    return open_file


def load_atomic(source: Source, name: str, user_field: str = "user_id",
                item_field: str = "item_id") -> Interactions:
    """Load ``<name>.inter`` (required) and ``.user``/``.item`` (optional) from a folder
    or from an opener callable (used to read straight out of a wheel/zip)."""
    open_file = _opener(source)
    handle = open_file(f"{name}.inter")
    if handle is None:
        raise BenchError(f"no '{name}.inter' in {source}: an atomic-file dataset needs at "
                         "least the .inter file.")
    with handle:
        inter = read_atomic_table(handle, _where(source, f"{name}.inter"))
    for required in (user_field, item_field):
        if required not in inter.columns:
            raise BenchError(f"{name}.inter has no '{required}' column "
                             f"(columns: {', '.join(inter.columns)}).")
    for column in ("rating", "timestamp"):  # every event needs them when they are there
        if column in inter:
            inter[column] = numeric_column(inter[column], _where(source, f"{name}.inter"),
                                           column, first_line=2)
    users = _table(open_file, f"{name}.user", user_field, source)
    items = _table(open_file, f"{name}.item", item_field, source)

    user_tokens = _token_universe(inter[user_field], users)
    item_tokens = _token_universe(inter[item_field], items)
    u_index = {t: i for i, t in enumerate(user_tokens)}
    i_index = {t: i for i, t in enumerate(item_tokens)}
    data = Interactions(
        user=inter[user_field].map(u_index).to_numpy(np.int64),
        item=inter[item_field].map(i_index).to_numpy(np.int64),
        n_users=len(user_tokens), n_items=len(item_tokens),
        rating=inter["rating"].to_numpy(np.float32) if "rating" in inter else None,
        timestamp=inter["timestamp"].to_numpy(np.float64) if "timestamp" in inter else None,
        user_tokens=user_tokens, item_tokens=item_tokens,
        user_features=_features(users, user_field, user_tokens),
        item_features=_features(items, item_field, item_tokens),
    )
    return data.reindex()  # side tables may list users/items without events


def _where(source: Source, filename: str) -> str:
    """How an error names a file: its path, or its name inside an archive."""
    return filename if callable(source) else str(Path(source) / filename)


def _table(open_file, filename: str, key: str, source: Source) -> Optional[pd.DataFrame]:
    handle = open_file(filename)
    if handle is None:
        return None
    with handle:
        table = read_atomic_table(handle, _where(source, filename))
    if key not in table.columns:
        raise BenchError(f"{filename} has no '{key}' column.")
    return table.drop_duplicates(key).set_index(key)


def _token_universe(events: pd.Series, side: Optional[pd.DataFrame]) -> np.ndarray:
    tokens = pd.unique(events)
    if side is not None:
        tokens = pd.unique(np.concatenate([tokens, side.index.to_numpy()]))
    return np.asarray(sorted(tokens, key=_natural), dtype=object).astype(str)


def _natural(token: str):
    return (0, int(token), "") if token.isdigit() else (1, 0, token)


def _features(table: Optional[pd.DataFrame], key: str, tokens: np.ndarray) -> dict:
    if table is None:
        return {}
    aligned = table.reindex(tokens)
    return {col: aligned[col].to_numpy() for col in aligned.columns}
