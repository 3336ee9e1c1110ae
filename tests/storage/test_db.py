"""SQLite files as the embedded default leaves them: private, and erased rows really gone."""

from __future__ import annotations

import stat
from pathlib import Path

from sqlalchemy import text

from storage.db import create_engine


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_a_new_database_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    database = tmp_path / "var" / "data" / "hotline.db"  # two folders that do not exist yet
    engine = create_engine(f"sqlite:///{database}")
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (x TEXT)"))
            await conn.execute(text("INSERT INTO t VALUES ('a')"))
        assert mode(database.parent) == 0o700
        assert mode(database) == 0o600
        for suffix in ("-wal", "-shm"):  # SQLite gives them the database file's mode
            assert mode(database.with_name(database.name + suffix)) == 0o600
    finally:
        await engine.dispose()


async def test_an_existing_folder_and_database_of_ours_are_made_private(tmp_path: Path) -> None:
    folder = tmp_path / "var"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    database = folder / "hotline.db"
    database.touch()
    database.chmod(0o644)
    engine = create_engine(f"sqlite:///{database}")
    await engine.dispose()
    assert (mode(folder), mode(database)) == (0o700, 0o600)


async def test_deleted_rows_are_overwritten(tmp_path: Path) -> None:
    database = tmp_path / "hotline.db"
    engine = create_engine(f"sqlite:///{database}")
    try:
        async with engine.begin() as conn:
            assert (await conn.execute(text("PRAGMA secure_delete"))).scalar() == 1
            await conn.execute(text("CREATE TABLE t (x TEXT)"))
            await conn.execute(text("INSERT INTO t VALUES ('erase-me-' || hex(randomblob(8)))"))
            secret = (await conn.execute(text("SELECT x FROM t"))).scalar_one()
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM t"))
    finally:
        await engine.dispose()  # the last connection copies the write-ahead log back
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("hotline.db*"))
    assert secret.encode() not in stored
