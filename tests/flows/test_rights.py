"""Know your rights, as a person goes through it: menu, country, topic, text, who helps; free
text at the menu; the full text on SMS; every shipped language."""

from __future__ import annotations

import re

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker

from bot.services import Services
from flows import content, topics
from flows.i18n import SHIPPED, translator
from flows.rights import SEED_DIRECTORY, TOPIC_LABELS
from flows.text import sms_segments, sms_text
from storage.directory import load_seed
from tests.conftest import Phone

MENU_Q = "Main menu. What do you need?"
CYRILLIC = re.compile(r"[\u0400-\u04ff]")
ARABIC = re.compile(r"[\u0600-\u06ff]")


async def seeded(services: Services) -> Services:
    report = await load_seed(async_sessionmaker(services.db), SEED_DIRECTORY)
    assert report.ok, report.rejected[:3]
    return services


async def at_menu(phone: Phone, language: str = "en", country: str = "ES") -> None:
    await phone.say("hello")
    await phone.say(str(SHIPPED.index(language) + 1))
    await phone.say("1")  # safe to text
    assert translator(language)(MENU_Q) in await phone.say(choice=country)


def article(locale: str, country: str, topic: str) -> content.Article:
    found = content.article(locale, country, topic)
    assert found is not None and found.locale == locale, (locale, country, topic)
    return found


async def test_menu_country_topic_text_on_sms(services: Services) -> None:
    await seeded(services)
    phone = Phone(services)
    await at_menu(phone, country="ES")  # the phone's country is not where they are
    asked = await phone.say("Know your rights")
    assert "Which country are you in now?" in asked and "Spain" not in asked
    topics_prompt = await phone.say("United States")
    assert "Your rights in United States" in topics_prompt
    assert "1. Passport and documents" in topics_prompt

    reply = await phone.say("1")
    text = article("en", "US", "documents")
    assert reply.startswith(sms_text(text.sms))  # SMS: the short version...
    assert text.title not in reply
    offer = re.search(r"1\. Full text \((\d+) SMS\)", reply)
    assert offer, reply  # ...and the offer of the full one, with what it costs
    full = await phone.say("1")
    assert full.startswith(text.title) and "Who can help:" in full
    assert "1-888-373-7888" in full and "911" in full  # the directory and emergency numbers
    article_part = full.split("\n\nYour rights in United States")[0]
    assert int(offer.group(1)) == sms_segments(article_part)
    assert "Your rights in United States" in full  # back at the topics


async def test_telegram_shows_the_full_text_and_no_offer(services: Services) -> None:
    await seeded(services)
    phone = Phone(services, style="telegram")
    await phone.send("hello")
    await phone.send(choice="en")
    await phone.send(choice="yes")
    await phone.send(choice="US")
    [asked] = await phone.send(choice="rights")
    await phone.send(choice="US")
    [reply] = await phone.send(choice="violence")
    text = article("en", "US", "violence")
    assert reply.text.startswith(text.title)
    assert "Who can help:" in reply.text and "1-800-799-7233" in reply.text
    ids = [i for i, _ in reply.choices]
    assert "full" not in ids and ids == ["topic", "@menu"]
    assert asked.choices[0] == ("US", "United States")  # their country first


@pytest.mark.parametrize("locale", SHIPPED)
async def test_every_language_reads_its_own_text(services: Services, locale: str) -> None:
    await seeded(services)
    t = translator(locale)
    phone = Phone(services)
    await at_menu(phone, locale, country="US")
    asked = await phone.say(t("Know your rights"))
    assert asked.startswith(t("Are you in {country} now? Choose it, or the country you are in.")
                            .split("{")[0])
    await phone.say("1")  # the country they are in comes first
    reply = await phone.say(t(TOPIC_LABELS["wages"]))
    text = article(locale, "US", "wages")
    assert reply.startswith(sms_text(text.sms))
    assert sms_segments(text.sms) <= 2
    if locale in ("ru", "uk", "tg", "ky"):
        assert CYRILLIC.search(text.sms) and CYRILLIC.search(text.body)
    if locale == "ar":
        assert ARABIC.search(text.sms) and ARABIC.search(text.body)


async def test_free_text_at_the_menu_finds_the_topic(services: Services) -> None:
    await seeded(services)
    phone = Phone(services)
    await at_menu(phone, country="US")
    reply = await phone.say("my boss took my passport, what can I do")
    assert reply.startswith(sms_text(article("en", "US", "documents").sms))
    # ...and where no text exists for their country, it asks where they are first.
    other = Phone(services)
    await at_menu(other, country="ES")
    asked = await other.say("my husband beats me")
    assert "Which country are you in now?" in asked
    reply = await other.say("Poland")
    assert reply.startswith(sms_text(article("en", "PL", "violence").sms))


@pytest.mark.parametrize("locale", SHIPPED)
async def test_free_text_in_every_language(services: Services, locale: str) -> None:
    """The first phrase of each language's own words for "documents" leads to that text."""
    phrase = " ".join(w.rstrip("*") + ("а" if w.endswith("*") and locale in (
        "ru", "uk", "tg", "ky") else "") for w in topics.entries(locale)["documents"][0].words)
    phone = Phone(services)
    await at_menu(phone, locale, country="TR")
    reply = await phone.say(phrase)
    assert reply.startswith(sms_text(article(locale, "TR", "documents").sms)), (locale, phrase)


async def test_another_country_gets_numbers_and_organisations(services: Services) -> None:
    await seeded(services)
    phone = Phone(services)
    await at_menu(phone, country="DE")
    await phone.say("Know your rights")
    reply = await phone.say("Another country")
    assert "We have texts on rights for these countries so far" in reply
    assert "116 016" in reply  # the German women's line, from the directory
    assert MENU_Q in reply


async def test_a_deep_link_lands_on_the_rights_in_its_language(services: Services) -> None:
    phone = Phone(services, style="telegram")
    [first] = await phone.send("/start uz-rights")
    t = translator("uz")
    assert t("Is it safe for you to get messages from us on this phone?") in first.text
    await phone.send(choice="yes")
    [where] = await phone.send(choice="US")  # the welcome asks where they are
    assert t("Know your rights") not in where.text  # ...and goes on to the rights, not the menu
    assert where.choices[-1] == ("other", t("Another country"))


# What people write, in each language (from the translators' own tests): the topic it is about.
SENTENCES = {
    "en": ("my boss took my passport and will not give it back", "documents"),
    "ru": ("Работодатель забрал мой паспорт и не отдает", "documents"),
    "uk": ("Мені не платять зарплату вже три місяці", "wages"),
    "es": ("Mi esposo me pega todos los días", "violence"),
    "uz": ("3 oydan beri ish haqimni to'lamayapti", "wages"),
    "tg": ("Шавҳарам маро мезанад", "violence"),
    "ky": ("Акысыз юрист керек", "legal_aid"),
    "ar": ("الكفيل ماسك جوازي وما يبي يرجعه", "documents"),
}


@pytest.mark.parametrize("locale", SHIPPED)
async def test_what_people_write_on_telegram_in_every_language(services: Services,
                                                                locale: str) -> None:
    """Telegram style: the full text in the person's script, its organisations, and buttons
    without the SMS-only offer."""
    await seeded(services)
    sentence, topic = SENTENCES[locale]
    phone = Phone(services, style="telegram")
    await phone.send("hello")
    await phone.send(choice=locale)
    await phone.send(choice="yes")
    await phone.send(choice="RU")
    [reply] = await phone.send(sentence)
    text = article(locale, "RU", topic)
    assert text.title in reply.text and "112" in reply.text
    assert "full" not in [i for i, _ in reply.choices]
    script = ARABIC if locale == "ar" else CYRILLIC if locale in ("ru", "uk", "tg", "ky") else None
    if script is not None:
        assert script.search(reply.text)
