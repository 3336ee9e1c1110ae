"""Translations, always bound to the recipient's locale and passed explicitly."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from babel import Locale
from babel.languages import get_official_languages
from babel.support import NullTranslations, Translations

SHIPPED: tuple[str, ...] = ("en", "ru", "uk", "es", "uz", "tg", "ky", "ar")
DEFAULT_LOCALE = "en"
LOCALES_DIR = Path(__file__).resolve().parents[1] / "locales"
DOMAIN = "messages"


def N_(message: str) -> str:
    """Marks a string for extraction; it is translated later, for its recipient."""
    return message


def NP_(context: str, message: str) -> str:
    """Like N_, for a message with a context (msgctxt)."""
    return message


class Translator:
    """gettext bound to one locale."""

    def __init__(self, locale: str, translations: NullTranslations) -> None:
        self.locale = locale
        self._t = translations
        self.rtl = Locale.parse(locale).character_order == "right-to-left"

    def __call__(self, message: str) -> str:
        return self._t.gettext(message)

    gettext = __call__

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return self._t.ngettext(singular, plural, n)

    def pgettext(self, context: str, message: str) -> str:
        return str(self._t.pgettext(context, message))

    @property
    def language_name(self) -> str:
        return str(Locale.parse(self.locale).get_display_name(self.locale))


@cache
def translator(locale: str, locales_dir: Path = LOCALES_DIR) -> Translator:
    if locale not in SHIPPED:
        locale = DEFAULT_LOCALE
    translations = Translations.load(str(locales_dir), [locale], domain=DOMAIN)
    return Translator(locale, translations)


def shipped_locale(tag: str | None) -> str | None:
    """'ru', 'ru-RU', 'uz_Latn', 'ES' -> a shipped locale or None."""
    if not tag:
        return None
    language = tag.replace("_", "-").split("-", 1)[0].strip().lower()
    return language if language in SHIPPED else None


def negotiate(
    stored: str | None, hint: str | None, country: str | None, default: str = DEFAULT_LOCALE
) -> str:
    """The contact's own choice, else the client's language (Telegram's language_code), else
    an official language of the country of their number, else the default."""
    for candidate in (stored, hint):
        found = shipped_locale(candidate)
        if found:
            return found
    if country:
        for language in get_official_languages(country.upper(), de_facto=True):
            found = shipped_locale(language)
            if found:
                return found
    return default


def language_name(locale: str) -> str:
    """A language's name in that language, as a chooser shows it: 'Русский', 'العربية'."""
    name = str(Locale.parse(locale).get_display_name(locale))
    return name[:1].upper() + name[1:]
