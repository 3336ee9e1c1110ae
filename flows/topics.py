"""Free text to a rights topic: "my boss took my passport" -> documents.

The words are data a native speaker edits, not code: `locales/<lang>/topics.toml`, one table per
topic with a list of `words`. An entry is a word or a phrase; a `*` at the end of a word matches
any ending (Russian, Ukrainian, Uzbek, Tajik, Kyrgyz and Arabic change word endings: "паспорт*"
matches паспорт, паспорта, паспортом). A phrase matches when its words come in that order, side by
side. The topic with the most matching entries wins; a tie names no topic (the step asks
instead). The triage of "Help now" extends the same files with kinds of case and priorities.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from flows.content import TOPICS
from flows.i18n import LOCALES_DIR, SHIPPED
from flows.text import fold

FILE = "topics.toml"
_WORD = re.compile(r"[\w']+")
# Matching looks at the first words only: what one message can cost stays bounded.
MAX_WORDS = 60
MAX_CHARS = 1000  # folded before it is split into words


@dataclass(frozen=True)
class Entry:
    words: tuple[str, ...]  # folded; a trailing "*" marks a prefix

    def found_at(self, tokens: list[str], at: int) -> bool:
        return at + len(self.words) <= len(tokens) and all(
            _matches(word, tokens[at + i]) for i, word in enumerate(self.words))


# Prefix entries are found by their first letters: every stem has at least this many.
_KEY = 3


@dataclass(frozen=True)
class Index:
    """One language's entries by their first word, so a message is read once, word by word,
    instead of once per entry."""

    exact: dict[str, list[tuple[str, Entry]]]  # first word -> (topic, entry)
    prefixed: dict[str, list[tuple[str, Entry]]]  # first letters of the first word's stem
    short: list[tuple[str, Entry]]  # prefix entries whose stem is shorter than _KEY

    def scores(self, tokens: list[str]) -> dict[str, int]:
        found: set[tuple[str, Entry]] = set()
        for at, token in enumerate(tokens):
            for candidate in (*self.exact.get(token, ()), *self.prefixed.get(token[:_KEY], ()),
                              *self.short):
                if candidate not in found and candidate[1].found_at(tokens, at):
                    found.add(candidate)
        scores: dict[str, int] = {}
        for topic, _ in found:
            scores[topic] = scores.get(topic, 0) + 1
        return scores


@cache
def index(locale: str, root: Path = LOCALES_DIR) -> Index:
    exact: dict[str, list[tuple[str, Entry]]] = {}
    prefixed: dict[str, list[tuple[str, Entry]]] = {}
    short: list[tuple[str, Entry]] = []
    for topic, found in entries(locale, root).items():
        for entry in found:
            first = entry.words[0]
            if not first.endswith("*"):
                exact.setdefault(first, []).append((topic, entry))
            elif len(first) - 1 >= _KEY:
                prefixed.setdefault(first[:_KEY], []).append((topic, entry))
            else:
                short.append((topic, entry))
    return Index(exact, prefixed, short)


def _matches(word: str, token: str) -> bool:
    return token.startswith(word[:-1]) if word.endswith("*") else token == word


@cache
def entries(locale: str, root: Path = LOCALES_DIR) -> dict[str, tuple[Entry, ...]]:
    """One language's entries by topic (none when the language has no file)."""
    path = root / locale / FILE
    if not path.is_file():
        return {}
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    table: dict[str, tuple[Entry, ...]] = {}
    for topic, section in raw.items():
        if topic not in TOPICS:
            raise ValueError(f"{path}: unknown topic {topic!r}")
        phrases = []
        for phrase in section.get("words", ()):
            found = tuple(w for raw in str(phrase).split() for w in _entry_words(raw))
            if found and "*" not in found:
                phrases.append(Entry(found))
        table[topic] = tuple(phrases)
    return table


def _entry_words(raw: str) -> list[str]:
    """One word of an entry as the words a message is read as ("ҳисоб-китоб*" is two); the
    prefix mark is taken off before folding, which drops punctuation, and put back."""
    found = words(raw.rstrip("*"))
    if raw.endswith("*") and found:
        found[-1] += "*"
    return found


def words(text: str) -> list[str]:
    """Folded words without the punctuation around them ("police," -> "police"); an
    apostrophe inside a word stays ("didn't", "o'g'il"). Ё is read as Е: most people type е."""
    folded = fold(text).replace("ё", "е")
    return [w.strip("'") for w in _WORD.findall(folded) if w.strip("'")]


def topic_of(text: str, locales: Iterable[str]) -> str | None:
    """The topic `text` is about, looking in the given languages' words (the person's own
    first); None if none or several topics fit equally."""
    tokens = words(text[:MAX_CHARS])[:MAX_WORDS]
    if not tokens:
        return None
    for locale in dict.fromkeys(locales):
        scores = index(locale).scores(tokens)
        best = max(scores.values(), default=0)
        if best:
            winners = [t for t, score in scores.items() if score == best]
            return winners[0] if len(winners) == 1 else None
    return None


def search_order(locale: str) -> tuple[str, ...]:
    """The person's language first, then English, then every other shipped language: people
    write in the language they think in, which is not always the one they chose."""
    return tuple(dict.fromkeys((locale, "en", *SHIPPED)))
