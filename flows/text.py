"""Folding what people type so that "Стоп!", "  stop " and "/STOP" compare equal."""

from __future__ import annotations

import re
import unicodedata

# Apostrophe look-alikes used in Uzbek Latin (o‘zbek, g‘) and elsewhere.
_APOSTROPHES = str.maketrans({c: "'" for c in "‘’ʻʼ`´ʹ′"})
# Arabic: hamza forms of alef, alef maqsura and teh marbuta are often typed interchangeably.
_ARABIC = str.maketrans({"أ": "ا", "إ": "ا", "آ": "ا", "ٱ": "ا", "ى": "ي", "ة": "ه"})
_SPACE = re.compile(r"\s+")
_EDGE = re.compile(r"^[\W_]+|[\W_]+$")


def clean_input(text: str) -> str:
    """Make arbitrary input safe to store and process: no lone surrogates, no NULs."""
    text = text.encode("utf-8", errors="replace").decode("utf-8")
    return text.replace("\x00", "")


def fold(text: str) -> str:
    """A comparison key: NFKC, case-folded, marks and tatweel removed, spaces collapsed, no
    punctuation at either end, Telegram's command slash and @botname dropped."""
    text = unicodedata.normalize("NFKC", text).casefold().translate(_APOSTROPHES)
    text = text.translate(_ARABIC).replace("\u0640", "")  # tatweel
    decomposed = unicodedata.normalize("NFD", text)
    # Drop combining marks except those that change letters in Cyrillic (й, ё): recompose them.
    text = unicodedata.normalize(
        "NFC",
        "".join(
            c for c in decomposed
            if not (unicodedata.category(c) == "Mn" and c not in "\u0306\u0308")
        ),
    )
    if text.startswith("/"):
        text = text[1:].split("@", 1)[0]
    text = _SPACE.sub(" ", text)
    return _EDGE.sub("", text)


def as_number(text: str) -> int | None:
    """'2', '2.', ' ٢ ' (Arabic-Indic digits) -> 2; anything else -> None."""
    key = fold(text)
    if key.isdigit() and len(key) <= 4:
        return int(key)
    return None
