"""Inbound throughput: the simulator channel's full path against a bare aiogram dispatcher.

Ours: an HTTP POST to /api/simulator/messages on a loopback server -> engine (keywords, step,
choice matching, translation) -> one transaction (lock, dedupe, state, message log, outbox) ->
delivery from the outbox -> JSON response. Theirs: aiogram's Dispatcher with in-memory FSM
storage parsing the same number of Telegram updates (feed_raw_update) and answering each from a
handler that moves an FSM state, with no database and no HTTP (the design's baseline); and the
same dispatcher behind aiogram's own aiohttp webhook handler in a process of its own, driven by
the same load generator as ours (like for like: HTTP on both sides, no database on theirs).

Both serve USERS people at once, each person's messages one after another, walking the same
conversation: welcome (language, safety, country), then menu and settings back and forth.

    .venv/bin/python bench/inbound.py --messages 3000 --users 30 \
        [--postgres postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import platform
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
from aiogram import Bot, Dispatcher, F, Router
from aiogram.filters import CommandStart
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.fsm.storage.memory import MemoryStorage
from aiogram.types import Message
from aiohttp import web
from scratch import scratch_databases
from sqlalchemy import event

from bot.services import Services
from bot.settings import Settings
from bot.web.app import create_app

WELCOME = ["hi", "1", "1", "ES"]
LOOP = ["2", "5", "1", "2", "1", "ru", "2", "5"]  # settings, menu, emergency, language...


def script(n: int) -> list[str]:
    return (WELCOME + LOOP * (n // len(LOOP) + 1))[:n]


# --- ours -------------------------------------------------------------------------------------


class RoundTrips:
    """Counts what goes to the database: statements, and BEGIN/COMMIT where the driver sends
    them itself (asyncpg). SQLite's BEGIN IMMEDIATE is already a statement; an autocommit
    connection sends neither."""

    def __init__(self, engine: Any) -> None:
        self.count = 0
        sync = engine.sync_engine
        event.listen(sync, "before_cursor_execute", self._statement)
        event.listen(sync, "commit", self._transaction)
        event.listen(sync, "rollback", self._transaction)
        if engine.dialect.name != "sqlite":
            event.listen(sync, "begin", self._transaction)

    def _statement(self, *_: Any) -> None:
        self.count += 1

    def _transaction(self, conn: Any) -> None:
        if conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
            self.count += 1


TELEGRAM_TOKEN = "42:BENCHMARK"
TELEGRAM_SECRET = "bench-webhook-secret-0123456789"


def serve(database_url: str, ready: Any, stop: Any, telegram: bool = False) -> None:
    """The server, in a process of its own as in production: it shares no core with the
    load generator. Reports its port, then, when told to stop, the round trips counted."""

    async def run() -> None:
        webhook = (
            {"telegram_bot_token": TELEGRAM_TOKEN, "public_base_url": "https://bench.invalid",
             "telegram_webhook_secret": TELEGRAM_SECRET}
            if telegram else {}
        )
        settings = Settings(database_url=database_url, secret_key=bytes(32),
                            data_dir=Path(tempfile.mkdtemp(prefix="bench-")), **webhook)
        services = Services.build(settings)
        trips = RoundTrips(services.db)
        # Inbound only: no sender (replies wait in the outbox) and no webhook registration.
        runner = web.AppRunner(create_app(services, background=False), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        ready.send(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        loop = asyncio.get_running_loop()
        while True:
            command = await loop.run_in_executor(None, stop.recv)
            if command == "reset":
                trips.count = 0
                cpu_started = time.process_time()
            else:
                ready.send((trips.count, time.process_time() - cpu_started))
                break
        await runner.cleanup()

    if os.environ.get("BENCH_PROFILE"):  # where the server's time goes, for tuning
        import cProfile

        cProfile.runctx("asyncio.run(run())", globals(), locals(), os.environ["BENCH_PROFILE"])
    else:
        asyncio.run(run())


async def run_ours(database_url: str, messages: int, users: int, telegram: bool = False
                   ) -> tuple[float, float, float]:
    context = multiprocessing.get_context("spawn")
    ready_recv, ready_send = context.Pipe(duplex=False)
    stop_recv, stop_send = context.Pipe(duplex=False)
    server = context.Process(target=serve, args=(database_url, ready_send, stop_recv, telegram),
                             daemon=True)
    server.start()
    port = await asyncio.to_thread(ready_recv.recv)
    path = "/webhooks/telegram" if telegram else "/api/simulator/messages"
    url = f"http://127.0.0.1:{port}{path}"
    per_user = messages // users
    connector = aiohttp.TCPConnector(limit=users)
    chat_ids = iter(range(10**6, 10**7))
    async with aiohttp.ClientSession(connector=connector) as session:

        async def person(n: int) -> None:
            user = f"bench-{uuid.uuid4()}"
            chat = next(chat_ids)
            for i, said in enumerate(script(per_user)):
                if telegram:
                    update = {"update_id": chat * 1000 + i, "message": {
                        "message_id": i + 1, "date": 1767225600, "text": said,
                        "chat": {"id": chat, "type": "private"},
                        "from": {"id": chat, "is_bot": False, "first_name": "A"}}}
                    async with session.post(url, json=update, headers={
                            "X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET}) as response:
                        assert response.status == 200, await response.text()
                    continue
                async with session.post(url, json={"user": user, "text": said, "channel": "sms",
                                                   "message_id": f"{user}-{i}"}) as response:
                    body = await response.json()
                    assert response.status == 200 and len(body["replies"]) == 1, body

        await person(-1)  # warm caches (prepared statements, catalogs)
        stop_send.send("reset")
        started = time.perf_counter()
        await asyncio.gather(*(person(n) for n in range(users)))
        elapsed = time.perf_counter() - started
    stop_send.send("stop")
    trips, server_cpu = await asyncio.to_thread(ready_recv.recv)
    server.join(30)
    done = per_user * users
    return done / elapsed, trips / done, server_cpu / elapsed


# --- theirs -----------------------------------------------------------------------------------


class Welcome(StatesGroup):
    language = State()
    safety = State()
    country = State()
    menu = State()
    settings = State()


def aiogram_dispatcher() -> Dispatcher:
    router = Router()

    @router.message(CommandStart())
    @router.message(F.text, ~F.text.in_({"1", "2", "5", "ES", "ru"}), Welcome.menu)
    async def greet(message: Message, state: FSMContext) -> Any:
        await state.set_state(Welcome.language)
        return message.answer("Choose your language:\n1. English\n2. Русский")

    @router.message(Welcome.language)
    async def language(message: Message, state: FSMContext) -> Any:
        await state.update_data(language=message.text)
        await state.set_state(Welcome.safety)
        return message.answer("Is it safe for you to get messages from us on this phone?")

    @router.message(Welcome.safety)
    async def safety(message: Message, state: FSMContext) -> Any:
        await state.set_state(Welcome.country)
        return message.answer("Which country are you in now?")

    @router.message(Welcome.country)
    async def country(message: Message, state: FSMContext) -> Any:
        await state.set_state(Welcome.menu)
        return message.answer("Main menu. What do you need?\n1. Emergency numbers\n2. Settings")

    @router.message(Welcome.menu)
    async def menu(message: Message, state: FSMContext) -> Any:
        if message.text == "2":
            await state.set_state(Welcome.settings)
            return message.answer("Settings. What would you like to change?")
        return message.answer("If you are in danger now, call: 112")

    @router.message(Welcome.settings)
    async def settings(message: Message, state: FSMContext) -> Any:
        await state.set_state(Welcome.menu)
        return message.answer("Main menu. What do you need?")

    @router.message()
    async def first(message: Message, state: FSMContext) -> Any:
        await state.set_state(Welcome.language)
        return message.answer("Choose your language:")

    dispatcher = Dispatcher(storage=MemoryStorage())
    dispatcher.include_router(router)
    return dispatcher


async def run_aiogram(messages: int, users: int) -> float:
    dispatcher = aiogram_dispatcher()
    bot = Bot("42:BENCHMARK")
    per_user = messages // users
    update_id = 0

    async def person(chat_id: int) -> None:
        nonlocal update_id
        for i, said in enumerate(script(per_user)):
            update_id += 1
            raw = {
                "update_id": update_id,
                "message": {
                    "message_id": i + 1, "date": 1767225600, "text": said,
                    "chat": {"id": chat_id, "type": "private"},
                    "from": {"id": chat_id, "is_bot": False, "first_name": "A",
                             "language_code": "en"},
                },
            }
            result = await dispatcher.feed_raw_update(bot, raw)
            assert result is not None

    await person(10**9)
    started = time.perf_counter()
    await asyncio.gather(*(person(n + 1) for n in range(users)))
    elapsed = time.perf_counter() - started
    await bot.session.close()
    return per_user * users / elapsed


def serve_aiogram_webhook(ready: Any, stop: Any) -> None:
    """aiogram's own webhook handler on aiohttp, answering in the HTTP response, in-memory FSM."""
    from aiogram.webhook.aiohttp_server import SimpleRequestHandler

    async def run() -> None:
        bot = Bot("42:BENCHMARK")
        app = web.Application()
        SimpleRequestHandler(aiogram_dispatcher(), bot, handle_in_background=False).register(
            app, path="/webhook")
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        ready.send(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        await asyncio.get_running_loop().run_in_executor(None, stop.recv)
        await runner.cleanup()
        await bot.session.close()

    asyncio.run(run())


async def run_aiogram_webhook(messages: int, users: int) -> float:
    context = multiprocessing.get_context("spawn")
    ready_recv, ready_send = context.Pipe(duplex=False)
    stop_recv, stop_send = context.Pipe(duplex=False)
    server = context.Process(target=serve_aiogram_webhook, args=(ready_send, stop_recv),
                             daemon=True)
    server.start()
    port = await asyncio.to_thread(ready_recv.recv)
    url = f"http://127.0.0.1:{port}/webhook"
    per_user = messages // users
    update_id = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=users)) as session:

        async def person(chat_id: int) -> None:
            nonlocal update_id
            for i, said in enumerate(script(per_user)):
                update_id += 1
                update = {"update_id": update_id, "message": {
                    "message_id": i + 1, "date": 1767225600, "text": said,
                    "chat": {"id": chat_id, "type": "private"},
                    "from": {"id": chat_id, "is_bot": False, "first_name": "A"}}}
                async with session.post(url, json=update) as response:
                    # aiogram answers a webhook with the method as multipart/form-data.
                    body = await response.read()
                    assert response.status == 200 and b"sendMessage" in body, body

        await person(10**9)
        started = time.perf_counter()
        await asyncio.gather(*(person(n + 1) for n in range(users)))
        elapsed = time.perf_counter() - started
    stop_send.send("stop")
    server.join(30)
    return per_user * users / elapsed


# --- report -----------------------------------------------------------------------------------


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--users", type=int, default=30)
    parser.add_argument("--postgres", default=os.environ.get("TEST_DATABASE_URL"),
                        help="a PostgreSQL server URL; a scratch database is made and dropped")
    args = parser.parse_args()

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, {platform.platform()}")
    print(f"{args.messages} messages from {args.users} people at once\n")
    baseline = await run_aiogram(args.messages, args.users)
    print(f"aiogram Dispatcher + MemoryStorage : {baseline:9.0f} msg/s  (feed_raw_update, "
          "no HTTP: the design's baseline)")
    webhook = await run_aiogram_webhook(args.messages, args.users)
    print(f"aiogram webhook over HTTP, memory  : {webhook:9.0f} msg/s  (own process, same "
          "load generator as ours)")
    async for name, url in scratch_databases(args.postgres):
        for path, telegram in (("simulator", False), ("telegram webhook", True)):
            rate, trips, busy = await run_ours(url, args.messages, args.users, telegram)
            print(f"hotline {path:16s}, {name:10s}: {rate:6.0f} msg/s  "
                  f"ratio {rate / baseline:5.3f} (vs aiogram webhook {rate / webhook:5.3f})"
                  f"  round trips/msg {trips:4.1f}  server CPU {busy:4.0%} of a core")


if __name__ == "__main__":
    asyncio.run(main())
