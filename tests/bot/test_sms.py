"""SMS end to end in one process: signed Twilio webhooks, the engine, the outbox, and the sender
with twilio's real async client against the fake Twilio API on loopback."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from bot.channels.base import Retry, Sent
from bot.channels.sms import normalise_number
from bot.sender import SenderLoop
from bot.services import Services
from bot.settings import Settings, SettingsError
from flows.i18n import translator
from flows.text import sms_segments
from storage.models import Contact, OutboxItem
from storage.outbox import Claimed
from storage.records import OutgoingReply
from tests.conftest import make_settings
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio

PUBLIC = "https://hotline.example.org"
SENDER = "+15005550006"
PERSON = "+77011234567"  # Kazakhstan: Russian is its first official language


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeTwilio, str]]:
    twilio = FakeTwilio()
    server = TestServer(twilio.app())
    await server.start_server()
    yield twilio, str(server.make_url("")).rstrip("/")
    await server.close()


@pytest.fixture
async def services(database_url: str, tmp_path: Path,
                   fake: tuple[FakeTwilio, str]) -> AsyncIterator[Services]:
    built = Services.build(make_settings(
        database_url, tmp_path, public_base_url=PUBLIC, twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=AUTH_TOKEN, twilio_from=SENDER, twilio_api_base=fake[1],
        twilio_segments_per_second=1000.0,
    ))
    yield built
    await built.close()


@pytest.fixture
def sender(services: Services) -> SenderLoop:
    return SenderLoop(services.sender, services.clients)


def signed(path: str, form: dict[str, str]) -> dict[str, str]:
    signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC + path, form)
    return {"X-Twilio-Signature": signature}


async def text_in(client: TestClient, body: str, sid: str, sender: str = PERSON,
                  **extra: str) -> int:
    form = {"From": sender, "To": SENDER, "Body": body, "MessageSid": sid,
            "AccountSid": ACCOUNT_SID, **extra}
    response = await client.post("/webhooks/twilio/sms", data=form,
                                 headers=signed("/webhooks/twilio/sms", form))
    return response.status


async def count(services: Services, model: type) -> int:
    async with services.db.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(model))).scalar_one())


async def test_forged_and_unsigned_requests_are_refused_and_store_nothing(
    client: TestClient, services: Services
) -> None:
    form = {"From": PERSON, "To": SENDER, "Body": "hi", "MessageSid": "SM1"}
    for headers in ({}, {"X-Twilio-Signature": "forged"},
                    signed("/webhooks/twilio/sms", {**form, "Body": "other"})):
        response = await client.post("/webhooks/twilio/sms", data=form, headers=headers)
        assert response.status == 403
    response = await client.post("/webhooks/twilio/status", data={"MessageSid": "SM1"})
    assert response.status == 403
    assert await count(services, Contact) == 0


async def test_a_signed_form_that_is_not_utf8_is_refused_quietly(
    client: TestClient, services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    form = {"From": PERSON, "To": SENDER, "Body": "café", "MessageSid": "SM1"}
    latin1 = urlencode(form).replace("%C3%A9", "é").encode("latin-1")  # é as one byte, E9
    for path, body, content_type in (
        ("/webhooks/twilio/sms", latin1, "application/x-www-form-urlencoded"),
        ("/webhooks/twilio/status", b"MessageSid=SM1&MessageStatus=d\xe9livr\xe9",
         "application/x-www-form-urlencoded"),
        ("/webhooks/twilio/sms", urlencode(form).encode(),
         "application/x-www-form-urlencoded; charset=no-such-charset"),
    ):
        response = await client.post(path, data=body, headers={
            **signed(path, form), "Content-Type": content_type})
        assert response.status == 400, path
        assert await response.text() == "the form cannot be read"
    assert await count(services, Contact) == 0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


async def test_a_conversation_in_the_language_of_the_number(
    client: TestClient, sender: SenderLoop, fake: tuple[FakeTwilio, str]
) -> None:
    twilio, _ = fake
    assert await text_in(client, "привет", "SM1") == 200
    await sender.run_once()
    [first] = twilio.bodies(PERSON)
    assert translator("ru")("Choose your language:") in first
    assert "\n2. Русский" in first  # numbered choices, plain text
    assert twilio.sent[0].sender == SENDER
    assert twilio.sent[0].status_callback == PUBLIC + "/webhooks/twilio/status"
    await text_in(client, "2", "SM2")
    await sender.run_once()
    assert translator("ru")("Is it safe for you to get messages from us on this phone?") in \
        twilio.bodies(PERSON)[1]


async def test_a_picture_without_words_gets_a_polite_answer(
    client: TestClient, sender: SenderLoop, fake: tuple[FakeTwilio, str]
) -> None:
    twilio, _ = fake
    assert await text_in(client, "", "MM1", NumMedia="1",
                         MediaUrl0="https://api.twilio.com/media/1",
                         MediaContentType0="image/jpeg") == 200
    await sender.run_once()
    [body] = twilio.bodies(PERSON)
    assert body.startswith(translator("ru")(
        "I can only read text messages. Please write to me in words."))


async def test_a_redelivered_webhook_is_answered_once(
    client: TestClient, sender: SenderLoop, fake: tuple[FakeTwilio, str]
) -> None:
    for _ in range(3):
        assert await text_in(client, "hello", "SM-same") == 200
    await sender.run_once()
    assert len(fake[0].bodies(PERSON)) == 1


async def test_twilio_opt_out_keywords_and_21610(
    client: TestClient, sender: SenderLoop, fake: tuple[FakeTwilio, str], services: Services
) -> None:
    twilio, _ = fake
    await text_in(client, "hi", "SM1")
    await sender.run_once()
    await text_in(client, "STOP", "SM2", OptOutType="STOP")
    await sender.run_once()
    assert len(twilio.bodies(PERSON)) == 1  # Twilio answered the STOP itself
    async with services.db.connect() as conn:
        assert (await conn.execute(select(Contact.status))).scalar_one() == "stopped"
    await text_in(client, "START", "SM3", OptOutType="START")
    await sender.run_once()
    assert len(twilio.bodies(PERSON)) == 2
    async with services.db.connect() as conn:
        assert (await conn.execute(select(Contact.status))).scalar_one() == "active"
    # Twilio answered HELP ("INFO" is one of its words for it) itself; we answer in Russian.
    await text_in(client, "INFO", "SM3b", OptOutType="HELP")
    await sender.run_once()
    assert translator("ru")("Send {menu}, {emergency}, {language}, {stop} or {delete} at any "
                            "time.").split("{")[0] in twilio.bodies(PERSON)[-1]
    # The person opted out at the carrier meanwhile: Twilio refuses with 21610.
    twilio.unsubscribed.add(PERSON)
    await text_in(client, "menu", "SM4")
    await sender.run_once()
    async with services.db.connect() as conn:
        assert (await conn.execute(select(Contact.status))).scalar_one() == "stopped"
        errors = (await conn.execute(select(OutboxItem.last_error)
                                     .where(OutboxItem.status == "failed"))).scalars().all()
    assert any("21610" in e for e in errors)


async def test_delivery_reports_only_move_forward(
    client: TestClient, sender: SenderLoop, fake: tuple[FakeTwilio, str], services: Services
) -> None:
    await text_in(client, "hi", "SM1")
    await sender.run_once()
    sid = fake[0].sent[0].sid

    async def report(status: str, **extra: str) -> None:
        form = {"MessageSid": sid, "MessageStatus": status, "AccountSid": ACCOUNT_SID, **extra}
        response = await client.post("/webhooks/twilio/status", data=form,
                                     headers=signed("/webhooks/twilio/status", form))
        assert response.status == 204

    async def state() -> tuple[str, str | None]:
        async with services.db.connect() as conn:
            row = (await conn.execute(select(OutboxItem.delivery_status,
                                             OutboxItem.last_error))).one()
        return row.delivery_status, row.last_error

    await report("delivered")
    await report("sent")  # arrives late: ignored
    await report("queued")
    assert (await state())[0] == "delivered"
    await text_in(client, "1", "SM2")
    await sender.run_once()
    second = fake[0].sent[1].sid
    sid = second
    await report("sent")
    await report("undelivered", ErrorCode="30003")
    await report("sent")
    async with services.db.connect() as conn:
        row = (await conn.execute(select(OutboxItem.delivery_status, OutboxItem.last_error)
                                  .where(OutboxItem.provider_id == second))).one()
    assert row.delivery_status == "undelivered" and "30003" in row.last_error


async def test_server_errors_retry_and_bad_requests_fail(
    client: TestClient, sender: SenderLoop, fake: tuple[FakeTwilio, str], services: Services
) -> None:
    twilio, _ = fake
    twilio.fail_next(503, 20500, "Service Unavailable")
    await text_in(client, "hi", "SM1")
    await sender.run_once()
    async with services.db.connect() as conn:
        row = (await conn.execute(select(OutboxItem.status, OutboxItem.last_error))).one()
    assert row.status == "queued" and "503" in row.last_error
    twilio.fail_next(400, 21211, "The 'To' number is not a valid phone number.")
    await text_in(client, "again", "SM2", sender="+77017654321")
    await sender.run_once()
    async with services.db.connect() as conn:
        failed = (await conn.execute(select(OutboxItem.last_error)
                                     .where(OutboxItem.status == "failed"))).scalars().all()
    assert failed and "21211" in failed[0]


async def test_long_content_goes_as_its_short_version(
    client: TestClient, sender: SenderLoop, fake: tuple[FakeTwilio, str]
) -> None:
    twilio, _ = fake
    await text_in(client, "help", "SM1")
    await sender.run_once()
    [body] = twilio.bodies(PERSON)
    ru = translator("ru")  # the number's country speaks Russian first
    short = ru("Send {menu}, {emergency}, {language}, {stop} or {delete} at any time.")
    assert short.startswith("В любой момент") and body.startswith(short.split("{")[0])
    full = ru("This is a free and confidential helpline. You can send these words at any time:\n"
              "{menu} – main menu\n{emergency} – emergency numbers\n{language} – change "
              "language\n{stop} – stop messages\n{delete} – delete your data")
    assert full != full.split(":")[0] and full.split(":")[0] not in body


async def test_a_reply_over_twilios_limit_goes_as_several_sms_in_order(
    services: Services, fake: tuple[FakeTwilio, str]
) -> None:
    twilio, _ = fake
    client = services.clients["sms"]
    paragraphs = [f"Paragraph {i}. " + "Ж" * 300 for i in range(12)]  # 3,700 characters
    reply = OutgoingReply("\n\n".join(paragraphs))
    item = Claimed(1, "sms", PERSON, b"h", None, reply, 1, False)
    result = await client.send(item)
    bodies = twilio.bodies(PERSON)
    assert len(bodies) == 3 and all(len(b) <= 1600 for b in bodies)
    assert "\n\n".join(bodies) == reply.text  # cut at paragraph breaks, nothing lost
    assert result == Sent(provider_id=twilio.sent[-1].sid)
    assert client.cost(item) == sum(map(sms_segments, bodies))  # the rate limit counts them all
    # A retry after Twilio accepted the first two sends only the third, and counts only it.
    twilio.sent.clear()
    retried = Claimed(2, "sms", PERSON, b"h", None, reply, 2, False, parts_sent=2)
    assert client.cost(retried) == sms_segments(bodies[2])
    assert isinstance(await client.send(retried), Sent)
    assert twilio.bodies(PERSON) == [bodies[2]]
    twilio.fail_next(500, 20500, "Internal Server Error")
    again = Claimed(3, "sms", PERSON, b"h", None, reply, 2, False, parts_sent=1)
    assert await client.send(again) == Retry("twilio 500 error 20500", parts_sent=1)


async def test_an_accepted_send_with_an_unreadable_answer_is_not_sent_again(
    services: Services, fake: tuple[FakeTwilio, str]
) -> None:
    twilio, _ = fake
    client = services.clients["sms"]
    item = Claimed(1, "sms", PERSON, b"h", None, OutgoingReply("hello"), 1, False)
    twilio.answer_next(201, "<xml>not json</xml>")
    assert await client.send(item) == Sent(provider_id=None)
    twilio.answer_next(502, "<html>Bad Gateway</html>")
    result = await client.send(item)
    assert isinstance(result, Retry) and "502" in result.reason


def test_segments_by_the_real_rules() -> None:
    assert sms_segments("a" * 160) == 1
    assert sms_segments("a" * 161) == 2
    assert sms_segments("a" * 306) == 2 and sms_segments("a" * 307) == 3
    assert sms_segments("€" * 80) == 1 and sms_segments("€" * 81) == 2  # two septets each
    assert sms_segments("я" * 70) == 1 and sms_segments("я" * 71) == 2  # Cyrillic: UCS-2
    assert sms_segments("م" * 134) == 2 and sms_segments("م" * 135) == 3  # Arabic: UCS-2
    assert sms_segments("a" * 69 + "🙂") == 2  # an emoji is two UTF-16 units


def test_numbers_are_normalised_to_e164_with_their_country() -> None:
    assert normalise_number("+7 (701) 123-45-67") == ("+77011234567", "KZ")
    assert normalise_number("+998 90 123 45 67") == ("+998901234567", "UZ")
    assert normalise_number("12345") is None
    assert normalise_number("HOTLINE") is None


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_FROM": SENDER,
          "PUBLIC_BASE_URL": PUBLIC}, "TWILIO_AUTH_TOKEN is required"),
        ({"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": "t", "TWILIO_FROM": SENDER},
         "PUBLIC_BASE_URL is required for SMS"),
        ({"TWILIO_ACCOUNT_SID": "nope", "TWILIO_AUTH_TOKEN": "t", "TWILIO_FROM": SENDER,
          "PUBLIC_BASE_URL": PUBLIC}, "TWILIO_ACCOUNT_SID"),
        ({"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": "t",
          "PUBLIC_BASE_URL": PUBLIC}, "exactly one of TWILIO_FROM"),
        ({"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": "t", "TWILIO_FROM": "123",
          "PUBLIC_BASE_URL": PUBLIC}, "E.164"),
    ],
)
def test_twilio_settings_fail_closed(tmp_path: Path, env: dict, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env({"DATA_DIR": str(tmp_path), **env})


async def test_a_step_that_raises_answers_200_and_the_person_gets_an_apology(
    client: TestClient, services: Services, sender: SenderLoop, fake: tuple[FakeTwilio, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Twilio does not retry a 500: a bug must not cost the message, nor leave the person in
    silence."""
    from flows.engine import Step

    steps = services.engine._registry.flows["welcome"].steps

    async def broken(ctx: object, answer: object) -> object:
        raise RuntimeError("a bug")

    monkeypatch.setitem(steps, "language", Step(steps["language"].prompt, broken))  # type: ignore[index, arg-type]
    assert await text_in(client, "Русский", "SM-bug") == 200
    await sender.run_once()
    [body] = fake[0].bodies(PERSON)
    assert "112" in body  # Kazakhstan's numbers, with the apology and the menu


async def test_a_database_failure_is_retried_before_twilio_is_answered(
    client: TestClient, services: Services, sender: SenderLoop, fake: tuple[FakeTwilio, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real, failures = services.engine._turns.run, [ConnectionError("database restarting")]

    async def failing_once(*args: object, **kwargs: object) -> object:
        if failures:
            raise failures.pop()
        return await real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(services.engine._turns, "run", failing_once)
    assert await text_in(client, "hello", "SM-db") == 200
    assert failures == []
    await sender.run_once()
    assert len(fake[0].bodies(PERSON)) == 1
