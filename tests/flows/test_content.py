"""Rights texts: parsing, staleness, the checks `hotline content status --check` runs, and free
text to topics."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from flows import content, topics
from flows.content import ContentError, status

SOURCE = """---
title: Your passport
sms: >-
  Nobody may keep your passport. Call 1-888-373-7888 or text 233733.
status: draft
sources:
  - url: https://example.org/pamphlet
    title: A pamphlet
    read: 2026-11-23
numbers:
  - 1-888-373-7888
  - "233733"
---
Your passport is **yours**.

- Keep a copy.
- Call 1-888-373-7888.
"""


def write(root: Path, locale: str, text: str, country: str = "US",
          topic: str = "documents") -> Path:
    path = content.path_of(locale, country, topic, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def translation(of: content.Article, title: str = "Ваш паспорт",
                sms: str = "Паспорт не отдавайте. 1-888-373-7888, СМС 233733.") -> str:
    return SOURCE.replace("title: Your passport", f"title: {title}").replace(
        "Nobody may keep your passport. Call 1-888-373-7888 or text 233733.", sms).replace(
        "status: draft", f"status: reviewed\ntranslates: {of.digest}")


KNOWN = {"1-888-373-7888", "233733"}


def test_a_text_parses_into_plain_lines(tmp_path: Path) -> None:
    text = content.parse(write(tmp_path, "en", SOURCE), "en", "US", "documents")
    assert text.title == "Your passport" and text.status == "draft"
    assert text.sms.startswith("Nobody may keep") and text.numbers == ("1-888-373-7888", "233733")
    assert text.sources[0].read.isoformat() == "2026-11-23"
    assert text.plain == "Your passport\n\nYour passport is yours.\n\n• Keep a copy.\n• Call " \
        "1-888-373-7888."


@pytest.mark.parametrize("broken, reason", [
    ("no front matter", "no front matter"),
    (SOURCE.replace("status: draft", "status: final"), "status must be"),
    (SOURCE.replace("    read: 2026-11-23\n", ""), "date it was read"),
    (SOURCE.replace("title: Your passport\n", ""), "'title' is missing"),
    (SOURCE.replace("sources:", "sources: [\n"), "not YAML"),
])
def test_a_broken_file_says_what_is_wrong(tmp_path: Path, broken: str, reason: str) -> None:
    with pytest.raises(ContentError, match=reason):
        content.parse(write(tmp_path, "en", broken), "en", "US", "documents")


def test_missing_stale_and_draft_per_language(tmp_path: Path) -> None:
    english = content.parse(write(tmp_path, "en", SOURCE), "en", "US", "documents")
    write(tmp_path, "ru", translation(english))
    found = status(KNOWN, root=tmp_path, locales=["en", "ru", "uk"], countries=["US"])
    states = {(f.locale, f.topic, f.state) for f in found}
    assert ("en", "documents", "draft") in states
    assert ("uk", "documents", "missing") in states
    assert not any(f.locale == "ru" and f.topic == "documents" for f in found)  # up to date
    assert ("en", "wages", "missing") in states  # every topic is expected

    # The English changes: the translation is stale until it is translated again.
    write(tmp_path, "en", SOURCE.replace("is **yours**", "belongs to you"))
    found = status(KNOWN, root=tmp_path, locales=["en", "ru"], countries=["US"])
    assert ("ru", "documents", "stale") in {(f.locale, f.topic, f.state) for f in found}


def test_numbers_must_be_listed_known_and_named(tmp_path: Path) -> None:
    write(tmp_path, "en", SOURCE.replace("- Keep a copy.", "- Or call 1-800-555-0100."))
    problems = [f.detail for f in status({"1-888-373-7888"}, root=tmp_path, locales=["en"],
                                         countries=["US"]) if f.state == "invalid"]
    assert any("1-800-555-0100 is named in the text but not listed" in p for p in problems)
    assert any("233733 is in neither the directory" in p for p in problems)


def test_the_sms_version_fits_two_segments(tmp_path: Path) -> None:
    long_sms = "Паспорт принадлежит вам. " * 6 + "1-888-373-7888, СМС 233733."
    write(tmp_path, "en", SOURCE)
    english = content.parse(content.path_of("en", "US", "documents", tmp_path), "en", "US",
                            "documents")
    write(tmp_path, "ru", translation(english, sms=long_sms))
    problems = [f.detail for f in status(KNOWN, root=tmp_path, locales=["ru"], countries=["US"])
                if f.state == "invalid"]
    assert any("takes 3 SMS" in p for p in problems)


def test_a_translation_keeps_the_sources(tmp_path: Path) -> None:
    english = content.parse(write(tmp_path, "en", SOURCE), "en", "US", "documents")
    write(tmp_path, "ru", translation(english).replace("https://example.org/pamphlet",
                                                       "https://example.org/other"))
    problems = [f.detail for f in status(KNOWN, root=tmp_path, locales=["en", "ru"],
                                         countries=["US"]) if f.state == "invalid"]
    assert any("sources of the English text are missing" in p for p in problems)


def test_shipped_content_passes_the_check() -> None:
    """What `hotline content status --check` says of the texts in this repository."""
    result = subprocess.run([sys.executable, "-m", "bot.cli", "content", "status", "--check"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


@pytest.mark.parametrize("text, topic", [
    ("my boss took my passport", "documents"),
    ("They have not paid my wages for 3 months", "wages"),
    ("My husband beats me", "violence"),
    ("How do I call my embassy?", "embassy"),
    ("I need a free lawyer", "legal_aid"),
    ("hello", None),
    ("", None),
])
def test_english_free_text_finds_its_topic(text: str, topic: str | None) -> None:
    assert topics.topic_of(text, ["en"]) == topic


def found_in(entry: topics.Entry, tokens: list[str]) -> bool:
    """The plain way: the entry tried at every position of the message."""
    return any(entry.found_at(tokens, at) for at in range(len(tokens)))


def test_prefixes_and_phrases(tmp_path: Path) -> None:
    (tmp_path / "ru").mkdir()
    (tmp_path / "ru" / topics.FILE).write_text(
        '[documents]\nwords = ["паспорт*", "забрал документы"]\n'
        '[wages]\nwords = ["зарплат*", "не платит"]\n', encoding="utf-8")
    table = topics.entries("ru", tmp_path)
    tokens = "Хозяин забрал документы и паспортом".lower().split()
    assert all(found_in(e, tokens) for e in table["documents"])
    assert not any(found_in(e, ["не", "он", "платит"]) for e in table["wages"][1:])


def test_every_shipped_language_has_topic_words() -> None:
    from flows.i18n import SHIPPED

    for locale in SHIPPED:
        table = topics.entries(locale)
        assert set(table) == set(content.TOPICS), locale
        assert all(table[t] for t in content.TOPICS), locale


def test_the_index_scores_as_reading_every_entry_would() -> None:
    """`Index.scores` reads a message once; it must agree with trying each entry on it."""
    import random

    from flows.i18n import SHIPPED

    rng = random.Random(7)
    for locale in SHIPPED:
        table = topics.entries(locale)
        pool = [w.rstrip("*") + ("ов" if w.endswith("*") else "")
                for found in table.values() for e in found for w in e.words]
        for _ in range(200):
            tokens = [rng.choice(pool) for _ in range(rng.randint(1, 12))]
            naive = {t: n for t, found in table.items()
                     if (n := len({e for e in found if found_in(e, tokens)}))}
            assert topics.index(locale).scores(tokens) == naive, (locale, tokens)


def test_a_stale_translation_shows_when_only_its_language_is_listed(tmp_path: Path) -> None:
    english = content.parse(write(tmp_path, "en", SOURCE), "en", "US", "documents")
    write(tmp_path, "ru", translation(english))
    write(tmp_path, "en", SOURCE.replace("is **yours**", "belongs to you"))
    found = status(KNOWN, root=tmp_path, locales=["ru"], countries=["US"])
    assert ("ru", "documents", "stale") in {(f.locale, f.topic, f.state) for f in found}
