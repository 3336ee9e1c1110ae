"""Folding what people type so that "Стоп!", "  stop " and "/STOP" compare equal."""

from __future__ import annotations

import math
import re
import unicodedata

_LOOK_ALIKES = str.maketrans({
    # Apostrophe look-alikes used in Uzbek Latin (o‘zbek, g‘) and elsewhere.
    **{c: "'" for c in "‘’ʻʼ`´ʹ′"},
    # Arabic: hamza forms of alef, alef maqsura and teh marbuta are often typed interchangeably.
    "أ": "ا", "إ": "ا", "آ": "ا", "ٱ": "ا", "ى": "ي", "ة": "ه",
    "\u0640": None,  # tatweel
})
_SPACE = re.compile(r"\s+")
_EDGE = re.compile(r"[\W_]*")
# Unicode's stream-safe format allows 30 combining marks in a row; normalising a longer run
# costs time quadratic in its length (CPython sorts marks by insertion), so more are dropped.
_MAX_MARKS = 30
# Marks are never word characters or spaces (true of all of Unicode), so only runs of the
# rest can hold them: the letters between go by at the regex engine's speed.
_MAYBE_MARKS = re.compile(r"[^\w\s]{31}")
_NOT_WORDS = re.compile(r"[^\w\s]+")
# Marks that change letters in Cyrillic (й, ё): kept, and recomposed.
_KEPT_MARKS = "\u0306\u0308"
# Not marks themselves, but they decompose into marks of different classes (Tibetan).
_DECOMPOSE_TO_MARKS = frozenset("\u0f73\u0f75\u0f81")


def clean_input(text: str) -> str:
    """Make arbitrary input safe to store and process: no lone surrogates, no NULs."""
    text = text.encode("utf-8", errors="replace").decode("utf-8")
    return text.replace("\x00", "")


def fold(text: str) -> str:
    """A comparison key: NFKC, case-folded, marks and tatweel removed, spaces collapsed, no
    punctuation at either end, Telegram's command slash and @botname dropped."""
    text = unicodedata.normalize("NFKC", _limit_marks(text)).casefold().translate(_LOOK_ALIKES)
    decomposed = unicodedata.normalize("NFD", text)
    text = unicodedata.normalize("NFC", _NOT_WORDS.sub(_without_marks, decomposed))
    if text.startswith("/"):
        text = text[1:].split("@", 1)[0]
    text = _SPACE.sub(" ", text)
    return _strip_edges(text)


def _without_marks(run: re.Match[str]) -> str:
    return "".join(
        c for c in run.group() if c in _KEPT_MARKS or unicodedata.category(c) != "Mn"
    )


def _strip_edges(text: str) -> str:
    """Without punctuation (or spaces) at either end. Matched from each end, because a search
    for `[\\W_]+$` tries every position of a punctuation run: quadratic in its length."""
    return text[_edge_length(text):len(text) - _edge_length(text[::-1])]


def _edge_length(text: str) -> int:
    found = _EDGE.match(text)
    return found.end() if found else 0


def _limit_marks(text: str) -> str:
    if not _MAYBE_MARKS.search(text):
        return text
    kept: list[str] = []
    run = 0
    for c in text:
        if unicodedata.combining(c) or c in _DECOMPOSE_TO_MARKS:
            run += 1
            if run > _MAX_MARKS:
                continue
        else:
            run = 0
        kept.append(c)
    return "".join(kept)


def as_number(text: str) -> int | None:
    """'2', '2.', ' ٢ ' (Arabic-Indic digits) -> 2; anything else -> None."""
    return key_number(fold(text))


def key_number(key: str) -> int | None:
    """as_number for a key already folded."""
    if len(key) <= 4 and key.isdigit():
        return int(key)
    return None


# GSM 03.38: the basic set costs one septet, the extension set two (escape + character).
_GSM_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = set("^{}\\[~]|€\f")


def sms_segments(text: str) -> int:
    """How many SMS a text takes: GSM-7 160 alone or 153 per part; otherwise UCS-2 70 alone or
    67 per part, counted in UTF-16 units (an emoji is two). Cyrillic and Arabic are UCS-2."""
    if all(c in _GSM_BASIC or c in _GSM_EXTENDED for c in text):
        septets = sum(2 if c in _GSM_EXTENDED else 1 for c in text)
        return 1 if septets <= 160 else math.ceil(septets / 153)
    units = len(text.encode("utf-16-le")) // 2
    return 1 if units <= 70 else math.ceil(units / 67)


# Letters that look like GSM-7 ones but are not in it: one of them makes a whole SMS UCS-2,
# which fits 67 characters a part instead of 153 (Twilio's "smart encoding" does the same).
_GSM_LOOK_ALIKES = str.maketrans({
    "—": "-", "–": "-", "‐": "-", "‑": "-", "−": "-", "‘": "'", "’": "'", "ʻ": "'", "ʼ": "'",
    "“": '"', "”": '"', "„": '"', "«": '"', "»": '"', "…": "...", "•": "-", "\u00a0": " ",
    "\u202f": " ", "\u2009": " ",
})


def sms_text(text: str) -> str:
    """A text as it goes by SMS: typographic punctuation as its GSM-7 look-alike."""
    return text.translate(_GSM_LOOK_ALIKES)
