"""SMS with a real `hotline run` process: twilio's client against the fake Twilio API, signed
and forged webhooks, a redelivered webhook, and replies to people before bulk messages."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
from sqlalchemy import insert
from twilio.request_validator import RequestValidator

from flows.i18n import translator
from storage.crypto import Vault, new_master_key
from storage.db import create_engine
from storage.models import OutboxItem
from storage.outbox import Sender
from tests.bot.test_sms import fake  # noqa: F401  (the same fake Twilio fixture)
from tests.bot.test_telegram_processes import free_port, migrate, serving, start, stop
from tests.conftest import until
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio

SENDER = "+15005550006"


async def test_an_sms_conversation_through_a_real_process(
    tmp_path: Path, database_url: str, fake: tuple[FakeTwilio, str]
) -> None:
    twilio, base = fake
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    env = {**os.environ, "DATA_DIR": str(tmp_path / "var"), "DATABASE_URL": database_url,
           "HOTLINE_SECRET_KEY": new_master_key(), "PUBLIC_BASE_URL": public,
           "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
           "TWILIO_FROM": SENDER, "TWILIO_API_BASE": base,
           "TWILIO_SEGMENTS_PER_SECOND": "50", "PYTHONUNBUFFERED": "1"}
    await migrate(env)
    process = await start("run", "--port", str(port), env=env)
    person = "+998901234567"  # Uzbekistan
    try:
        await serving(port)
        async with aiohttp.ClientSession() as http:

            async def text(body: str, sid: str, signature: str | None = None) -> int:
                form = {"From": person, "To": SENDER, "Body": body, "MessageSid": sid}
                url = f"{public}/webhooks/twilio/sms"
                signature = signature or RequestValidator(AUTH_TOKEN).compute_signature(url, form)
                async with http.post(url, data=form,
                                     headers={"X-Twilio-Signature": signature}) as response:
                    return response.status

            assert await text("salom", "SM1", signature="forged") == 403
            assert await text("salom", "SM1") == 200
            assert await text("salom", "SM1") == 200  # redelivered
            await until(lambda: len(twilio.bodies(person)) == 1)
            assert translator("uz")("Choose your language:") in twilio.bodies(person)[0]
            assert await text("5", "SM2") == 200  # O‘zbek
            await until(lambda: len(twilio.bodies(person)) == 2)
            assert twilio.bodies(person)[1].startswith(translator("uz")(
                "Is it safe for you to get messages from us on this phone?"))
            await asyncio.sleep(0.5)
            assert len(twilio.bodies(person)) == 2
    finally:
        log = await stop(process)
    assert "998901234567" not in log and "salom" not in log


async def test_replies_to_people_are_claimed_before_bulk(database_url: str) -> None:
    from storage.outbox import outbox_rows
    from storage.records import OutgoingReply

    engine = create_engine(database_url)
    vault = Vault(bytes(32))
    now = datetime.now(UTC)
    try:
        def row(priority: int, minutes_ago: int, text: str) -> dict:
            [built] = outbox_rows(vault, channel="sms", address="+15005550001",
                                  address_hash=vault.keyed_hash(text),
                                  replies=[OutgoingReply(text)], now=now, priority=priority,
                                  contact_id=None)
            return {**built, "next_attempt_at": now - timedelta(minutes=minutes_ago)}

        async with engine.begin() as conn:
            await conn.execute(insert(OutboxItem), [
                row(10, 30, "bulk, oldest"), row(10, 20, "bulk"), row(0, 1, "reply, newest"),
                row(0, 5, "reply")])
        claim = await Sender(engine, vault).claim(["sms"], now, 2, timedelta(minutes=1), "t")
        assert {c.reply.text for c in claim.rows} == {"reply", "reply, newest"}
    finally:
        await engine.dispose()
