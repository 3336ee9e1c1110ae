"""A step that raises (a bug) still answers the person: an apology with the emergency numbers of
their country and the main menu; the message is recorded, the conversation is back at the menu,
and the log says where it failed without anything the person wrote. And a step holds no write
lock while it runs."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from bot.services import Services
from flows.engine import Answer, Context, Outcome, Prompt, Step
from storage.models import Conversation, Message
from tests.conftest import Phone, database_file

SECRET_WORDS = "my husband took my passport"


class StepBug(RuntimeError):
    pass


@pytest.fixture
def broken_settings(services: Services, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The settings menu's answer raises, with what the person wrote in its message."""
    steps = services.engine._registry.flows["settings"].steps
    original = steps["main"]

    async def raising(ctx: Context, answer: Answer) -> Outcome:
        ctx.profile.country = "XX"  # half-done changes must not be saved
        raise StepBug(f"cannot handle {SECRET_WORDS!r}")

    monkeypatch.setitem(steps, "main", Step(original.prompt, raising))  # type: ignore[index]
    yield


async def welcomed(phone: Phone) -> None:
    await phone.say("Русский")
    await phone.say("Да")
    await phone.say("Россия")


@pytest.mark.usefixtures("broken_settings")
async def test_a_step_that_raises_answers_with_an_apology_numbers_and_the_menu(
    services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    phone = Phone(services, language="ru")
    await welcomed(phone)
    await phone.say("3")  # Settings
    with caplog.at_level(logging.ERROR):
        reply = await phone.say("2")  # Country: the step raises
    assert reply.startswith("Извините")  # the apology, in the person's language
    assert "112" in reply and "102" in reply  # Russia's numbers
    assert "Главное меню" in reply  # and the main menu
    async with services.db.connect() as conn:
        state = (await conn.execute(select(Conversation.flow, Conversation.step))).one()
        messages = (await conn.execute(select(func.count()).select_from(Message)
                                       .where(Message.direction == "in"))).scalar()
    assert tuple(state) == ("menu", "main")
    assert messages == 5  # the failed one is recorded like any other
    assert "StepBug" in caplog.text and "settings/main" in caplog.text
    assert "passport" not in caplog.text  # not even through the exception's message
    assert "112" in await phone.say("1")  # the menu works again: 1 is emergency numbers
    async with services.db.connect() as conn:
        from storage.models import Contact

        assert (await conn.execute(select(Contact.country))).scalar() == "RU"


async def test_if_even_the_apology_fails_the_person_still_gets_one(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken_prompt(ctx: Context) -> Prompt:
        raise StepBug("the welcome is broken")

    async def broken(ctx: Context) -> Outcome:
        raise StepBug("the apology is broken too")

    steps = services.engine._registry.flows["welcome"].steps
    monkeypatch.setitem(steps, "language", Step(broken_prompt, steps["language"].handle))  # type: ignore[index]
    monkeypatch.setattr(services.engine._registry, "failed", broken)
    reply = await Phone(services).say("hello")
    assert reply == "Sorry, something went wrong on our side. Please write again."


async def test_a_step_holds_no_write_lock_while_it_runs(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CPU-heavy work in a step must not stall every other message: while a step runs, another
    process can take SQLite's write lock at once (PostgreSQL locks rows, not the database)."""
    path = database_file(services.settings.database_url)
    if path is None:
        pytest.skip("SQLite's one write lock; PostgreSQL's turns take no lock while steps run")
    wrote: list[bool] = []
    steps = services.engine._registry.flows["welcome"].steps
    original = steps["language"]

    async def writing_meanwhile(ctx: Context, answer: Answer) -> Outcome:
        other = sqlite3.connect(path, timeout=0, isolation_level=None)
        try:  # "database is locked" at once if this turn held the write lock
            other.execute("BEGIN IMMEDIATE")
            other.execute("INSERT INTO rate_limits (scope, next_at) VALUES ('probe', 0)")
            other.execute("COMMIT")
        finally:
            other.close()
        wrote.append(True)
        return await original.handle(ctx, answer)

    monkeypatch.setitem(steps, "language", Step(original.prompt, writing_meanwhile))  # type: ignore[index]
    phone = Phone(services)
    await phone.say("hello")
    await phone.say("English")
    assert wrote == [True]
