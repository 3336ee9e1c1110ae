"""Every shipped catalog is complete, keeps the placeholders, has CLDR's plural forms, and says
whether a native speaker reviewed it."""

from __future__ import annotations

import gettext
import re
from pathlib import Path

import pytest
from babel import Locale
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from flows.i18n import LOCALES_DIR, SHIPPED, negotiate, translator
from flows.standard import KEYWORDS, standard_registry

PLACEHOLDER = re.compile(r"\{[a-z_]+\}")
TRANSLATED = [code for code in SHIPPED if code != "en"]


def catalog(locale: str):  # type: ignore[no-untyped-def]
    with open(LOCALES_DIR / locale / "LC_MESSAGES" / "messages.po", "rb") as fh:
        return read_po(fh, locale=locale)


def template_ids() -> set[str]:
    with open(LOCALES_DIR / "messages.pot", "rb") as fh:
        return {m.id if isinstance(m.id, str) else m.id[0] for m in read_po(fh) if m.id}


@pytest.mark.parametrize("locale", TRANSLATED)
def test_catalog_is_complete_and_keeps_placeholders(locale: str) -> None:
    entries = [m for m in catalog(locale) if m.id]
    ids = {m.id if isinstance(m.id, str) else m.id[0] for m in entries}
    assert ids == template_ids(), "run `make i18n`"
    for message in entries:
        sources = [message.id] if isinstance(message.id, str) else list(message.id)
        strings = [message.string] if isinstance(message.string, str) else list(message.string)
        assert all(s.strip() for s in strings), f"{locale}: untranslated {sources[0]!r}"
        if message.context == "keywords":
            continue  # word lists, no placeholders
        wanted = set(PLACEHOLDER.findall(sources[-1]))
        # A plural form may leave the number out where the language says it in words
        # (Arabic "رسالة واحدة", one message); the last, general form keeps everything.
        assert set(PLACEHOLDER.findall(strings[-1])) == wanted, f"{locale}: {strings[-1]!r}"
        for s in strings:
            assert set(PLACEHOLDER.findall(s)) <= wanted, f"{locale}: {sources[0]!r} -> {s!r}"
        assert not message.fuzzy, f"{locale}: fuzzy {sources[0]!r}"


@pytest.mark.parametrize("locale", SHIPPED)
def test_catalog_records_its_review_status(locale: str) -> None:
    header = catalog(locale).header_comment
    status = re.search(r"^# Review-Status: (draft|reviewed)$", header, re.M)
    assert status, f"{locale}: the header comment must say 'Review-Status: draft' or 'reviewed'"


@pytest.mark.parametrize("locale", SHIPPED)
def test_compiled_plural_forms_match_cldr(locale: str) -> None:
    """gettext's plural index must be a one-to-one renaming of CLDR's categories: three for
    Russian and Ukrainian, six for Arabic, one for Tajik."""
    mo = LOCALES_DIR / locale / "LC_MESSAGES" / "messages.mo"
    with open(mo, "rb") as fh:
        header = read_mo(fh)
    with open(mo, "rb") as fh:
        compiled = gettext.GNUTranslations(fh)  # the plural rule exactly as gettext runs it
    cldr = Locale.parse(locale).plural_form
    index_of: dict[str, set[int]] = {}
    for n in range(0, 1200):
        index_of.setdefault(cldr(n), set()).add(compiled.plural(n))  # type: ignore[attr-defined]
    assert all(len(indices) == 1 for indices in index_of.values()), index_of
    assert header.num_plurals == len(index_of) == {
        "ru": 3, "uk": 3, "ar": 6, "tg": 1}.get(locale, 2)


def test_plural_messages_use_the_right_form() -> None:
    message = ("This erases everything we keep about you, including our conversation of "
               "{count} message. It cannot be undone. Delete your data?")
    plural = message.replace("{count} message.", "{count} messages.")
    ru = translator("ru")
    forms = {ru.ngettext(message, plural, n) for n in (1, 3, 5)}
    assert len(forms) == 3
    assert ru.ngettext(message, plural, 21) == ru.ngettext(message, plural, 1)
    ar = translator("ar")
    # One, two, few (3-10) and many (11-99) read differently; zero and "other" (100) may
    # share the many form's noun.
    assert len({ar.ngettext(message, plural, n) for n in (1, 2, 3, 11)}) == 4
    assert "{count}" not in ar.ngettext(message, plural, 2)  # the dual says "two messages"


def test_arabic_is_right_to_left_and_the_others_are_not() -> None:
    assert translator("ar").rtl
    assert not any(translator(code).rtl for code in SHIPPED if code != "ar")


def test_locale_negotiation_order() -> None:
    assert negotiate("uk", "ru", "KG") == "uk"  # their own choice first
    assert negotiate(None, "ru-RU", "UZ") == "ru"  # then Telegram's language_code
    assert negotiate(None, "pt-BR", "KG") == "ky"  # then the country of the number
    assert negotiate(None, None, "TJ") == "tg"
    assert negotiate(None, "de", "DE") == "en"  # then the default


def test_every_language_has_every_keyword_and_none_is_ambiguous() -> None:
    registry = standard_registry()  # raises if one word meant two keywords
    for locale in TRANSLATED:
        t = translator(locale)
        for keyword in KEYWORDS:
            english = set(registry.keyword_words(keyword.name, translator("en")))
            own = set(registry.keyword_words(keyword.name, t)) - english
            assert own, f"{locale} has no words of its own for {keyword.name!r}"
            for word in own:
                assert registry.keyword(word) is keyword


def test_compiled_catalogs_are_fresh() -> None:
    for locale in SHIPPED:
        po = LOCALES_DIR / locale / "LC_MESSAGES" / "messages.po"
        mo = po.with_suffix(".mo")
        assert mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime, "run `make i18n`"
        assert Path(mo).stat().st_size > 0
