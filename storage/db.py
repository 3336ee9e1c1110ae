"""Database engines: SQLite (WAL, the embedded default) or PostgreSQL through asyncpg."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)


def normalise_url(url: str | URL) -> URL:
    """Accept the URL forms people paste (postgres://, postgresql://, sqlite:///) and pick the
    async driver for them."""
    parsed = make_url(url) if isinstance(url, str) else url
    backend = parsed.get_backend_name()
    if backend in ("postgres", "postgresql"):
        return parsed.set(drivername="postgresql+asyncpg")
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite")
    raise ValueError(f"unsupported database {backend!r}: use sqlite or postgresql")


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"


def create_engine(url: str | URL, **kwargs: Any) -> AsyncEngine:
    url = normalise_url(url)
    # Parameters hold ciphertext and keyed hashes, but keep them out of errors and logs anyway.
    kwargs.setdefault("hide_parameters", True)
    if url.get_backend_name() == "sqlite":
        _private_database_file(url)
        # SQLite has one writer at a time. One connection per process makes its turns queue
        # in the pool (a fair asyncio queue) instead of sleeping in SQLite's busy handler,
        # which backs off up to 100 ms a try; other processes still wait on busy_timeout.
        kwargs.setdefault("pool_size", 1)
        kwargs.setdefault("max_overflow", 0)
        kwargs.setdefault("pool_timeout", 300)
        engine = create_async_engine(url, connect_args={"timeout": 30}, **kwargs)
        _configure_sqlite(engine)
        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 10)
    kwargs.setdefault("pool_pre_ping", False)
    return create_async_engine(url, **kwargs)


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the driver so that we can say BEGIN IMMEDIATE:
        # a deferred BEGIN that later upgrades to a write lock fails with SQLITE_BUSY when two
        # processes write at once, instead of waiting its turn.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes in WAL
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        # Deleted rows (an erased person, expired transcripts) are overwritten, not left
        # readable in free pages of the file.
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # An AUTOCOMMIT connection runs single statements, each atomic by itself.
        if conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
            conn.exec_driver_sql("BEGIN IMMEDIATE")


def private_directory(path: Path) -> None:
    """Create `path` readable by this user only, or make it so if it exists and is ours (a
    shared folder such as /tmp is left alone)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    _restrict(path, 0o700)


def _private_database_file(url: URL) -> None:
    """The database file 0600 in a 0700 folder before SQLite first opens it: SQLite creates a
    missing file with the process's umask (usually readable by everyone), and its -wal and
    -shm files with the database file's mode."""
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return  # in memory, or a URI filename that SQLite resolves itself
    path = Path(database)
    private_directory(path.parent)
    os.close(os.open(path, os.O_RDONLY | os.O_CREAT, 0o600))
    for suffix in ("", "-wal", "-shm", "-journal"):  # also files made before this rule
        _restrict(path.with_name(path.name + suffix), 0o600)


def _restrict(path: Path, mode: int) -> None:
    """Only what is ours: another user's folder (a shared one) keeps its mode."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return
    if info.st_uid == os.geteuid() and stat.S_IMODE(info.st_mode) != mode:
        path.chmod(mode)


def upsert_insert(dialect_name: str) -> Any:
    """The insert construct with ON CONFLICT support for this dialect (both have one)."""
    return postgresql.insert if dialect_name == "postgresql" else sqlite.insert


def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
