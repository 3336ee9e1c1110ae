"""Fault injection: what production does to the sender and the engine. Each test reproduces a
defect the faults issue found (a lease shorter than a batch, a failed send overtaken by a later
reply, a poisoned row, a database error while settling, erasing while rows are claimed or a
farewell fails or a message is redelivered, a burst against a Bot API that counts every
one-second window) and checks it no longer happens. The fake Bot API answers on loopback; the
real aiogram client, engine, outbox and sender run."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import func, select, update

from bot.sender import SenderLoop
from bot.services import Services
from flows.engine import Inbound
from storage.erasure import registered
from storage.models import (
    Base,
    Contact,
    Conversation,
    ErasedKey,
    Message,
    OutboxItem,
    RateLimit,
)
from storage.records import OutgoingReply
from tests.conftest import Clock, make_settings, until
from tests.fakes.telegram import FakeTelegram

CHAT = 5150


@pytest.fixture
def fake() -> FakeTelegram:
    return FakeTelegram(enforce_limits=False)


@pytest.fixture
async def services(database_url: str, tmp_path: Path, fake: FakeTelegram
                   ) -> AsyncIterator[Services]:
    server = TestServer(fake.app())
    await server.start_server()
    built = Services.build(make_settings(
        database_url, tmp_path, telegram_bot_token=fake.token,
        telegram_api_base=str(server.make_url("")).rstrip("/")))
    yield built
    await built.close()
    await server.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def sender_for(services: Services, clock: Clock, **options: object) -> SenderLoop:
    return SenderLoop(services.sender, services.clients, clock=clock, **options)  # type: ignore[arg-type]


async def queue(services: Services, chat: int, *texts: str) -> None:
    for text in texts:
        await services.outbox.enqueue("telegram", str(chat), [OutgoingReply(text)],
                                      datetime.now(UTC))


async def count(services: Services, model: type[Base], *where: object) -> int:
    async with services.db.connect() as conn:
        stmt = select(func.count()).select_from(model).where(*where)  # type: ignore[arg-type]
        return int((await conn.execute(stmt)).scalar_one())


async def talk(services: Services, text: str, message_id: str) -> None:
    await services.engine.handle(Inbound("telegram", str(CHAT), text=text,
                                         message_id=message_id))


# --- exactly once, in order -----------------------------------------------------------------

async def test_a_batch_longer_than_its_lease_goes_out_once_with_two_workers(
    services: Services, fake: FakeTelegram, clock: Clock
) -> None:
    """8 people at 2 messages a second take 4 s; the lease is 1.5 s. The lease is renewed while
    the rows wait, so the second worker never takes them over."""
    services.clients["telegram"]._global_interval = 0.5  # type: ignore[attr-defined]
    for chat in range(1, 9):
        await queue(services, chat, f"to {chat}")
    stop = asyncio.Event()
    workers = [sender_for(services, clock, lease=timedelta(seconds=1.5), idle_wait=0.05)
               for _ in range(2)]
    runs = [asyncio.create_task(w.run(stop)) for w in workers]
    try:
        await until(lambda: len(fake.sent) >= 8)
        await asyncio.sleep(2.0)  # longer than a lease: nothing more may go
    finally:
        stop.set()
        await asyncio.gather(*runs)
    assert sorted(m.text for m in fake.sent) == sorted(f"to {c}" for c in range(1, 9))
    assert await count(services, OutboxItem, OutboxItem.status == "sent") == 8
    async with services.db.connect() as conn:
        assert (await conn.execute(select(func.sum(OutboxItem.resends)))).scalar() == 0


async def test_a_failed_send_holds_the_persons_later_messages_back(
    services: Services, fake: FakeTelegram, clock: Clock
) -> None:
    await queue(services, CHAT, "first question", "second question")
    fake.fail_next("sendMessage", 502, "Bad Gateway")
    sender = sender_for(services, clock)
    assert await sender.run_once() == 1  # only the first: one message of a person at a time
    assert fake.sent == []
    assert await sender.run_once() == 0  # the first waits to retry; the second waits for it
    clock.skip += timedelta(minutes=10)
    while await sender.run_once():
        pass
    assert fake.texts(CHAT) == ["first question", "second question"]


async def test_one_message_of_a_person_in_flight_across_workers_and_after_a_crash(
    services: Services,
) -> None:
    await queue(services, CHAT, "one", "two")
    await queue(services, CHAT + 1, "other person")
    now, lease = datetime.now(UTC), timedelta(seconds=1)
    a = await services.sender.claim(["telegram"], now, 10, lease, "a" * 32)
    assert sorted(c.reply.text for c in a.rows) == ["one", "other person"]
    b = await services.sender.claim(["telegram"], now, 10, lease, "b" * 32)
    assert b.rows == []  # "one" is in flight with worker a; "two" waits for it
    # Worker a dies without settling. Until its lease runs out nothing of that person goes.
    assert (await services.sender.claim(["telegram"], now + lease / 2, 10, lease,
                                        "b" * 32)).rows == []
    from storage.outbox import Settlement

    other = next(c for c in a.rows if c.reply.text == "other person")
    await services.sender.settle([Settlement(other.id, "a" * 32, "sent")], now)
    later = now + 2 * lease
    b = await services.sender.claim(["telegram"], later, 10, lease, "b" * 32)
    [taken] = b.rows
    assert (taken.reply.text, taken.taken_over) == ("one", True)
    # Worker a was only slow: its late answer cannot overwrite what b holds.
    await services.sender.settle([Settlement(taken.id, "a" * 32, "failed", error="late")],
                                 later)
    async with services.db.connect() as conn:
        status = (await conn.execute(
            select(OutboxItem.status).where(OutboxItem.id == taken.id))).scalar_one()
    assert status == "sending"
    await services.sender.settle([Settlement(taken.id, "b" * 32, "sent")], later)
    [two] = (await services.sender.claim(["telegram"], later, 10, lease, "c" * 32)).rows
    assert two.reply.text == "two"


async def test_an_unreadable_row_fails_alone(
    services: Services, fake: FakeTelegram, clock: Clock
) -> None:
    for chat in (1, 2, 3):
        await queue(services, chat, f"to {chat}")
    async with services.db.begin() as conn:  # damage, a wrong key, a newer release's format
        blob = (await conn.execute(select(OutboxItem.payload_enc)
                                   .where(OutboxItem.id == 2))).scalar_one()
        await conn.execute(update(OutboxItem).where(OutboxItem.id == 2)
                           .values(payload_enc=blob[:-1] + bytes([blob[-1] ^ 1])))
    sender = sender_for(services, clock)
    await sender.run_once()
    assert sorted(m.text for m in fake.sent) == ["to 1", "to 3"]
    async with services.db.connect() as conn:
        row = (await conn.execute(select(OutboxItem.status, OutboxItem.last_error)
                                  .where(OutboxItem.id == 2))).one()
    assert tuple(row) == ("failed", "unreadable: InvalidTag")
    assert await sender.run_once() == 0


async def test_a_database_error_while_settling_is_retried_not_sent_again(
    services: Services, fake: FakeTelegram, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    await queue(services, CHAT, "hello")
    real_settle, failures = services.sender.settle, [ConnectionError("database went away")]

    async def settle_failing_once(*args: object, **kwargs: object) -> None:
        if failures:
            raise failures.pop()
        await real_settle(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(services.sender, "settle", settle_failing_once)
    sender = sender_for(services, clock)
    assert await sender.run_once() == 1
    assert failures == []  # it did fail once
    assert await sender.run_once() == 0
    assert fake.texts(CHAT) == ["hello"]
    assert await count(services, OutboxItem, OutboxItem.status == "sent") == 1


# --- erase is complete --------------------------------------------------------------------------

async def nothing_about_the_person(services: Services) -> None:
    hash_hex = services.vault.keyed_hash("telegram", str(CHAT)).hex()
    for model in (Contact, Conversation, Message, OutboxItem):
        assert await count(services, model) == 0, model.__tablename__
    async with services.db.connect() as conn:
        scopes = (await conn.execute(select(RateLimit.scope))).scalars().all()
    assert not [s for s in scopes if hash_hex in s]


async def test_erase_with_a_failed_farewell_leaves_nothing(
    services: Services, fake: FakeTelegram, clock: Clock
) -> None:
    sender = sender_for(services, clock)
    await talk(services, "hello", "m1")
    await sender.run_once()
    await talk(services, "delete", "m2")
    await sender.run_once()
    await talk(services, "yes", "m3")
    fake.fail_next("sendMessage", 400, "Bad Request: chat not found")
    await sender.run_once()
    await nothing_about_the_person(services)
    assert len(fake.texts(CHAT)) == 2  # the farewell failed, and its row went with it


async def test_a_reply_claimed_before_the_erase_is_not_sent_after_it(
    services: Services, fake: FakeTelegram, clock: Clock
) -> None:
    sender = sender_for(services, clock)
    await talk(services, "hello", "m1")
    await sender.run_once()  # the chat's next slot is now a second away
    await talk(services, "delete", "m2")
    sending = asyncio.create_task(sender.run_once())  # claims the question, waits for its slot
    await until(lambda: bool(sender._leases))
    await talk(services, "yes", "m3")  # the person erases meanwhile
    await sending
    while await sender.run_once():
        pass
    texts = fake.texts(CHAT)
    assert len(texts) == 2 and "Delete your data?" not in texts[1]
    assert texts[1].startswith("Your data has been deleted.")
    await nothing_about_the_person(services)


async def test_a_redelivered_message_cannot_bring_an_erased_person_back(
    services: Services, fake: FakeTelegram, clock: Clock
) -> None:
    sender = sender_for(services, clock)
    for text, message_id in (("hello", "m1"), ("delete", "m2"), ("yes", "m3")):
        await talk(services, text, message_id)
        while await sender.run_once():
            pass
    await nothing_about_the_person(services)
    for text, message_id in (("yes", "m3"), ("delete", "m2"), ("hello", "m1")):
        await talk(services, text, message_id)  # the provider redelivers
    assert await count(services, Contact) == 0 and await count(services, OutboxItem) == 0
    # The keys name nobody and expire with the redelivery window (24 hours).
    await services.sender.purge(datetime.now(UTC) + timedelta(hours=25))
    assert await count(services, ErasedKey) == 0
    await talk(services, "hello again", "m4")  # a new message is a new conversation
    assert await count(services, Contact) == 1


def test_every_table_says_how_it_is_erased() -> None:
    erasers, nothing_personal = registered()
    tables = set(Base.metadata.tables) | {"alembic_version"}
    assert tables == set(erasers) | set(nothing_personal)


# --- rate limits in every one-second window ----------------------------------------------------

async def test_two_workers_keep_to_the_limit_in_every_second_after_a_pause_and_a_late_start(
    services: Services, fake: FakeTelegram, clock: Clock
) -> None:
    """The Bot API refuses the 33rd message in any one-second window; the bot is configured
    for 30 a second. One worker starts half a second late, and a 429 the schedule could not
    foresee (flood control) pauses everyone once."""
    fake.enforce_limits, fake.window_limit, fake.throttle_every = True, 32, 90
    for chat in range(1, 151):
        await queue(services, chat, f"to {chat}")
    stop = asyncio.Event()
    first = asyncio.create_task(sender_for(services, clock, idle_wait=0.05).run(stop))
    await asyncio.sleep(0.5)
    second = asyncio.create_task(sender_for(services, clock, idle_wait=0.05).run(stop))
    try:
        await until(lambda: len(fake.sent) >= 150, seconds=60)
    finally:
        stop.set()
        await asyncio.gather(first, second)
    assert sorted(m.text for m in fake.sent) == sorted(f"to {c}" for c in range(1, 151))
    forced = fake._send_count // fake.throttle_every
    assert forced >= 1 and fake.rate_limited == forced  # only the 429s flood control forced
    assert fake.violations == 0  # and nothing was sent inside a pause
