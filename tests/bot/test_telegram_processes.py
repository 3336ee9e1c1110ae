"""Telegram with real `hotline` processes: aiogram's client and dispatcher against the fake Bot
API on loopback, long polling and webhook, and a worker killed in the middle of sending."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from datetime import UTC
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import func, select, text

from bot.services import Services
from flows.engine import Inbound
from flows.i18n import translator
from storage.crypto import new_master_key, parse_master_key
from storage.db import create_engine
from storage.models import OutboxItem
from tests.conftest import make_settings, until
from tests.conftest import post_raw as raw_request
from tests.fakes.telegram import FakeTelegram, callback_update, message_update

HOTLINE = str(Path(sys.executable).with_name("hotline"))
SECRET = "webhook-secret-for-the-e2e-test"


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeTelegram, str]]:
    telegram = FakeTelegram()
    server = TestServer(telegram.app())
    await server.start_server()
    yield telegram, str(server.make_url("")).rstrip("/")
    await server.close()


@pytest.fixture
def env(tmp_path: Path, database_url: str, fake: tuple[FakeTelegram, str]) -> dict[str, str]:
    telegram, base = fake
    return {**os.environ, "DATA_DIR": str(tmp_path / "var"), "DATABASE_URL": database_url,
            "HOTLINE_SECRET_KEY": new_master_key(), "TELEGRAM_BOT_TOKEN": telegram.token,
            "TELEGRAM_API_BASE": base, "PYTHONUNBUFFERED": "1", "WORKER_PORT": "0"}


async def start(*args: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        HOTLINE, *args, env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)


async def stop(process: asyncio.subprocess.Process, sig: int = signal.SIGTERM) -> str:
    if process.returncode is None:
        process.send_signal(sig)
    output, _ = await asyncio.wait_for(process.communicate(), 30)
    return output.decode()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def serving(port: int, seconds: float = 30) -> None:
    """Wait until `hotline run` answers: it registers its webhook before it listens."""
    async with aiohttp.ClientSession() as http:
        for _ in range(int(seconds * 10)):
            try:
                async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("hotline run did not start listening")


async def migrate(env: dict[str, str]) -> None:
    process = await start("db", "upgrade", env=env)
    assert await process.wait() == 0


async def test_a_conversation_over_long_polling(
    env: dict[str, str], fake: tuple[FakeTelegram, str]
) -> None:
    telegram, _ = fake
    await migrate(env)
    process = await start("run", "--port", str(free_port()), env=env)
    try:
        chat = 987654321  # long enough not to turn up in a log line's timestamp, as 777 did
        telegram.push_update("message", message_update(chat, 1, "/start", language_code="ru"))
        await until(lambda: len(telegram.texts(chat)) == 1)
        assert "Выберите язык" in telegram.texts(chat)[0]
        telegram.push_update("callback_query", callback_update(chat, "q1", "ky"))
        await until(lambda: len(telegram.texts(chat)) == 2)
        assert telegram.texts(chat)[1] == translator("ky")(
            "Is it safe for you to get messages from us on this phone?")
        telegram.push_update("message", message_update(chat, 2, "SOS"))
        await until(lambda: len(telegram.texts(chat)) == 3)
        assert "112" in telegram.texts(chat)[2]
        assert telegram.violations == 0
    finally:
        log = await stop(process)
    assert "987654321" not in log and "SOS" not in log  # no chat id, no text in the log


def polls(requests: list[tuple[str, dict[str, object]]]) -> list[int]:
    """The offset of each getUpdates among these requests (0: none)."""
    return [int(str(params.get("offset") or 0)) for method, params in requests
            if method == "getUpdates"]


async def test_long_polling_answers_a_turn_the_database_refused_once_it_is_back(
    env: dict[str, str], fake: tuple[FakeTelegram, str], database_url: str
) -> None:
    """The database fails the turn (its messages table is gone for a while): the update is
    not confirmed to Telegram, comes back, and is answered once the database is back."""
    telegram, _ = fake
    await migrate(env)
    db = create_engine(database_url)

    async def rename(old: str, new: str) -> None:
        async with db.begin() as conn:
            await conn.execute(text(f"ALTER TABLE {old} RENAME TO {new}"))

    process = await start("run", "--port", str(free_port()), env=env)
    chat, restored = 987654321, True
    try:
        telegram.push_update("message", message_update(chat, 1, "/start", language_code="ru"))
        await until(lambda: len(telegram.texts(chat)) == 1)
        await rename("messages", "messages_away")
        restored = False
        asked = len(telegram.requests)
        sos = telegram.push_update("message", message_update(chat, 2, "SOS"))
        # The first poll after the push brought SOS and its turn failed, or there would be no
        # second.
        await until(lambda: len(polls(telegram.requests[asked:])) >= 2)
        before_commit = polls(telegram.requests)
        await rename("messages_away", "messages")
        restored = True
        await until(lambda: len(telegram.texts(chat)) == 2)
        assert "112" in telegram.texts(chat)[1]
        telegram.push_update("callback_query", callback_update(chat, "q1", "ky"))
        await until(lambda: len(telegram.texts(chat)) == 3)
        after_commit = polls(telegram.requests)[len(before_commit):]
    finally:
        if not restored:
            await rename("messages_away", "messages")
        await db.dispose()
        log = await stop(process)
    assert max(before_commit) == sos  # SOS was never confirmed while its turn failed
    assert sos + 1 in after_commit
    assert len(telegram.texts(chat)) == 3  # SOS was answered once
    assert "telegram update not processed (OperationalError)" in log or (
        "telegram update not processed (ProgrammingError)" in log)
    assert "Traceback" not in log and "987654321" not in log and "SOS" not in log


async def test_long_polling_waits_out_a_conflict_and_carries_on(
    env: dict[str, str], fake: tuple[FakeTelegram, str]
) -> None:
    """Telegram answers 409 while another process polls with the same token: logged by its
    kind, backed off, and polling resumes when it ends."""
    telegram, _ = fake
    telegram.fail_next("getUpdates", 409, "Conflict: terminated by other getUpdates request",
                       times=2)
    await migrate(env)
    process = await start("run", "--port", str(free_port()), env=env)
    try:
        telegram.push_update("message", message_update(987654321, 1, "/start"))
        await until(lambda: len(telegram.texts(987654321)) == 1)
    finally:
        log = await stop(process)
    assert process.returncode == 0
    assert log.count("(TelegramConflictError)") == 2 and "terminated by other" not in log


async def test_the_webhook_with_a_correct_and_a_forged_secret(
    env: dict[str, str], fake: tuple[FakeTelegram, str]
) -> None:
    telegram, _ = fake
    port = free_port()
    env = {**env, "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
           "TELEGRAM_WEBHOOK_SECRET": SECRET}
    await migrate(env)
    process = await start("run", "--port", str(port), env=env)
    try:
        await until(lambda: bool(telegram.webhook))
        await serving(port)
        assert telegram.webhook["url"] == f"http://127.0.0.1:{port}/webhooks/telegram"
        assert telegram.webhook["secret_token"] == SECRET
        update = {"update_id": 1, "message": message_update(55, 1, "hello")}
        async with aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{port}/webhooks/telegram"
            async with http.post(url, json=update, headers={
                    "X-Telegram-Bot-Api-Secret-Token": "forged-secret-0000000"}) as response:
                assert response.status == 401
            assert await post_raw(port, b"X-Telegram-Bot-Api-Secret-Token: \xe9\r\n",
                                  json.dumps(update).encode()) == 401
            async with http.post(url, data=b'{"update_id": 1, "message": {', headers={
                    "X-Telegram-Bot-Api-Secret-Token": SECRET}) as response:
                assert response.status == 400
            for _ in range(2):  # Telegram redelivers when it saw no answer
                async with http.post(url, json=update, headers={
                        "X-Telegram-Bot-Api-Secret-Token": SECRET}) as response:
                    assert response.status == 200
        await until(lambda: len(telegram.texts(55)) == 1)
        await asyncio.sleep(0.5)
        assert len(telegram.texts(55)) == 1
    finally:
        log = await stop(process)
    assert "Traceback" not in log  # the non-ASCII secret and the broken body were expected


async def post_raw(port: int, headers: bytes, body: bytes) -> int:
    return await raw_request("127.0.0.1", port, "/webhooks/telegram", headers, body)


async def test_a_webhook_without_a_secret_refuses_to_start(env: dict[str, str]) -> None:
    env = {**env, "PUBLIC_BASE_URL": "https://hotline.example.org"}
    process = await start("run", env=env)
    output = (await asyncio.wait_for(process.communicate(), 30))[0].decode()
    assert process.returncode == 2
    assert "TELEGRAM_WEBHOOK_SECRET is required" in output


async def test_a_worker_killed_mid_send_loses_nothing(
    env: dict[str, str], fake: tuple[FakeTelegram, str], database_url: str, tmp_path: Path
) -> None:
    telegram, _ = fake
    telegram.delay = 0.3  # slow answers: sends are in flight when the worker dies
    telegram.enforce_limits = False
    await migrate(env)
    settings = make_settings(database_url, tmp_path,
                             secret_key=parse_master_key(env["HOTLINE_SECRET_KEY"]))
    services = Services.build(settings)  # no Telegram here: only writes the outbox
    people = 40
    try:
        for chat in range(1, people + 1):
            await services.engine.handle(Inbound("telegram", str(chat), text="hi",
                                                 message_id=f"m{chat}"))
        env = {**env, "SENDER_LEASE_SECONDS": "5"}
        first = await start("worker", env=env)
        await until(lambda: len(telegram.requests) >= 5)
        await stop(first, signal.SIGKILL)
        second = await start("worker", env=env)
        await until(lambda: {m.chat_id for m in telegram.sent} == set(range(1, people + 1)),
                    seconds=60)

        async def unsent() -> int:
            async with services.db.connect() as conn:
                return int((await conn.execute(select(func.count()).select_from(OutboxItem)
                                               .where(OutboxItem.status != "sent"))).scalar_one())

        for _ in range(100):
            if await unsent() == 0:
                break
            await asyncio.sleep(0.1)
        await stop(second)
        async with services.db.connect() as conn:
            resends = int((await conn.execute(select(func.sum(OutboxItem.resends)))).scalar_one())
        assert await unsent() == 0
        duplicates = len(telegram.sent) - people
        # A message can reach a person twice only if it was in flight at the crash, and then
        # it is counted.
        assert 0 <= duplicates <= resends
    finally:
        await services.close()


async def test_two_workers_share_the_limit_and_send_everything_once(
    fake: tuple[FakeTelegram, str], tmp_path: Path, database_url: str
) -> None:
    """The issue's check: two worker processes on PostgreSQL drain 10,000 rows against a fake
    that enforces the bot's limit; every message arrives once and the limit is never exceeded
    (the fake would answer 429, or count a request inside a pause)."""
    from datetime import datetime

    from sqlalchemy import insert

    from storage.outbox import outbox_rows
    from storage.records import OutgoingReply
    if not database_url.startswith("postgresql"):
        pytest.skip("the issue asks this of PostgreSQL (SKIP LOCKED); SQLite has one writer")
    telegram, base = fake
    telegram.per_second = 200  # scaled up from Telegram's 30/s so 10,000 rows take a minute
    key = new_master_key()
    services = Services.build(make_settings(database_url, tmp_path,
                                            secret_key=parse_master_key(key)))
    rows, chats = 10_000, 1_000
    now = datetime.now(UTC)
    try:
        async with services.db.begin() as conn:
            await conn.execute(OutboxItem.__table__.delete())
            await conn.execute(insert(OutboxItem), [
                row for i in range(rows) for row in outbox_rows(
                    services.vault, channel="telegram", address=str(1 + i % chats),
                    address_hash=services.vault.keyed_hash("telegram", str(1 + i % chats)),
                    replies=[OutgoingReply(f"message {i}")], now=now, priority=10,
                    contact_id=None)])
        env = {**os.environ, "DATA_DIR": str(tmp_path / "var"), "DATABASE_URL": database_url,
               "HOTLINE_SECRET_KEY": key, "TELEGRAM_BOT_TOKEN": telegram.token,
               "TELEGRAM_API_BASE": base, "TELEGRAM_RATE_PER_SECOND": "200", "WORKER_PORT": "0"}
        workers = [await start("worker", env=env) for _ in range(2)]
        try:
            await until(lambda: len(telegram.sent) >= rows, seconds=300)
        finally:
            for worker in workers:
                await stop(worker)
        texts = [m.text for m in telegram.sent]
        assert len(texts) == len(set(texts)) == rows  # each message exactly once
        assert telegram.rate_limited == 0 and telegram.violations == 0
        by_chat: dict[int, list[str]] = {}
        for m in telegram.sent:
            by_chat.setdefault(m.chat_id, []).append(m.text)
        # One person's messages arrive in the order they were written.
        assert all(t == sorted(t, key=lambda x: int(x.split()[1])) for t in by_chat.values())
    finally:
        await services.close()
