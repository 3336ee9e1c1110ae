from sqlalchemy import inspect, text

from storage.db import create_engine
from storage.migrate import current_revision, head_revision


async def test_migrations_create_the_schema_at_head(database_url: str) -> None:
    assert await current_revision(database_url) == head_revision()
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
            assert {"contacts", "conversations", "messages", "outbox"} <= tables
            if engine.dialect.name == "sqlite":
                mode = (await conn.execute(text("PRAGMA journal_mode"))).scalar()
                keys = (await conn.execute(text("PRAGMA foreign_keys"))).scalar()
                assert (mode, keys) == ("wal", 1)
    finally:
        await engine.dispose()


async def test_the_migrations_build_exactly_what_the_models_describe(database_url: str) -> None:
    """A column added to a model without a migration (or the other way round) fails here."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from storage.models import Base

    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda c: compare_metadata(MigrationContext.configure(c), Base.metadata))
    finally:
        await engine.dispose()
    assert diff == []
