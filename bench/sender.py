"""Sender throughput against fakes of the Telegram Bot API, each fake in a process of its own.

1. An instant fake (no limits, no delay): messages per second through one sender process (the
   real aiogram client, the real outbox claims and settlements).
2. A fake that enforces Telegram's limits (30 messages/s per bot, 1/s per chat, 429 with
   retry_after beyond them): the share of the 30/s limit reached, 429s received, and requests
   made inside an announced pause (must be 0).
3. The same 30/s fake, now also refusing every 150th message with a 429 (retry_after 1 s) as
   Telegram's flood control does when it lowers a bot's limit, drained by two workers at once:
   each pause must stop both, so requests inside a pause should stay at 0 (a request already
   on its way when the other worker got the 429 would count).
4. A fake of Twilio that enforces a sender's rate in segments a second (10 here): the share of
   it reached, and 429s (error 20429).

    .venv/bin/python bench/sender.py --messages 5000 \
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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiohttp import web
from scratch import scratch_databases
from sqlalchemy import func, insert, select

from bot.sender import SenderLoop
from bot.services import Services
from bot.settings import Settings
from storage.models import OutboxItem
from storage.outbox import outbox_rows
from storage.records import OutgoingReply
from tests.fakes.telegram import FakeTelegram
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio

TOKEN = "123456:BENCH-TOKEN"
SMS_FROM = "+15005550006"
SMS_LIMIT = 10.0  # segments a second for the sender; Twilio sets it per number or service


def serve_fake(enforce: bool, ready: Any, stop: Any, kind: str = "telegram",
               throttle_every: int = 0) -> None:
    async def run() -> None:
        fake: Any = (
            FakeTelegram(token=TOKEN, enforce_limits=enforce, throttle_every=throttle_every)
            if kind == "telegram"
            else FakeTwilio(enforce_limits=enforce, segments_per_second=SMS_LIMIT)
        )
        runner = web.AppRunner(fake.app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        ready.send(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        await asyncio.get_running_loop().run_in_executor(None, stop.recv)
        times = [m.at for m in fake.sent]
        ready.send((len(fake.sent), fake.violations, fake.rate_limited, times))
        await runner.cleanup()

    asyncio.run(run())


async def fill(services: Services, count: int, chats: int, channel: str = "telegram") -> None:
    now = datetime.now(UTC)
    reply = OutgoingReply("Main menu. What do you need?", (("emergency", "Emergency numbers"),
                                                           ("settings", "Settings")))
    rows = []
    for i in range(count):
        chat = str(1000 + i % chats) if channel == "telegram" else f"+1500555{i % chats:04d}"
        rows += outbox_rows(services.vault, channel=channel, address=chat,
                            address_hash=services.vault.keyed_hash(channel, chat),
                            replies=[reply], now=now, priority=10, contact_id=None)
    async with services.db.begin() as conn:
        for start in range(0, len(rows), 1000):
            await conn.execute(insert(OutboxItem), rows[start:start + 1000])


async def run(database_url: str, count: int, chats: int, enforce: bool,
              per_second: float, per_chat: float, kind: str = "telegram",
              throttle_every: int = 0, workers: int = 1) -> tuple[float, int, int, int, float]:
    context = multiprocessing.get_context("spawn")
    ready_recv, ready_send = context.Pipe(duplex=False)
    stop_recv, stop_send = context.Pipe(duplex=False)
    server = context.Process(target=serve_fake, daemon=True,
                             args=(enforce, ready_send, stop_recv, kind, throttle_every))
    server.start()
    port = await asyncio.to_thread(ready_recv.recv)
    channel: dict[str, Any] = (
        {"telegram_bot_token": TOKEN, "telegram_api_base": f"http://127.0.0.1:{port}",
         "telegram_per_second": per_second, "telegram_per_chat_per_second": per_chat}
        if kind == "telegram" else
        {"public_base_url": "https://hotline.example.org", "twilio_account_sid": ACCOUNT_SID,
         "twilio_auth_token": AUTH_TOKEN, "twilio_from": SMS_FROM,
         "twilio_api_base": f"http://127.0.0.1:{port}", "twilio_segments_per_second": per_second}
    )
    settings = Settings(database_url=database_url, secret_key=os.urandom(32),
                        data_dir=Path(tempfile.mkdtemp(prefix="bench-")), **channel)
    services = Services.build(settings)
    await fill(services, count, chats, "telegram" if kind == "telegram" else "sms")
    started = time.perf_counter()
    # The production loop (`SenderLoop.run`), each worker with its own engine and pool, as
    # separate processes would have: what they share goes through the database (claims, the
    # schedule, pauses).
    others = [Services.build(settings) for _ in range(workers - 1)]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(SenderLoop(s.sender, s.clients, batch=500 if workers == 1
                                            else 100, idle_wait=0.05).run(stop))
             for s in (services, *others)]
    while await _unsent(services):
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.gather(*tasks)
    for other in others:
        await other.close()
    elapsed = time.perf_counter() - started
    await services.close()
    stop_send.send("stop")
    sent, violations, limited, times = await asyncio.to_thread(ready_recv.recv)
    server.join(10)
    # The steady rate: messages per second between the first and the last the fake accepted.
    steady = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
    return count / elapsed, sent, violations, limited, steady


async def _unsent(services: Services) -> int:
    # A connection of its own each time: on SQLite an open read would hold the write lock.
    async with services.db.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(OutboxItem)
                                       .where(OutboxItem.status != "sent"))).scalar_one())


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--limited-messages", type=int, default=600)
    parser.add_argument("--sms-messages", type=int, default=200)
    parser.add_argument("--postgres", default=os.environ.get("TEST_DATABASE_URL"))
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, {platform.platform()}\n")
    async for name, url in scratch_databases(args.postgres):
        rate, sent, *_ = await run(url, args.messages, 500, False, 100_000, 100_000)
        print(f"{name:10s} instant fake : {rate:7.0f} msg/s ({sent} sent, "
              f"{args.messages} queued)")
        rate, sent, violations, limited, steady = await run(
            url, args.limited_messages, 60, True, 30.0, 1.0)
        print(f"{name:10s} 30/s limit   : {steady:5.1f} msg/s steady = {steady / 30:.0%} "
              f"of the limit; 429s {limited}, requests inside a pause {violations}")
        rate, sent, violations, limited, steady = await run(
            url, args.limited_messages, 60, True, 30.0, 1.0, throttle_every=150, workers=2)
        print(f"{name:10s} 30/s, flood control, 2 workers: {steady:5.1f} msg/s steady; "
              f"429s {limited} (forced), requests inside a pause {violations}, "
              f"{sent} sent of {args.limited_messages}")
        # The menu is 62 GSM-7 characters plus choices: one segment per message.
        rate, sent, violations, limited, steady = await run(
            url, args.sms_messages, 50, True, SMS_LIMIT, 1.0, kind="twilio")
        print(f"{name:10s} SMS {SMS_LIMIT:.0f} seg/s: {steady:5.1f} seg/s steady = "
              f"{steady / SMS_LIMIT:.0%} of the limit; 429s {limited}, "
              f"requests inside a pause {violations}")


if __name__ == "__main__":
    asyncio.run(main())
