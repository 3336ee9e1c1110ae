"""Conversations as a person has them: send text, read the replies."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from bot.services import Services
from flows.engine import Engine
from flows.i18n import SHIPPED, translator
from flows.standard import standard_registry
from flows.text import sms_text
from storage.models import Contact, Conversation, Message, OutboxItem
from tests.conftest import Phone

SAFETY_Q = "Is it safe for you to get messages from us on this phone?"
MENU_Q = "Main menu. What do you need?"
STOPPED = "You will not get any more messages from us."
STOPPED_MSG = ("You will not get any more messages from us. Send {start} if you want to start "
               "again.")


async def welcome(phone: Phone, language_number: int = 1, country: str = "ES") -> None:
    await phone.say("hello")
    await phone.say(str(language_number))
    await phone.say("1")  # safe to text
    await phone.send(choice=country)


async def count(services: Services, model: type) -> int:
    async with services.db.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(model))).scalar_one())


async def test_welcome_asks_language_then_safety_then_country_then_menu(phone: Phone) -> None:
    first = await phone.say("hi")
    assert "Choose your language" in first
    assert "2. Русский" in first and "8. العربية" in first
    assert SAFETY_Q in await phone.say("1")
    assert "Which country are you in now?" in await phone.say("yes")
    assert MENU_Q in await phone.say("Spain")


@pytest.mark.parametrize("locale", SHIPPED)
async def test_welcome_in_every_language(services: Services, locale: str) -> None:
    phone = Phone(services, language=locale)
    t = translator(locale)
    greeting = await phone.say("hi")
    assert t("Choose your language:") in greeting  # the phone's language is negotiated
    safety = await phone.say(str(SHIPPED.index(locale) + 1))
    assert sms_text(t(SAFETY_Q)) in safety
    if locale != "en":
        assert SAFETY_Q not in safety, "the catalog must translate it"
    country = await phone.say(t("Yes"))  # answered by label, in the person's language
    assert sms_text(t("Which country are you in now? We use it only to show the right "
                      "emergency numbers and services.")) in country


async def test_telegram_style_offers_buttons_and_takes_button_presses(services: Services) -> None:
    phone = Phone(services, style="telegram")
    [reply] = await phone.send("hi")
    assert ("ru", "Русский") in reply.choices
    assert "1." not in reply.text  # buttons, not numbered lines
    [reply] = await phone.send(choice="uk")
    assert reply.text == translator("uk")(SAFETY_Q)


async def test_keywords_work_mid_flow_in_every_language(services: Services) -> None:
    registry = standard_registry()
    for locale in SHIPPED:
        phone = Phone(services)
        await phone.say("hi")
        await phone.say(str(SHIPPED.index(locale) + 1))  # now at the safety question
        t = translator(locale)
        emergency_word = registry.keyword_words("emergency", t)[0]
        assert "112" in await phone.say(emergency_word), locale
        menu_word = registry.keyword_words("menu", t)[0]
        assert sms_text(t(MENU_Q)) in await phone.say(menu_word.upper()), locale
        stop_word = registry.keyword_words("stop", t)[0]
        assert sms_text(t(STOPPED_MSG).split("{start}")[0]) in await phone.say(
            f"{stop_word}!"), locale
        start_word = registry.keyword_words("start", t)[0]
        # They left the safety question unanswered: starting again asks it before anything.
        assert t(SAFETY_Q) in await phone.say(start_word), locale
        assert t("Which country are you in now?") in await phone.say("1"), locale


async def test_a_deep_link_shows_emergency_numbers_before_the_welcome(services: Services
                                                                      ) -> None:
    phone = Phone(services, style="telegram")
    [reply] = await phone.send("/start uk-emergency")
    uk = translator("uk")
    assert reply.text.startswith(uk("If you are in danger now, call:"))
    assert "112" in reply.text
    # The language came with the link; the safety question still comes before anything else.
    assert reply.text.endswith(uk(SAFETY_Q))
    [reply] = await phone.send(choice="yes")
    assert uk("Which country are you in now? We use it only to show the right emergency "
              "numbers and services.") in reply.text


async def test_a_deep_link_to_settings_waits_for_the_welcome_then_opens_it(phone: Phone
                                                                          ) -> None:
    assert "Choose your language" in await phone.say("/start settings")
    assert SAFETY_Q in await phone.say("1")
    assert "Which country are you in now?" in await phone.say("yes")
    assert "Settings. What would you like to change?" in await phone.say("Spain")
    # Once there, the welcome is over: a later /start greets and goes home.
    assert MENU_Q in await phone.say("/start")


async def test_a_deep_link_for_someone_already_welcomed_goes_straight_there(phone: Phone
                                                                           ) -> None:
    await welcome(phone)
    assert "Settings. What would you like to change?" in await phone.say("/start SETTINGS")
    assert translator("ru")("Choose your language:") in await phone.say("/start ru_language")
    assert "112" in await phone.say("/start emergency")


async def test_unknown_or_hostile_deep_links_only_greet(phone: Phone) -> None:
    await welcome(phone)
    for payload in ("stop", "delete", "x" * 500, "xx-" * 40, "'; drop table contacts; --"):
        reply = await phone.say(f"/start {payload}")
        assert reply.startswith("Welcome back."), payload
    assert "Settings" in await phone.say("3")  # nothing was stopped or deleted


def test_a_deep_link_name_that_is_a_language_code_is_refused() -> None:
    registry = standard_registry()
    with pytest.raises(ValueError, match="language code"):
        type(registry)(list(registry.flows.values()), start=registry.start,
                       home=registry.home, keywords=(),
                       when_stopped=registry.when_stopped, lost=registry.lost,
                       unsupported=registry.unsupported, deep_links={"ru": registry.lost})


async def test_emergency_comes_first_even_for_a_new_contact(phone: Phone) -> None:
    reply = await phone.say("SOS")
    assert reply.startswith("If you are in danger now, call:")
    assert "112" in reply and "911" in reply
    assert "Choose your language" in await phone.say("hi")  # the welcome still follows


async def test_emergency_numbers_of_the_contacts_country(phone: Phone) -> None:
    await welcome(phone, country="DE")
    reply = await phone.say("emergency")
    assert "(in Germany)" in reply
    assert "110 - Police" in reply
    assert reply.count("112") == 1  # one line per number


async def test_unknown_input_asks_again_then_offers_menu_and_a_person(phone: Phone) -> None:
    await welcome(phone)
    first = await phone.say("blorp")
    assert "Sorry, I did not understand. Please reply with a number from 1 to 3." in first
    assert MENU_Q in first
    await phone.say("???")
    lost = await phone.send("no idea")
    assert "I still could not understand" in lost[0].text
    assert "1. Main menu" in lost[0].text and "2. Talk to a person" in lost[0].text
    person = await phone.say("2")
    assert "112" in person and MENU_Q in person
    assert MENU_Q in await phone.say("blah")  # the count of misses started again


async def test_menu_button_from_the_lost_prompt(services: Services) -> None:
    phone = Phone(services, style="telegram")
    await welcome(phone)
    for _ in range(3):
        [reply] = await phone.send("nonsense")
    assert ("@menu", "Main menu") in reply.choices
    [reply] = await phone.send(choice="@menu")
    assert reply.text == MENU_Q


async def test_typing_errors_and_labels(phone: Phone) -> None:
    await welcome(phone)
    assert "Settings. What would you like to change?" in await phone.say("setings")
    assert "Choose your language" in await phone.say("Language")
    changed = await phone.say("русский")
    assert translator("ru")("Main menu. What do you need?") in changed
    assert "Русский" in changed


async def test_repeated_message_id_changes_nothing(services: Services) -> None:
    phone = Phone(services)
    await phone.send("hi", message_id="m-1")
    assert await phone.send("2", message_id="m-2")
    state_before = await count(services, Message)
    assert await phone.send("2", message_id="m-2") == []  # redelivered: acknowledged only
    assert await phone.send("whatever", message_id="m-1") == []
    assert await count(services, Message) == state_before
    assert SAFETY_Q not in await phone.say("1")  # still at the safety question, in Russian


async def test_messages_of_one_contact_run_one_at_a_time_in_arrival_order(
    services: Services,
) -> None:
    phone = Phone(services)
    await phone.send("hi")
    # Arriving together: language, then safety, then country. Out of order they would miss.
    results = await asyncio.gather(
        phone.send("1", message_id="a"), phone.send("1", message_id="b"),
        phone.send("ES", message_id="c"),
    )
    texts = "\n".join(r.text for replies in results for r in replies)
    assert SAFETY_Q in texts and "Which country" in texts and MENU_Q in texts
    assert "did not understand" not in texts


async def test_many_people_at_once(services: Services) -> None:
    phones = [Phone(services) for _ in range(30)]

    async def talk(p: Phone) -> None:
        await welcome(p, country="UA")
        assert "Settings" in await p.say("3")

    await asyncio.gather(*(talk(p) for p in phones))
    assert await count(services, Contact) == 30
    assert await count(services, OutboxItem) == 30 * 5


async def test_a_second_process_continues_the_conversation(
    services: Services, database_url: str, tmp_path: object
) -> None:
    from tests.conftest import make_settings

    phone = Phone(services, user="shared")
    await phone.say("hi")
    await phone.say("1")
    other = Services.build(make_settings(database_url, tmp_path))  # type: ignore[arg-type]
    try:
        again = Phone(other, user="shared")
        again._sent = 10
        assert "Which country" in await again.say("yes")
    finally:
        await other.close()


async def test_idle_conversations_restart_at_the_menu(services: Services) -> None:
    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    services.engine = Engine(services.turns, standard_registry(), idle_after=timedelta(hours=1),
                             clock=lambda: now[0])
    phone = Phone(services)
    await welcome(phone)
    assert "Settings. What" in await phone.say("3")
    now[0] += timedelta(hours=2)
    reply = await phone.say("hello again")
    assert MENU_Q in reply and "did not understand" not in reply
    assert "Settings. What" in await phone.say("3")  # answers the menu, not old settings


async def test_stop_then_only_keywords_answer(phone: Phone, services: Services) -> None:
    await welcome(phone)
    assert STOPPED in await phone.say("stop")
    reminder = await phone.say("hello?")
    assert "You asked us to stop sending messages. Send START" in reminder
    assert "112" in await phone.say("sos")
    async with services.db.connect() as conn:
        status = (await conn.execute(select(Contact.status))).scalar_one()
    assert status == "stopped"
    assert "Welcome back." in await phone.say("start")


async def test_delete_my_data_asks_then_erases_everything(
    phone: Phone, services: Services
) -> None:
    await welcome(phone)
    other = Phone(services)
    await other.say("hi")
    confirm = await phone.say("delete my data")
    assert "including our conversation of 8 messages" in confirm
    assert "Nothing was deleted." in await phone.say("no")
    await phone.say("delete my data")
    assert "Your data has been deleted." in await phone.say("yes")
    # Only the other person is left, and the farewell was deleted once delivered.
    assert await count(services, Contact) == 1
    assert await count(services, Conversation) == 1
    async with services.db.connect() as conn:
        left = (await conn.execute(select(func.count()).select_from(Message)
                                   .where(Message.contact_id != 2))).scalar_one()
        outbox_ids = (await conn.execute(select(OutboxItem.contact_id))).scalars().all()
    assert left == 0
    assert set(outbox_ids) == {2}
    assert "Choose your language" in await phone.say("hi")  # a new beginning


async def test_delete_works_for_a_stopped_contact(phone: Phone, services: Services) -> None:
    await welcome(phone)
    await phone.say("stop")
    assert "Delete your data?" in await phone.say("delete my data")
    assert "Your data has been deleted." in await phone.say("1")
    assert await count(services, Contact) == 0


@pytest.mark.parametrize("style", ["sms", "telegram"])
async def test_long_mixed_script_text_is_answered(services: Services, style: str) -> None:
    phone = Phone(services, style=style)
    text = ("Привет мир 👋🏽 مرحبا بالعالم سلام Hola 你好 ᚠᚢᚦ \u200f\u202e " * 200)[:5000]
    assert len(text) == 5000
    assert "Choose your language" in await phone.say(text)
    await phone.say("1")
    assert "did not understand" in await phone.say(text)


async def test_arabic_replies_are_marked_right_to_left(services: Services) -> None:
    telegram = Phone(services, style="telegram", language="ar")
    [reply] = await telegram.send("مرحبا")
    assert reply.rtl
    assert all(line.startswith("\u200f") for line in reply.text.split("\n") if line)
    sms = Phone(services, style="sms", language="ar")
    [reply] = await sms.send("مرحبا")
    assert reply.rtl and "\u200f" not in reply.text


async def test_replies_committed_before_a_crash_are_delivered_next_time(
    services: Services,
) -> None:
    from flows.engine import Inbound

    phone = Phone(services)
    # The engine committed the reply, then the process died before delivering it.
    await services.engine.handle(Inbound("simulator", phone.user, text="hi", message_id="x1"))
    replies = await phone.send("1", message_id="x2")
    assert [r.text.split("\n")[0] for r in replies] == [
        "Hello! This is a free and confidential helpline run by Test NGO.", SAFETY_Q]


async def test_a_keyword_option_chosen_by_number(phone: Phone) -> None:
    await welcome(phone)
    assert "Settings. What" in await phone.say("3")
    assert MENU_Q in await phone.say("5")  # "5. Main menu"


async def test_two_processes_racing_on_one_contact_lose_no_update(
    services: Services, database_url: str, tmp_path: object
) -> None:
    from tests.conftest import make_settings

    other = Services.build(make_settings(database_url, tmp_path))  # type: ignore[arg-type]
    try:
        here, there = Phone(services, user="racer"), Phone(other, user="racer")
        there._sent = 1000  # distinct message ids
        await here.say("hi")
        results = await asyncio.gather(*(
            (here if n % 2 else there).send("menu") for n in range(20)
        ))
        # Each reply went to exactly one of the exchanges (whoever delivered first).
        assert sum(len(r) for r in results) == 20
        async with services.db.connect() as conn:
            version = (await conn.execute(select(Conversation.version))).scalar_one()
            inbound = (await conn.execute(select(func.count()).select_from(Message)
                                          .where(Message.direction == "in"))).scalar_one()
        assert (version, inbound) == (21, 21)
    finally:
        await other.close()


@pytest.mark.parametrize("locale", SHIPPED)
async def test_help_is_long_on_telegram_and_short_over_sms(services: Services,
                                                           locale: str) -> None:
    from flows.text import sms_segments

    t = translator(locale)
    replies = {}
    for style in ("telegram", "sms"):
        phone = Phone(services, style=style)
        await welcome(phone, SHIPPED.index(locale) + 1)
        [replies[style]] = await phone.send("help")
    full, short = replies["telegram"].text, replies["sms"].text
    assert full.replace("\u200f", "").startswith(t(
        "This is a free and confidential helpline. You can send these words at any time:\n"
        "{menu} – main menu\n{emergency} – emergency numbers\n{language} – change language\n"
        "{stop} – stop messages\n{delete} – delete your data").split(":")[0])
    lead = t("Send {menu}, {emergency}, {language}, {stop} or {delete} at any time.")
    assert short.startswith(lead.split("{")[0])
    assert t(MENU_Q) in short  # the prompt still follows
    assert sms_segments(short) < sms_segments(full.replace("\u200f", ""))
