"""Telegram end to end in one process: the fake Bot API on loopback, aiogram's real client and
dispatcher, our webhook handler and long polling, the engine, the outbox and the sender."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select, text

from bot.channels.render import split_text
from bot.channels.telegram import ALLOWED_UPDATES, MAX_TEXT, TelegramClient, telegram_dispatcher
from bot.channels.telegram_polling import TelegramPoller
from bot.sender import SenderLoop
from bot.services import Services
from flows.engine import Engine, Handled, Inbound
from flows.i18n import translator
from storage.models import Contact, OutboxItem, RateLimit
from tests.conftest import Clock, make_settings, until
from tests.conftest import post_raw as raw_request
from tests.fakes.telegram import FakeTelegram, callback_update, message_update

SECRET = "s3cret-token-for-tests-0123456789"
CHAT = 4242


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    yield FakeTelegram(enforce_limits=False)


@pytest.fixture
async def api(fake: FakeTelegram) -> AsyncIterator[TestServer]:
    server = TestServer(fake.app())
    await server.start_server()
    yield server
    await server.close()


@pytest.fixture
async def services(database_url: str, tmp_path: Path, fake: FakeTelegram,
                   api: TestServer) -> AsyncIterator[Services]:
    built = Services.build(make_settings(
        database_url, tmp_path, telegram_bot_token=fake.token,
        telegram_api_base=str(api.make_url("")).rstrip("/"),
        public_base_url="https://hotline.example.org", telegram_webhook_secret=SECRET,
    ))
    yield built
    await built.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sender(services: Services, clock: Clock) -> SenderLoop:
    return SenderLoop(services.sender, services.clients, clock=clock, max_attempts=3)


async def deliver(client: TestClient, kind: str, payload: dict, update_id: int,
                  secret: str | None = SECRET) -> int:
    headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret is not None else {}
    response = await client.post("/webhooks/telegram", json={"update_id": update_id,
                                                               kind: payload}, headers=headers)
    return response.status


async def contacts(services: Services) -> int:
    async with services.db.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(Contact))).scalar_one())


async def test_the_webhook_needs_the_secret_token(client: TestClient, services: Services) -> None:
    assert await deliver(client, "message", message_update(CHAT, 1, "hi"), 1, None) == 401
    assert await deliver(client, "message", message_update(CHAT, 1, "hi"), 1, "wrong" * 8) == 401
    assert await contacts(services) == 0
    assert await deliver(client, "message", message_update(CHAT, 1, "hi"), 1) == 200
    assert await contacts(services) == 1


async def test_a_conversation_with_buttons(
    client: TestClient, sender: SenderLoop, fake: FakeTelegram
) -> None:
    assert await deliver(client, "message", message_update(CHAT, 1, "/start"), 1) == 200
    assert await sender.run_once() == 1
    assert "Choose your language:" in fake.texts(CHAT)[-1]
    assert ["ru"] in fake.buttons(CHAT)
    assert await deliver(client, "callback_query", callback_update(CHAT, "q1", "ru"), 2) == 200
    await sender.run_once()
    ru = translator("ru")
    assert fake.texts(CHAT)[-1] == ru("Is it safe for you to get messages from us on this phone?")
    assert fake.buttons(CHAT) == [["yes"], ["no"], ["unsure"]]


async def test_a_redelivered_update_is_answered_once(
    client: TestClient, sender: SenderLoop, fake: FakeTelegram
) -> None:
    for _ in range(3):
        assert await deliver(client, "message", message_update(CHAT, 7, "hello"), 70) == 200
    await sender.run_once()
    assert len(fake.texts(CHAT)) == 1


async def test_a_deep_link_chooses_the_language(
    client: TestClient, sender: SenderLoop, fake: FakeTelegram
) -> None:
    await deliver(client, "message", message_update(CHAT, 1, "/start uk"), 1)
    await sender.run_once()
    assert fake.texts(CHAT) == [
        translator("uk")("Is it safe for you to get messages from us on this phone?")]


async def test_a_deep_link_leads_to_a_flow(
    client: TestClient, sender: SenderLoop, fake: FakeTelegram
) -> None:
    await deliver(client, "message", message_update(CHAT, 1, "/start ky-emergency"), 1)
    await sender.run_once()
    [text] = fake.texts(CHAT)
    ky = translator("ky")
    assert text.startswith(ky("If you are in danger now, call:")) and "112" in text
    assert text.endswith(ky("Is it safe for you to get messages from us on this phone?"))


async def test_updates_without_text_get_a_polite_answer(
    client: TestClient, sender: SenderLoop, fake: FakeTelegram
) -> None:
    sticker = {"file_id": "f", "file_unique_id": "u", "type": "regular", "width": 512,
               "height": 512, "is_animated": False, "is_video": False}
    assert await deliver(client, "message", message_update(CHAT, 1, sticker=sticker), 1) == 200
    voice = {"file_id": "v", "file_unique_id": "w", "duration": 3}
    assert await deliver(client, "message", message_update(CHAT, 2, voice=voice), 2) == 200
    edited = message_update(CHAT, 3, "hi", edit_date=1767225700)
    assert await deliver(client, "edited_message", edited, 3) == 200
    while await sender.run_once():  # one message of a person at a time, in order
        pass
    texts = fake.texts(CHAT)
    assert len(texts) == 3
    assert all("I can only read text messages" in t for t in texts)


async def test_a_person_who_blocks_the_bot_is_stopped_until_start(
    client: TestClient, sender: SenderLoop, fake: FakeTelegram, services: Services
) -> None:
    await deliver(client, "message", message_update(CHAT, 1, "hi"), 1)
    fake.blocked.add(CHAT)
    await sender.run_once()
    async with services.db.connect() as conn:
        status = (await conn.execute(select(Contact.status))).scalar_one()
        row = (await conn.execute(select(OutboxItem.status, OutboxItem.last_error))).one()
    assert status == "stopped"
    assert row.status == "failed" and "blocked" in row.last_error
    fake.blocked.clear()
    await deliver(client, "message", message_update(CHAT, 2, "/start"), 2)
    await sender.run_once()
    assert "Choose your language:" in fake.texts(CHAT)[-1]
    async with services.db.connect() as conn:
        assert (await conn.execute(select(Contact.status))).scalar_one() == "active"


async def test_blocking_reported_by_telegram_stops_the_contact(
    client: TestClient, services: Services
) -> None:
    await deliver(client, "message", message_update(CHAT, 1, "hi"), 1)
    member = {"chat": {"id": CHAT, "type": "private"},
              "from": {"id": CHAT, "is_bot": False, "first_name": "A"}, "date": 1767225600,
              "old_chat_member": {"status": "member",
                                  "user": {"id": 1, "is_bot": True, "first_name": "B"}},
              "new_chat_member": {"status": "kicked", "until_date": 0,
                                  "user": {"id": 1, "is_bot": True, "first_name": "B"}}}
    assert await deliver(client, "my_chat_member", member, 2) == 200
    async with services.db.connect() as conn:
        assert (await conn.execute(select(Contact.status))).scalar_one() == "stopped"


async def test_429_pauses_sending_and_the_message_goes_later(
    client: TestClient, sender: SenderLoop, fake: FakeTelegram, clock: Clock,
    services: Services,
) -> None:
    fake.retry_after = 2
    await deliver(client, "message", message_update(CHAT, 1, "hi"), 1)
    fake.fail_next("sendMessage", 429, "Too Many Requests: retry after 2")
    await sender.run_once()
    assert fake.texts(CHAT) == []
    async with services.db.connect() as conn:
        row = (await conn.execute(select(OutboxItem.status, OutboxItem.next_attempt_at))).one()
    assert row.status == "queued"
    due = row.next_attempt_at.replace(tzinfo=row.next_attempt_at.tzinfo or UTC)
    assert timedelta(seconds=1) < due - clock.now <= timedelta(seconds=3)
    assert await sender.run_once() == 0  # not due yet
    clock.skip += timedelta(seconds=3)
    await sender.run_once()
    assert len(fake.texts(CHAT)) == 1


async def test_server_errors_are_retried_then_failed_with_the_reason(
    client: TestClient, sender: SenderLoop, fake: FakeTelegram, clock: Clock,
    services: Services,
) -> None:
    await deliver(client, "message", message_update(CHAT, 1, "hi"), 1)
    fake.fail_next("sendMessage", 502, "Bad Gateway", times=3)
    for _ in range(3):
        await sender.run_once()
        clock.skip += timedelta(minutes=10)
    async with services.db.connect() as conn:
        row = (await conn.execute(select(OutboxItem.status, OutboxItem.last_error,
                                         OutboxItem.attempts))).one()
    assert (row.status, row.attempts) == ("failed", 3)
    assert "gave up after 3 attempts" in row.last_error and "Bad Gateway" in row.last_error
    assert fake.texts(CHAT) == []


async def test_a_bad_request_is_not_retried(
    client: TestClient, sender: SenderLoop, fake: FakeTelegram, services: Services
) -> None:
    await deliver(client, "message", message_update(CHAT, 1, "hi"), 1)
    fake.fail_next("sendMessage", 400, "Bad Request: chat not found")
    await sender.run_once()
    async with services.db.connect() as conn:
        row = (await conn.execute(select(OutboxItem.status, OutboxItem.last_error,
                                         OutboxItem.attempts))).one()
    assert (row.status, row.attempts) == ("failed", 1)
    assert "chat not found" in row.last_error


def test_long_replies_split_at_paragraphs() -> None:
    paragraph = "word " * 300  # 1,500 characters
    text = "\n\n".join([paragraph.strip()] * 5)
    parts = split_text(text, MAX_TEXT)
    assert len(parts) == 3
    assert all(len(p) <= 4096 for p in parts)
    assert "\n\n".join(parts) == text
    assert split_text("x" * 5000, MAX_TEXT) == ["x" * 4096, "x" * 904]


async def test_html_is_escaped_and_long_text_is_sent_in_parts(
    services: Services, fake: FakeTelegram
) -> None:
    from storage.outbox import Claimed
    from storage.records import OutgoingReply

    client = services.clients["telegram"]
    assert isinstance(client, TelegramClient)
    reply = OutgoingReply("a <b>bold</b> & claim\n\n" + "y" * 5000, (("yes", "Yes"),))
    item = Claimed(1, "telegram", str(CHAT), b"h", None, reply, 1, False)
    result = await client.send(item)
    assert result.provider_id == "2"  # type: ignore[union-attr]
    first, second = fake.sent
    assert first.text.startswith("a &lt;b&gt;bold&lt;/b&gt; &amp; claim")
    assert first.reply_markup is None and second.reply_markup is not None
    assert client.cost(item) == 2


async def test_the_shared_schedule_spaces_sends_and_honours_pauses(services: Services) -> None:
    from bot.ratelimit import SendPlanner
    from storage.ratelimits import SharedSchedule

    now = [1000.0]
    planner = SendPlanner(SharedSchedule(services.db), clock=lambda: now[0])
    bot, chat_a, chat_b = ("bot", 0.1), ("chat:a", 1.0), ("chat:b", 1.0)
    times = await planner.plan([(1, [bot, chat_a], 1), (2, [bot, chat_b], 1),
                                (3, [bot, chat_a], 1)])
    assert times[1] == pytest.approx(1000.0)
    assert times[2] == pytest.approx(1000.1)  # the bot's interval
    assert times[3] == pytest.approx(1001.0)  # chat a's interval
    # Another worker's batch is booked after everything this one planned.
    other = SendPlanner(SharedSchedule(services.db), clock=lambda: now[0])
    assert (await other.plan([(4, [bot, chat_b], 1)]))[4] >= 1001.1 - 1e-6
    await planner.pause("bot", 30)
    assert (await other.plan([(5, [("bot", 0.1)], 1)]))[5] >= 1030.0 - 1e-6


async def test_sends_planned_before_a_pause_book_new_slots_after_it(
    services: Services
) -> None:
    """Slots booked before a pause are void: the sends go after it one slot apart, not all at
    once when it ends (which would hit the limit again), and a worker that hears of the pause
    late voids its own plan the same way."""
    from bot.ratelimit import SendPlanner
    from storage.ratelimits import SharedSchedule

    now = [1000.0]
    planner = SendPlanner(SharedSchedule(services.db), clock=lambda: now[0])
    bot = [("bot", 0.1)]
    times = await planner.plan([(i, bot, 1) for i in range(5)])
    assert [round(times[i], 3) for i in range(5)] == [1000.0, 1000.1, 1000.2, 1000.3, 1000.4]
    late = SendPlanner(SharedSchedule(services.db), clock=lambda: now[0])
    late_times = await late.plan([(9, bot, 1)])  # another worker's booking, at 1000.5
    now[0] = 1000.05  # the first went; the second is waiting
    await planner.pause("bot", 1.0)
    planner.hear("bot", 1001.05, 1.0)  # the same pause, as another worker's NOTIFY brings it
    assert planner.voided(bot, planned_at=1000.0)
    assert not late.voided(bot, planned_at=1000.0)  # it has not heard yet
    now[0] = 1000.3
    late.hear("bot", 1001.05, 1.0)
    assert late.voided(bot, planned_at=1000.0) and late_times[9] == pytest.approx(1000.5)
    # Booked again, in turn: the schedule restarted at the pause's end.
    now[0] = 1001.1
    again = [(await planner.plan([(i, bot, 1)]))[i] for i in range(1, 5)]
    again.append((await late.plan([(9, bot, 1)]))[9])
    assert [round(t, 3) for t in again] == [1001.1, 1001.2, 1001.3, 1001.4, 1001.5]
    assert not planner.voided(bot, planned_at=1001.1)


async def test_messages_held_back_behind_a_failure_keep_their_attempts(
    client: TestClient, sender: SenderLoop, fake: FakeTelegram, services: Services
) -> None:
    await deliver(client, "message", message_update(CHAT, 1, "hi"), 1)
    await deliver(client, "message", message_update(CHAT, 2, "sos"), 2)
    fake.fail_next("sendMessage", 502, "Bad Gateway")
    await sender.run_once()
    async with services.db.connect() as conn:
        rows = (await conn.execute(select(OutboxItem.attempts, OutboxItem.status)
                                   .order_by(OutboxItem.id))).all()
    assert [tuple(r) for r in rows] == [(1, "queued"), (0, "queued")]
    assert fake.texts(CHAT) == []  # the second did not overtake the first


async def test_a_pause_announced_by_one_worker_stops_another_mid_batch(
    database_url: str, tmp_path: Path, services: Services, fake: FakeTelegram, api: TestServer
) -> None:
    """Worker B has planned a batch (5 a second) and is sending it when worker A announces a
    pause, as after a 429 caused outside our schedule (another process on the same token, a
    lower limit than configured). Once B has heard it, B sends nothing until it ends; a worker
    that starts during the pause knows it from the start."""
    import time

    from bot.channels.telegram import GLOBAL_SCOPE
    from bot.ratelimit import SendPlanner

    def second_worker() -> Services:
        return Services.build(make_settings(
            database_url, tmp_path, telegram_bot_token=fake.token,
            telegram_api_base=str(api.make_url("")).rstrip("/"), telegram_per_second=5.0,
        ))

    b, late = second_worker(), second_worker()
    planner_a = SendPlanner(services.sender.shared_schedule())
    planner_b = SendPlanner(b.sender.shared_schedule())
    released: list[float] = []  # when B let each send go (just after its pause check)
    client_b = b.clients["telegram"]
    real_send = client_b.send

    async def recorded_send(item):  # type: ignore[no-untyped-def]
        released.append(time.time())
        return await real_send(item)

    client_b.send = recorded_send  # type: ignore[method-assign]
    halt = asyncio.Event()
    follow = asyncio.create_task(planner_b.follow_pauses(halt))
    follow_late = follow
    try:
        now = datetime.now(UTC)
        await queue(b, [(chat, f"bulk {chat}") for chat in range(1, 11)], now)
        batch = asyncio.create_task(SenderLoop(b.sender, b.clients, planner=planner_b).run_once())
        await until(lambda: len(released) >= 2)  # B is mid-batch
        await planner_a.pause(GLOBAL_SCOPE, 3.0)
        pause_end = planner_a.paused_until(GLOBAL_SCOPE)
        await until(lambda: planner_b.paused_until(GLOBAL_SCOPE) >= pause_end)
        heard = time.time()
        planner_late = SendPlanner(late.sender.shared_schedule())
        follow_late = asyncio.create_task(planner_late.follow_pauses(halt))
        await until(lambda: planner_late.paused_until(GLOBAL_SCOPE) >= pause_end or batch.done())
        assert planner_late.paused_until(GLOBAL_SCOPE) >= pause_end
        assert await batch == 10
        after = [t for t in released if t >= heard]
        assert after and all(t >= pause_end for t in after)
        assert len(fake.sent) == 10
    finally:
        halt.set()
        await asyncio.gather(*{follow, follow_late}, return_exceptions=True)
        await b.close()
        await late.close()



async def test_telegram_unreachable_at_start_keeps_the_rest_serving(
    services: Services, fake: FakeTelegram
) -> None:
    from bot.web.app import create_app

    fake.fail_next("setWebhook", 502, "Bad Gateway", times=2)
    async with TestClient(TestServer(create_app(services, background=True))) as client:
        response = await client.post("/api/simulator/messages", json={"user": "u", "text": "hi",
                                                                      "channel": "sms"})
        assert response.status == 200
        await until(lambda: bool(fake.webhook))  # registered once Telegram answers
    assert fake.webhook["url"] == "https://hotline.example.org/webhooks/telegram"
    assert fake.webhook["secret_token"] == SECRET


async def test_polling_starts_on_a_bot_api_server_without_delete_webhook(
    database_url: str, tmp_path: Path, fake: FakeTelegram, api: TestServer
) -> None:
    from bot.web.app import create_app

    polling = Services.build(make_settings(
        database_url, tmp_path, telegram_bot_token=fake.token,
        telegram_api_base=str(api.make_url("")).rstrip("/"),
    ))
    fake.fail_next("deleteWebhook", 404, "Not Found: method not found")
    async with TestClient(TestServer(create_app(polling, background=True))):
        await until(lambda: any(method == "getUpdates" for method, _ in fake.requests))
    await polling.close()


async def queue(services: Services, messages: list[tuple[int, str]], now: datetime) -> None:
    """Outbox rows as a bulk send would write them: (chat, text) each."""
    from storage.records import OutgoingReply

    for chat, body in messages:
        await services.outbox.enqueue("telegram", str(chat), [OutgoingReply(body)], now)


async def test_a_long_reply_interrupted_midway_sends_only_the_rest_on_retry(
    sender: SenderLoop, fake: FakeTelegram, services: Services, clock: Clock
) -> None:
    long_text = "\n\n".join(["first part " + "a" * 3000, "second part " + "b" * 3000])
    await queue(services, [(CHAT, long_text)], clock.now)
    fake.throttle_every = 2  # the second request is refused: 429, retry after 1 s
    await sender.run_once()
    assert [m.text[:11] for m in fake.sent] == ["first part "]
    async with services.db.connect() as conn:
        row = (await conn.execute(select(OutboxItem.status, OutboxItem.parts_sent))).one()
    assert tuple(row) == ("queued", 1)
    clock.skip += timedelta(seconds=2)  # past the retry time; the sender waits out the pause
    assert await sender.run_once() == 1
    assert [m.text[:11] for m in fake.sent] == ["first part ", "second part"]
    assert fake.sent[-1].reply_markup is None
    async with services.db.connect() as conn:
        assert (await conn.execute(select(OutboxItem.status))).scalar_one() == "sent"


async def test_an_answer_aiogram_cannot_read_is_sent_if_accepted_and_retried_if_not(
    services: Services, fake: FakeTelegram
) -> None:
    """A self-hosted Bot API server or a proxy may answer in a shape aiogram does not expect.
    "ok": true means the message went (sending again would send it twice); an error page
    means it did not."""
    from bot.channels.base import Retry, Sent
    from storage.outbox import Claimed
    from storage.records import OutgoingReply

    client = services.clients["telegram"]
    item = Claimed(1, "telegram", str(CHAT), b"h", None, OutgoingReply("hello"), 1, False)
    fake.answer_next("sendMessage", 200, '{"ok": true, "result": {"message_id": 77}}')
    assert await client.send(item) == Sent(provider_id="77")
    fake.answer_next("sendMessage", 502, "<html><body>502 Bad Gateway</body></html>")
    result = await client.send(item)
    assert isinstance(result, Retry) and result.parts_sent == 0
    assert fake.sent == []  # neither was carried out by the fake


async def test_in_a_group_the_bot_only_says_to_write_privately(
    client: TestClient, fake: FakeTelegram, services: Services, sender: SenderLoop,
    clock: Clock,
) -> None:
    group = {"id": -1001234, "type": "supergroup", "title": "Family"}
    ask = message_update(CHAT, 1, "/start", language_code="uk", chat=group)
    # Through the outbox like any reply, so Telegram's 429 is waited out, not turned into a 500.
    fake.fail_next("sendMessage", 429, "Too Many Requests: retry after 1")
    assert await deliver(client, "message", ask, 1) == 200
    chatter = message_update(CHAT, 2, "see you at 6", chat=group)  # not for the bot
    assert await deliver(client, "message", chatter, 2) == 200
    await sender.run_once()
    assert fake.sent == []
    clock.skip += timedelta(seconds=2)
    await sender.run_once()
    assert [m.chat_id for m in fake.sent] == [-1001234]
    assert fake.sent[0].text == translator("uk")(
        "I only talk in private chats, where nobody else can read what you write. Open a chat "
        "with me and write there.")
    async with services.db.connect() as conn:  # the row and its rate schedule are gone
        for model in (Contact, OutboxItem):
            assert (await conn.execute(select(func.count()).select_from(model))).scalar() == 0
        scopes = (await conn.execute(select(RateLimit.scope))).scalars().all()
    assert all("-1001234" not in s and ":" not in s.removeprefix("pause:") for s in scopes)


# --- inbound: acknowledged only after the turn committed --------------------------------------

async def post_raw(client: TestClient, headers: bytes, body: bytes) -> int:
    return await raw_request(client.host, client.port, "/webhooks/telegram", headers, body)


async def rename_table(services: Services, old: str, new: str) -> None:
    async with services.db.begin() as conn:
        await conn.execute(text(f"ALTER TABLE {old} RENAME TO {new}"))


def polls(fake: FakeTelegram) -> list[int]:
    """The offset of each getUpdates the fake was asked (0: none, as in the first)."""
    return [int(params.get("offset") or 0) for method, params in fake.requests
            if method == "getUpdates"]


async def test_a_secret_header_that_is_not_ascii_is_refused_quietly(
    client: TestClient, services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    body = json.dumps({"update_id": 1, "message": message_update(CHAT, 1, "hi")}).encode()
    name = b"X-Telegram-Bot-Api-Secret-Token: "
    right = name + SECRET.encode() + b"\r\n"
    for header in ("é".encode("latin-1"), "é".encode(), SECRET.encode() + b"\xe9"):
        assert await post_raw(client, name + header + b"\r\n", body) == 401
    assert await post_raw(client, right + name + b"wrong\r\n", body) == 401  # one, or none
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert await contacts(services) == 0
    assert await post_raw(client, right, body) == 200  # the same request, as Telegram sends it
    assert await contacts(services) == 1


async def test_a_body_that_is_not_an_update_is_a_bad_request(
    client: TestClient, services: Services
) -> None:
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"}
    for body in (b'{"update_id": 1, "message": ', b"\xff\xfe\x00", b"[1, 2]", b'"text"',
                 b'{"message": {"text": "no update_id"}}', b'{"update_id": "one"}'):
        response = await client.post("/webhooks/telegram", data=body, headers=headers)
        assert response.status == 400, body
    assert await contacts(services) == 0


async def test_a_turn_that_fails_answers_500_and_the_redelivery_is_answered_once(
    client: TestClient, services: Services, sender: SenderLoop, fake: FakeTelegram,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    said = "my boss keeps my passport"
    await rename_table(services, "messages", "messages_away")  # the database fails the turn
    try:
        assert await deliver(client, "message", message_update(CHAT, 1, said), 1) == 500
    finally:
        await rename_table(services, "messages_away", "messages")
    assert await contacts(services) == 0
    assert await sender.run_once() == 0
    for _ in range(2):  # Telegram delivers it again; once it went through, nothing changes
        assert await deliver(client, "message", message_update(CHAT, 1, said), 1) == 200
    await sender.run_once()
    assert len(fake.texts(CHAT)) == 1
    [failed] = [r for r in caplog.records if "not processed" in r.getMessage()]
    assert failed.exc_info is None and said not in caplog.text
    # By its kind: SQLite's for a missing table, or PostgreSQL's.
    assert any(f"({kind})" in failed.getMessage()
               for kind in ("OperationalError", "ProgrammingError"))


async def test_a_button_press_is_answered_in_the_webhooks_reply(client: TestClient) -> None:
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
    await deliver(client, "message", message_update(CHAT, 1, "/start"), 1)
    response = await client.post("/webhooks/telegram", headers=headers, json={
        "update_id": 2, "callback_query": callback_update(CHAT, "q-17", "ru")})
    assert response.status == 200
    assert response.content_type == "multipart/form-data"
    reply = await response.text()
    assert "answerCallbackQuery" in reply and "q-17" in reply
    plain = await client.post("/webhooks/telegram", headers=headers, json={
        "update_id": 3, "message": message_update(CHAT, 2, "hi")})
    assert await plain.json() == {}  # nothing for Telegram to do


@pytest.fixture
async def polling(database_url: str, tmp_path: Path, fake: FakeTelegram,
                  api: TestServer) -> AsyncIterator[Services]:
    """Services without a public address: Telegram by long polling."""
    built = Services.build(make_settings(
        database_url, tmp_path, telegram_bot_token=fake.token,
        telegram_api_base=str(api.make_url("")).rstrip("/"),
    ))
    yield built
    await built.close()


async def test_polling_retries_a_failed_turn_and_confirms_it_only_after_it_committed(
    polling: Services, fake: FakeTelegram
) -> None:
    from bot.web.app import create_app

    first = fake.push_update("message", message_update(CHAT, 1, "/start"))
    await rename_table(polling, "messages", "messages_away")  # the database fails every turn
    restored = False
    try:
        async with TestClient(TestServer(create_app(polling, background=True))):
            await until(lambda: len(polls(fake)) >= 2)  # fed, failed, and asked for again
            before_commit = polls(fake)
            await rename_table(polling, "messages_away", "messages")
            restored = True
            await until(lambda: len(fake.texts(CHAT)) == 1)
            fake.push_update("callback_query", callback_update(CHAT, "q1", "ru"))
            await until(lambda: len(fake.texts(CHAT)) == 2)
            after_commit = polls(fake)[len(before_commit):]
    finally:
        if not restored:
            await rename_table(polling, "messages_away", "messages")
    assert all(offset <= first for offset in before_commit)  # not confirmed while it failed
    assert first + 1 in after_commit
    assert fake.texts(CHAT) == [
        fake.texts(CHAT)[0],
        translator("ru")("Is it safe for you to get messages from us on this phone?"),
    ]
    assert "Choose your language:" in fake.texts(CHAT)[0]


class HeldEngine:
    """The real engine, recording when each turn starts and ends, and holding one chat's first
    turn until another chat's turn has ended."""

    def __init__(self, engine: Engine, held: str, until_done: str) -> None:
        self.engine = engine
        self.held, self.until_done = held, until_done
        self.release = asyncio.Event()
        self.events: list[tuple[str, str, str | None]] = []

    async def handle(self, inbound: Inbound) -> Handled:
        self.events.append(("start", inbound.address, inbound.message_id))
        if (inbound.address, inbound.message_id) == (self.held, "m1"):
            await self.release.wait()
        handled = await self.engine.handle(inbound)
        self.events.append(("end", inbound.address, inbound.message_id))
        if inbound.address == self.until_done:
            self.release.set()
        return handled


async def test_polling_feeds_one_chat_in_order_and_other_chats_meanwhile(
    polling: Services, fake: FakeTelegram
) -> None:
    a, b = str(CHAT), str(CHAT + 1)
    engine = HeldEngine(polling.engine, held=a, until_done=b)
    dispatcher = telegram_dispatcher(engine, polling.sender,  # type: ignore[arg-type]
                                     polling.turns.address_hash)
    fake.push_update("message", message_update(CHAT, 1, "/start"))
    fake.push_update("callback_query", callback_update(CHAT, "q1", "ru"))
    last = fake.push_update("message", message_update(CHAT + 1, 1, "/start"))
    assert polling.telegram_bot is not None
    stop = asyncio.Event()
    poller = TelegramPoller(polling.telegram_bot, dispatcher, allowed_updates=ALLOWED_UPDATES)
    task = asyncio.create_task(poller.run(stop))
    try:
        await until(lambda: last + 1 in polls(fake))
    finally:
        stop.set()
        engine.release.set()  # a poller that fed the batch one by one would wait here
        await task
    # b was served while a's first turn was held; a's second waited for a's first.
    assert engine.events == [("start", a, "m1"), ("start", b, "m1"), ("end", b, "m1"),
                             ("end", a, "m1"), ("start", a, "cq1"), ("end", a, "cq1")]
    assert [m for m, _ in fake.requests].count("answerCallbackQuery") == 1


async def test_polling_rides_out_server_errors_and_a_conflict(
    polling: Services, fake: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    fake.fail_next("getUpdates", 502, "Bad Gateway")
    fake.fail_next("getUpdates", 409, "Conflict: terminated by other getUpdates request")
    update = fake.push_update("message", message_update(CHAT, 1, "hi"))
    assert polling.telegram_bot is not None and polling.telegram_dispatcher is not None
    stop = asyncio.Event()
    poller = TelegramPoller(polling.telegram_bot, polling.telegram_dispatcher,
                            allowed_updates=ALLOWED_UPDATES, first_backoff=0.01)
    task = asyncio.create_task(poller.run(stop))
    try:
        await until(lambda: update + 1 in polls(fake))
    finally:
        stop.set()
        await task
    assert await contacts(polling) == 1
    logged = [r.getMessage() for r in caplog.records if r.name.endswith("telegram_polling")]
    assert any("(TelegramServerError)" in m for m in logged)
    assert any("(TelegramConflictError)" in m for m in logged)
    assert not any("Bad Gateway" in m or "terminated" in m for m in logged)


async def test_polling_stops_at_once_in_a_long_poll_or_a_backoff(
    polling: Services, fake: FakeTelegram
) -> None:
    from bot.channels.telegram import make_bot

    assert polling.telegram_bot is not None and polling.telegram_dispatcher is not None
    dispatcher = polling.telegram_dispatcher

    async def stopped(poller: TelegramPoller, started: Callable[[], bool]) -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(poller.run(stop))
        await until(started)
        stop.set()
        await asyncio.wait_for(task, 30)  # only keeps a broken test from hanging

    # A backoff of an hour after a 502.
    fake.fail_next("getUpdates", 502, "Bad Gateway")
    await stopped(TelegramPoller(polling.telegram_bot, dispatcher, allowed_updates=ALLOWED_UPDATES,
                                 first_backoff=3600),
                  lambda: len(polls(fake)) == 1)
    assert len(polls(fake)) == 1

    # A Bot API server that never answers getUpdates.
    held: list[asyncio.StreamWriter] = []

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        await reader.read()  # until the client hangs up
        writer.close()

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    silent = make_bot(fake.token, f"http://127.0.0.1:{port}")
    try:
        await stopped(TelegramPoller(silent, dispatcher, allowed_updates=ALLOWED_UPDATES),
                      lambda: bool(held))
    finally:
        await silent.session.close()
        server.close()
        await server.wait_closed()


async def test_a_step_that_raises_answers_200_and_the_person_gets_an_apology(
    client: TestClient, sender: SenderLoop, fake: FakeTelegram, services: Services,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Not a 500 that Telegram would redeliver for ever: the person is answered at once."""
    from flows.engine import Step

    steps = services.engine._registry.flows["welcome"].steps

    async def broken(ctx: object, answer: object) -> object:
        raise RuntimeError("a bug")

    monkeypatch.setitem(steps, "language", Step(steps["language"].prompt, broken))  # type: ignore[index, arg-type]
    assert await deliver(client, "callback_query", callback_update(CHAT, "q1", "uk"), 1) == 200
    await sender.run_once()
    [text] = fake.texts(CHAT)
    assert "112" in text and fake.buttons(CHAT)  # the numbers, and the menu's buttons
