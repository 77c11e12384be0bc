"""Check a tracking-store URI before MLflow touches it, and lock a new store's set-up.

Why: MLflow retries an unreachable HTTP server or a read-only SQLite file for minutes and
then prints hundreds of lines; a missing database driver surfaces as ``No module named
'psycopg2'`` deep in SQLAlchemy; and MLflow builds a new SQL store's schema without a lock,
so two first runs on one file race it. Here every such store fails in seconds with one
paragraph naming the URI and what to do (the CLI exits 2), and a SQLite store's first
connection happens under a file lock beside it.
"""
from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .api import BenchError

#: SQLAlchemy driver module -> the pip package that provides it
DRIVER_PACKAGES = {"psycopg2": "psycopg2-binary", "psycopg": "psycopg[binary]",
                   "pg8000": "pg8000", "asyncpg": "asyncpg", "pymysql": "pymysql",
                   "MySQLdb": "mysqlclient", "mysqldb": "mysqlclient", "mysqlconnector":
                   "mysql-connector-python", "pyodbc": "pyodbc", "pymssql": "pymssql"}
SQL_SCHEMES = ("postgresql", "mysql", "mssql")
KNOWN = ("sqlite:///PATH, postgresql://USER:PASSWORD@HOST:PORT/DB, mysql://..., "
         "http(s)://HOST:PORT (an `mlflow server`), file:PATH or databricks")
CONNECT_TIMEOUT_S = 5


class StoreError(BenchError):
    """The tracking store cannot be used; the message says which and what to do."""


def redact(uri: str) -> str:
    """The URI without a password (messages are printed and logged)."""
    from .tracking import redact_uri  # the one implementation

    return redact_uri(uri)


def _fail(uri: str, what: str, todo: str) -> StoreError:
    return StoreError(f"tracking store {redact(uri)}: {what} {todo}")


def sqlite_path(uri: str) -> Path:
    """The database file of a ``sqlite:///`` URI (query string dropped)."""
    return Path(uri[len("sqlite:///"):].split("?", 1)[0])


def check_store(uri: str) -> str:
    """Return ``uri`` if a run can use it; raise :class:`StoreError` otherwise (seconds)."""
    scheme = uri.split(":", 1)[0].lower() if ":" in uri else ""
    base = scheme.split("+", 1)[0]
    if scheme == "sqlite":
        _check_sqlite(uri)
    elif base in SQL_SCHEMES:
        _check_sql(uri)
    elif scheme in ("http", "https"):
        _check_http(uri)
    elif scheme in ("file", "databricks", "databricks-uc", "uc") or (not scheme and uri):
        pass  # MLflow's own file store / a managed service: MLflow reports those itself
    elif base == "postgres":
        raise _fail(uri, "the scheme 'postgres' is not understood by SQLAlchemy.",
                    "Write it as postgresql://USER:PASSWORD@HOST:PORT/DB.")
    else:
        raise _fail(uri, f"unknown scheme '{scheme or uri}'.",
                    f"Use one of {KNOWN} (--tracking-uri or the suite's `tracking.uri`).")
    return uri


def _check_sqlite(uri: str) -> None:
    if not uri.startswith("sqlite:///") or ":memory:" in uri:
        raise _fail(uri, "an in-memory or relative-host SQLite URI cannot hold runs.",
                    "Use sqlite:///relative/path.db or sqlite:////absolute/path.db.")
    path = sqlite_path(uri)
    if path.is_dir():
        raise _fail(uri, f"{path} is a folder, not a database file.",
                    "Point the URI at a .db file (it is created if missing).")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _fail(uri, f"its folder {path.parent} cannot be created ({exc.strerror}).",
                    "Choose a writable location.") from None
    if path.exists() and path.stat().st_size:
        with open(path, "rb") as fh:
            head = fh.read(16)
        if head != b"SQLite format 3\x00":
            raise _fail(uri, f"{path} exists but is not a SQLite database.",
                        "Point the URI at an MLflow SQLite store or at a new file name; "
                        "bench never overwrites a file it did not create.")
    try:  # a write transaction, rolled back: finds read-only files, folders and mounts
        con = sqlite3.connect(str(path), timeout=30, isolation_level=None)
        try:
            con.execute("BEGIN IMMEDIATE")
            con.execute("CREATE TABLE IF NOT EXISTS _bench_write_probe (x INTEGER)")
            con.execute("ROLLBACK")
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        msg = str(exc)
        if "readonly" in msg or "read-only" in msg or "unable to open" in msg:
            todo = ("The file or its folder is read-only (SQLite also writes a journal "
                    "beside the file). Make both writable, or pass --tracking-uri with a "
                    "writable path.")
        elif "locked" in msg:
            todo = (f"Another process held it locked for 30 s; retry, or use "
                    "a server store (postgresql:// or an `mlflow server`) for many writers.")
        else:
            todo = "Point the URI at an MLflow SQLite store or at a new file name."
        raise _fail(uri, f"cannot write to {path}: {msg}.", todo) from None


def _check_sql(uri: str) -> None:
    import sqlalchemy
    from sqlalchemy.engine import make_url

    try:
        url = make_url(uri)
        dialect = url.get_dialect()
    except Exception as exc:
        raise _fail(uri, f"not a database URL SQLAlchemy understands ({exc}).",
                    "Write it as postgresql://USER:PASSWORD@HOST:PORT/DB.") from None
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        module = (getattr(exc, "name", None) or str(exc).split("'")[-2]).split(".")[0]
        package = DRIVER_PACKAGES.get(module, module)
        if module == "MySQLdb":
            todo = ("Install it with: pip install 'mysqlclient' (needs the MySQL client "
                    "library), or pip install 'bench[mysql]' (PyMySQL) and write the URI as "
                    "mysql+pymysql://USER:PASSWORD@HOST:PORT/DB.")
        elif url.get_backend_name() == "postgresql" and module == "psycopg":
            todo = ("Install it with: pip install 'psycopg[binary]' (or pip install "
                    "'bench[postgres]').")
        else:
            todo = f"Install it with: pip install '{package}'."
        raise _fail(uri, f"its database driver '{module}' is not installed.", todo) from None
    args = {"connect_timeout": CONNECT_TIMEOUT_S} if url.get_backend_name() in (
        "postgresql", "mysql") else {}
    engine = sqlalchemy.create_engine(url, connect_args=args, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as con:
            con.exec_driver_sql("SELECT 1")
    except Exception as exc:
        first = str(getattr(exc, "orig", exc)).strip().splitlines()
        raise _fail(uri, f"cannot connect: {first[0] if first else type(exc).__name__}.",
                    "Check that the server is running and reachable, the database exists "
                    "and the user may write to it.") from None
    finally:
        engine.dispose()


def _check_http(uri: str) -> None:
    import requests

    base = uri.rstrip("/")
    try:
        resp = requests.get(f"{base}/api/2.0/mlflow/experiments/get-by-name",
                            params={"experiment_name": "Default"}, timeout=CONNECT_TIMEOUT_S)
    except requests.RequestException as exc:
        reason = type(exc).__name__
        raise _fail(uri, f"no MLflow tracking server answers ({reason}).",
                    "Start one, e.g. `mlflow server --backend-store-uri sqlite:///mlflow.db "
                    "--host 127.0.0.1 --port 5000`, or check the host and port.") from None
    if resp.status_code in (401, 403):
        raise _fail(uri, f"the server refused access (HTTP {resp.status_code}).",
                    "Set MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD or "
                    "MLFLOW_TRACKING_TOKEN for it.")
    if resp.status_code >= 500 or (resp.status_code != 200 and "error_code" not in resp.text):
        raise _fail(uri, f"the server at this address is not an MLflow tracking server "
                    f"(HTTP {resp.status_code} from its REST API).",
                    "Point --tracking-uri at `mlflow server`'s address.")


def describe_failure(uri: str, exc: BaseException) -> str:
    """One paragraph for an error MLflow raised while opening a checked store."""
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
    return (f"tracking store {redact(uri)}: MLflow could not open it ({type(exc).__name__}: "
            f"{first}). If it is a database made by another program or a newer MLflow, use "
            "a new store; otherwise check that it is reachable and writable.")


@contextmanager
def store_lock(uri: str, purpose: str = "init", timeout: float = 120.0) -> Iterator[None]:
    """One process at a time through a store's set-up (its first connection, schema and
    experiment): a file lock beside a SQLite file, an advisory lock in PostgreSQL or
    MySQL; a no-op for an HTTP server (which serialises its own set-up)."""
    base = uri.split(":", 1)[0].split("+", 1)[0].lower()
    if uri.startswith("sqlite:///"):
        with _file_lock(uri, purpose, timeout):
            yield
    elif base in ("postgresql", "mysql"):
        with _db_lock(uri, base, purpose, timeout):
            yield
    else:
        yield


@contextmanager
def _file_lock(uri: str, purpose: str, timeout: float) -> Iterator[None]:
    from filelock import FileLock, Timeout

    path = sqlite_path(uri)
    lock = FileLock(str(path) + f".{purpose}.lock")
    try:
        lock.acquire(timeout=timeout)
    except Timeout:
        raise _fail(uri, f"its {purpose} lock {lock.lock_file} was held for {timeout:.0f} s.",
                    "Another bench process is stuck on it; stop it or remove the lock file."
                    ) from None
    try:
        yield
    finally:
        lock.release()


@contextmanager
def _db_lock(uri: str, backend: str, purpose: str, timeout: float) -> Iterator[None]:
    import zlib

    import sqlalchemy

    key = zlib.crc32(f"bench.{purpose}".encode())
    engine = sqlalchemy.create_engine(uri, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as con:
            if backend == "postgresql":
                con.exec_driver_sql(f"SET statement_timeout = {int(timeout * 1000)}")
                con.exec_driver_sql(f"SELECT pg_advisory_lock({key})")
                release = f"SELECT pg_advisory_unlock({key})"
            else:
                con.exec_driver_sql(f"SELECT GET_LOCK('bench.{purpose}', {int(timeout)})")
                release = f"SELECT RELEASE_LOCK('bench.{purpose}')"
            try:
                yield
            finally:
                con.exec_driver_sql(release)
    finally:
        engine.dispose()


def lost_insert_race(exc: BaseException) -> bool:
    """Whether ``exc`` is a store's unique-constraint violation: a writer that lost a
    check-then-insert race, where a retry finds the row and succeeds.

    Two Optuna workers creating a new study database's schema at once, or two cells
    (``--jobs``, Ray, two drivers) linking the first runs of one split to MLflow's dataset
    row, which every run of an experiment shares: both see no row, both insert, and the
    loser fails although nothing is wrong. SQLAlchemy raises ``IntegrityError`` itself;
    MLflow wraps it in an ``MlflowException`` whose message names it.
    """
    text = f"{type(exc).__name__}: {exc}".lower()
    return ("unique constraint" in text or "duplicate key" in text
            or "integrityerror" in text)
