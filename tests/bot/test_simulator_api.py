"""The simulator API over real HTTP (aiohttp's test server on loopback)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from bot.services import Services
from bot.web.app import create_app
from storage.db import create_engine
from storage.models import Base, Contact
from tests.conftest import database_file, make_settings

URL = "/api/simulator/messages"


@pytest.fixture
async def client(database_url: str, tmp_path: Path) -> AsyncIterator[TestClient]:
    app = create_app(Services.build(make_settings(database_url, tmp_path)))
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def post(client: TestClient, **body: object) -> dict:
    response = await client.post(URL, json=body)
    assert response.status == 200, await response.text()
    return await response.json()


async def test_a_conversation_over_http(client: TestClient) -> None:
    body = await post(client, user="u1", text="hello", channel="sms")
    [reply] = body["replies"]
    assert "Choose your language" in reply["text"] and "1. English" in reply["text"]
    assert reply["choices"] == [] and reply["direction"] == "ltr"
    body = await post(client, user="u1", choice="en", channel="telegram")
    [reply] = body["replies"]
    assert {"id": "yes", "label": "Yes"} in reply["choices"]


async def test_a_repeated_message_id_returns_200_and_changes_nothing(client: TestClient) -> None:
    first = await post(client, user="u2", text="hi", channel="sms", message_id="42")
    assert first["replies"]
    again = await post(client, user="u2", text="hi", channel="sms", message_id=42)
    assert again == {"replies": []}
    # The same id from another person is another message.
    assert (await post(client, user="u3", text="hi", channel="sms", message_id="42"))["replies"]


async def test_arabic_over_telegram_is_right_to_left(client: TestClient) -> None:
    body = await post(client, user="u4", text="مرحبا", channel="telegram", language_code="ar")
    [reply] = body["replies"]
    assert reply["direction"] == "rtl" and reply["text"].startswith("\u200f")


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ("not json", 400, "the body must be JSON"),
        ([], 422, "JSON object"),
        ({"text": "hi", "channel": "sms"}, 422, "'user' is required"),
        ({"user": "u", "text": "hi"}, 422, "'channel' must be one of"),
        ({"user": "u", "text": "hi", "channel": "fax"}, 422, "'channel' must be one of"),
        ({"user": "u", "channel": "sms"}, 422, "send 'text' or 'choice'"),
        ({"user": "u", "text": 5, "channel": "sms"}, 422, "'text' must be a string"),
        ({"user": "", "text": "hi", "channel": "sms"}, 422, "'user' must be 1 to 128"),
        ({"user": True, "text": "hi", "channel": "sms"}, 422, "'user' must be a string"),
        ({"user": "u", "text": "x" * 10_001, "channel": "sms"}, 422, "longer than 10000"),
        ({"user": "u", "text": "hi", "channel": "sms", "lang": "ru"}, 422, "unknown field"),
        ({"user": "u", "text": "hi", "channel": "sms", "language_code": 7}, 422, "language"),
    ],
)
async def test_malformed_requests_get_a_clear_4xx(
    client: TestClient, body: object, status: int, error: str
) -> None:
    if isinstance(body, str):
        response = await client.post(URL, data=body)
    else:
        response = await client.post(URL, json=body)
    assert response.status == status
    assert error in (await response.json())["error"]


async def test_wrong_method_and_unknown_path_are_4xx_json(client: TestClient) -> None:
    response = await client.get(URL)
    assert response.status == 405
    assert "error" in await response.json()
    assert (await client.get("/nothing-here")).status == 404


async def test_many_users_at_once_every_message_answered(client: TestClient) -> None:
    async def person(n: int) -> None:
        for text in ("hi", "3", "1", "UA", "2", "9", "menu"):
            body = await post(client, user=f"crowd-{n}", text=text, channel="sms")
            assert len(body["replies"]) == 1

    await asyncio.gather(*(person(n) for n in range(25)))


async def test_stored_data_holds_none_of_the_texts_in_plain_form(
    client: TestClient, database_url: str
) -> None:
    secrets = ["my employer took my passport", "Мой муж меня бьёт", "زوجي يضربني",
               "secret-phone-+447700900123"]
    for text in secrets:
        await post(client, user="secret-phone-+447700900123", text=text, channel="sms")
    await post(client, user="secret-phone-+447700900123", text="1", channel="sms")
    stored = await every_stored_value(database_url)
    path = database_file(database_url)
    if path is not None:  # and the raw SQLite files, write-ahead log included
        stored += b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
    assert len(stored) > 2_000
    for text in secrets:
        assert text.encode() not in stored
        assert text.encode("utf-16-le") not in stored
    assert b"+447700900123" not in stored


async def test_switched_off_it_answers_404_and_stores_nothing(
    database_url: str, tmp_path: Path
) -> None:
    services = Services.build(make_settings(database_url, tmp_path, simulator=False))
    async with TestClient(TestServer(create_app(services, background=False))) as off:
        for path in ("/", "/static/simulator.js"):
            assert (await off.get(path)).status == 404
        response = await off.post(URL, json={"user": "u1", "text": "hello", "channel": "sms"})
        assert response.status == 404
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(select(func.count()).select_from(Contact))).scalar() == 0
    finally:
        await engine.dispose()


async def every_stored_value(database_url: str) -> bytes:
    engine = create_engine(database_url)
    chunks: list[bytes] = []
    try:
        async with engine.connect() as conn:
            for table in Base.metadata.sorted_tables:
                for row in await conn.execute(select(table)):
                    for value in row:
                        if isinstance(value, bytes):
                            chunks.append(value)
                        elif value is not None:
                            chunks.append(json.dumps(value, default=str,
                                                     ensure_ascii=False).encode())
    finally:
        await engine.dispose()
    return b"\n".join(chunks)
