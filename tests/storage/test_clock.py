import time

from storage.clock import DatabaseClock
from storage.db import create_engine


async def test_every_process_reads_the_database_clock_whatever_its_own_says(
    database_url: str,
) -> None:
    """A worker whose own clock is an hour behind still leases, schedules and rates by the
    database's clock."""
    engine = create_engine(database_url)
    try:
        behind = DatabaseClock(engine, local=lambda: time.time() - 3600)
        offset = await behind.sync()
        assert 3599 < offset < 3601
        assert abs(behind.time() - time.time()) < 1.0
        ahead = DatabaseClock(engine, local=lambda: time.time() + 90)
        await ahead.sync()
        assert abs(ahead.now().timestamp() - behind.now().timestamp()) < 1.0
    finally:
        await engine.dispose()


async def test_the_clock_syncs_by_itself_in_the_background(database_url: str) -> None:
    engine = create_engine(database_url)
    clock = DatabaseClock(engine, local=lambda: time.time() - 600)
    try:
        clock.time()  # starts a sync; the hot path never waits for the database
        await clock.close()  # waits for it
        assert abs(clock.time() - time.time()) < 1.0
    finally:
        await engine.dispose()
