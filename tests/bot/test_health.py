"""`/healthz` on the web app and on `hotline worker`: 200 when the database answers and its schema
is current, 503 with the reason otherwise, never a traceback."""

from __future__ import annotations

import asyncio
import shutil
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from bot.services import Services
from bot.web import health
from bot.web.app import create_app
from flows.engine import Inbound
from storage.crypto import parse_master_key
from storage.migrate import head_revision, upgrade
from tests.bot.test_telegram_processes import (  # fixtures too: env, fake
    env,  # noqa: F401
    fake,  # noqa: F401
    free_port,
    migrate,
    start,
    stop,
)
from tests.conftest import make_settings, scratch_postgres, until
from tests.fakes.telegram import FakeTelegram


@asynccontextmanager
async def web_app(database_url: str, tmp_path: Path) -> AsyncIterator[TestClient]:
    services = Services.build(make_settings(database_url, tmp_path))
    async with TestClient(TestServer(create_app(services, background=False))) as client:
        yield client


async def healthz(client: TestClient) -> tuple[int, dict[str, Any]]:
    response = await client.get("/healthz")
    assert response.content_type == "application/json"  # never an HTML traceback
    return response.status, await response.json()


async def test_a_migrated_database_is_healthy(database_url: str, tmp_path: Path) -> None:
    async with web_app(database_url, tmp_path) as client:
        assert await healthz(client) == (
            200, {"ok": True, "database": "ok", "schema": head_revision()})


@pytest.fixture
def behind_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    """A database of the same kind, migrated only as far as 0004."""
    if not database_url.startswith("postgresql"):
        url = f"sqlite:///{tmp_path / 'old.db'}"
        upgrade(url, "0004")
        yield url
        return
    with scratch_postgres(database_url, "0004") as url:
        yield url


async def test_a_schema_behind_the_code_is_unhealthy(behind_url: str, tmp_path: Path) -> None:
    async with web_app(behind_url, tmp_path) as client:
        status, body = await healthz(client)
    assert status == 503
    assert body["ok"] is False and body["database"] == "ok" and body["schema"] == "0004"
    assert "hotline db upgrade" in body["error"]


@pytest.mark.parametrize("where", ["postgresql closed port", "sqlite directory gone"])
async def test_an_unreachable_database_is_unhealthy(where: str, tmp_path: Path) -> None:
    url = (f"postgresql://postgres@127.0.0.1:{free_port()}/postgres" if where.startswith("post")
           else f"sqlite:///{tmp_path / 'volume' / 'hotline.db'}")
    async with web_app(url, tmp_path) as client:
        shutil.rmtree(tmp_path / "volume", ignore_errors=True)  # as if its disk went away
        status, body = await healthz(client)
        metrics = await client.get("/metrics")
        assert metrics.status == 200  # the counters still, without the outbox
        assert "hotline_outbox" not in await metrics.text()
    assert status == 503
    assert body == {"ok": False, "database": "unreachable", "schema": None,
                    "error": body["error"]}
    assert body["error"].startswith("the database cannot be reached (")
    assert "Traceback" not in body["error"] and "127.0.0.1" not in body["error"]


async def test_a_database_that_does_not_answer_is_unhealthy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that accepts the connection and then says nothing (a hung database)."""
    monkeypatch.setattr(health, "DATABASE_TIMEOUT", 0.3)
    accepted: list[asyncio.StreamWriter] = []
    silent = await asyncio.start_server(lambda _r, w: accepted.append(w), "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    try:
        async with web_app(f"postgresql://postgres@127.0.0.1:{port}/postgres",
                           tmp_path) as client:
            status, body = await healthz(client)
    finally:
        for writer in accepted:
            writer.close()
        silent.close()
        await silent.wait_closed()
    assert status == 503
    assert body["database"] == "unreachable"
    assert body["error"] == "the database did not answer within 0.3 s"


async def test_the_worker_serves_health_and_metrics(
    env: dict[str, str], fake: tuple[FakeTelegram, str], database_url: str, tmp_path: Path
) -> None:
    telegram, _ = fake
    await migrate(env)
    services = Services.build(make_settings(
        database_url, tmp_path, secret_key=parse_master_key(env["HOTLINE_SECRET_KEY"])))
    port = free_port()
    try:
        await services.engine.handle(Inbound("telegram", "4242", text="hi", message_id="1"))
        # This worker has no SMS client: the reply waits, and /metrics reads it from the database.
        await services.engine.handle(Inbound("sms", "+447700900123", text="hi", message_id="2"))
        process = await start("worker", "--port", str(port), env=env)
        try:
            await until(lambda: len(telegram.sent) == 1)
            async with aiohttp.ClientSession() as http:
                # The port opens before the sender starts, so it is open by now.
                async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
                    status, body = response.status, await response.json()
                async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
                    exposition = await response.text()
        finally:
            output = await stop(process)
    finally:
        await services.close()
    assert process.returncode == 0, output
    assert (status, body) == (200, {"ok": True, "database": "ok", "schema": head_revision()})
    families = {f.name: f for f in text_string_to_metric_families(exposition)}
    assert {"hotline_sends", "hotline_turn_seconds", "hotline_outbox_messages"} <= set(families)
    depth = {(s.labels["channel"], s.labels["status"]): s.value
             for s in families["hotline_outbox_messages"].samples}
    assert depth == {("sms", "queued"): 1, ("sms", "sending"): 0, ("sms", "failed"): 0}
    sends = {(s.labels["channel"], s.labels["result"]): s.value
             for s in families["hotline_sends"].samples}
    assert sends == {("telegram", "sent"): 1}
    assert "4242" not in output and "447700900123" not in output


async def ended(process: asyncio.subprocess.Process) -> str:
    return (await asyncio.wait_for(process.communicate(), 30))[0].decode()


async def test_a_worker_port_in_use_is_a_clear_error(env: dict[str, str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = await start("worker", "--port", str(port), env=env)
        output = await ended(process)
    assert process.returncode == 2
    assert f"hotline: cannot serve /healthz and /metrics on 127.0.0.1:{port}" in output
    assert "Traceback" not in output


async def test_a_wrong_worker_port_is_a_clear_error(env: dict[str, str]) -> None:
    process = await start("worker", env={**env, "WORKER_PORT": "eighty"})
    output = await ended(process)
    assert process.returncode == 2
    assert "WORKER_PORT) must be a port number from 0 to 65535, not 'eighty'" in output
