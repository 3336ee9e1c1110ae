"""Fixtures: every database test runs on SQLite and, when TEST_DATABASE_URL is set, on
PostgreSQL too (in a database of its own, created and dropped here)."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bot.channels.render import Rendered
from bot.channels.simulator import Simulator, SimulatorMessage
from bot.services import Services
from bot.settings import Settings
from storage.db import create_engine, normalise_url
from storage.migrate import upgrade
from storage.models import Base

TEST_KEY = bytes(range(32))
PG_URL = os.environ.get("TEST_DATABASE_URL")
BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "hotline.db"
    upgrade(f"sqlite:///{path}")
    return path


@contextmanager
def scratch_postgres(server_url: str, revision: str = "head") -> Iterator[str]:
    """A database of its own on the server, migrated to `revision`, dropped afterwards."""
    server = normalise_url(server_url)
    name = f"hotline_test_{uuid.uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        engine = create_engine(server, isolation_level="AUTOCOMMIT")
        async with engine.connect() as conn:
            await conn.execute(text(sql))
        await engine.dispose()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    url = server.set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url, revision)
        yield url
    finally:
        asyncio.run(admin(f'DROP DATABASE "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    assert PG_URL, "only requested when TEST_DATABASE_URL is set"
    with scratch_postgres(PG_URL) as url:
        yield url


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        target = tmp_path / "hotline.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), target)
        return f"sqlite:///{target}"
    url: str = request.getfixturevalue("postgres_url")

    async def truncate() -> None:
        engine = create_engine(url)
        async with engine.begin() as conn:
            tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
            await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        await engine.dispose()

    asyncio.run(truncate())
    return url


async def until(condition: Callable[[], bool], seconds: float = 30) -> None:
    """Wait for something another task or process does; the limit only keeps a broken test
    from hanging."""
    for _ in range(int(seconds * 20)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


class Clock:
    """Real time, moved forward by what a test adds to `skip`."""

    def __init__(self) -> None:
        self.skip = timedelta()

    @property
    def now(self) -> datetime:
        return datetime.now(UTC) + self.skip

    def __call__(self) -> datetime:
        return self.now


def make_settings(database_url: str, tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = dict(
        database_url=database_url, secret_key=TEST_KEY, data_dir=tmp_path,
        organisation="Test NGO",
    )
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
async def services(database_url: str, tmp_path: Path) -> AsyncIterator[Services]:
    built = Services.build(make_settings(database_url, tmp_path))
    yield built
    await built.close()


class Phone:
    """A person texting the bot through the simulator channel, as tests do it."""

    def __init__(self, services: Services, user: str | None = None, style: str = "sms",
                 language: str | None = None) -> None:
        self.simulator = Simulator(services.engine, services.turns, services.outbox)
        self.user = user or f"user-{uuid.uuid4().hex[:8]}"
        self.style = style
        self.language = language
        self._sent = 0

    async def send(self, text: str | None = None, *, choice: str | None = None,
                   message_id: str | None = None) -> list[Rendered]:
        self._sent += 1
        return await self.simulator.exchange(SimulatorMessage(
            user=self.user, style=self.style, text=text, choice=choice,
            language_code=self.language,
            message_id=message_id if message_id is not None else f"{self.user}-{self._sent}",
        ))

    async def say(self, text: str | None = None, *, choice: str | None = None) -> str:
        """Send and return the one reply's text (every message gets exactly one reply)."""
        replies = await self.send(text, choice=choice)
        assert len(replies) == 1, replies
        return replies[0].text


@pytest.fixture
async def client(services: Services) -> AsyncIterator[TestClient]:
    """The whole web app over loopback HTTP, without its background sender: tests drive the
    sender themselves. `services` is whatever the test module provides (channels configured)."""
    from bot.web.app import create_app

    async with TestClient(TestServer(create_app(services, background=False))) as test_client:
        yield test_client


@pytest.fixture
def phone(services: Services) -> Phone:
    return Phone(services)


def database_file(url: str) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        return Path(parsed.database)
    return None


async def post_raw(host: str, port: int, path: str, headers: bytes, body: bytes) -> int:
    """A request written byte by byte: HTTP clients send only ASCII headers; anyone on the
    internet can send others."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"POST " + path.encode() + b" HTTP/1.1\r\nHost: hotline\r\n"
                 b"Connection: close\r\nContent-Type: application/json\r\n" + headers
                 + b"Content-Length: %d\r\n\r\n" % len(body) + body)
    status = await reader.readline()
    writer.close()
    await writer.wait_closed()
    return int(status.split()[1])
