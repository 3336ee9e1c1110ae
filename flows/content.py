"""Long content: "Know your rights" texts, Markdown with front matter, one file per language,
country and topic (`locales/<lang>/rights/<CC>/<topic>.md`; the format is in
locales/README.md).

English is the source. A translation records the hash of the English text it translates, so a
change to the English makes it stale. `status` lists what is missing, stale, draft or broken
per language, country and topic; `hotline content status --check` fails on anything but draft.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from flows.i18n import LOCALES_DIR, SHIPPED
from flows.text import sms_segments, sms_text

SOURCE_LOCALE = "en"
COUNTRIES = ("US", "RU", "KZ", "TR", "AE", "PL")
TOPICS = ("documents", "wages", "leaving", "violence", "children", "embassy", "legal_aid",
          "reporting")
STATUSES = ("draft", "reviewed")
MAX_SMS_SEGMENTS = 2
_FRONT = re.compile(r"\A---\n(.*?)\n---\n(.*)\Z", re.S)
# What reads as a phone number in a text: a "+" before digits, digits in dashed groups, or a
# run of five or more digits (short codes such as 233733). Years and article numbers are not.
_PHONE_LIKE = re.compile(r"\+\d[\d\s\-()]{4,}\d|\b\d+(?:-\d+){2,}\b|\b\d{5,}\b")


class ContentError(ValueError):
    """A content file that cannot be read, with the file and the reason."""


@dataclass(frozen=True)
class Source:
    url: str
    title: str
    read: date


@dataclass(frozen=True)
class Article:
    locale: str
    country: str
    topic: str
    title: str
    sms: str
    body: str
    status: str
    sources: tuple[Source, ...]
    numbers: tuple[str, ...]
    translates: str | None = None  # the hash of the English text, in a translation

    @property
    def digest(self) -> str:
        """What a translation of this text records in `translates`."""
        return text_hash(self.title, self.sms, self.body)

    @property
    def plain(self) -> str:
        """The full text as plain lines (replies are plain text on every channel)."""
        return f"{self.title}\n\n{plain_text(self.body)}"


def text_hash(title: str, sms: str, body: str) -> str:
    canonical = "\n\x00".join(part.strip().replace("\r\n", "\n") for part in (title, sms, body))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def plain_text(markdown: str) -> str:
    """The little Markdown the texts use, as plain text: no emphasis marks, bullets for list
    items, one blank line between paragraphs."""
    lines = []
    for line in markdown.strip().splitlines():
        line = line.rstrip().replace("**", "")
        if line.lstrip().startswith(("- ", "* ")):
            line = "• " + line.lstrip()[2:]
        lines.append(line)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines))


def path_of(locale: str, country: str, topic: str, root: Path = LOCALES_DIR) -> Path:
    return root / locale / "rights" / country / f"{topic}.md"


def parse(path: Path, locale: str, country: str, topic: str) -> Article:
    """Read one file, or raise ContentError saying what is wrong with it."""
    try:
        raw = path.read_text(encoding="utf-8").replace("\r\n", "\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise ContentError(f"{path}: cannot be read ({type(exc).__name__})") from None
    found = _FRONT.match(raw)
    if found is None:
        raise ContentError(f"{path}: no front matter between two '---' lines")
    try:
        meta = yaml.safe_load(found.group(1))
    except yaml.YAMLError as exc:
        raise ContentError(f"{path}: front matter is not YAML: {exc}") from None
    if not isinstance(meta, dict):
        raise ContentError(f"{path}: front matter is not a mapping")

    def text(key: str, required: bool = True) -> str:
        value = meta.get(key)
        if value is None and not required:
            return ""
        if not isinstance(value, str | int) or not str(value).strip():
            raise ContentError(f"{path}: '{key}' is missing or empty")
        return str(value).strip()

    status = text("status")
    if status not in STATUSES:
        raise ContentError(f"{path}: status must be one of {', '.join(STATUSES)}")
    return Article(
        locale=locale, country=country, topic=topic, title=text("title"), sms=text("sms"),
        body=found.group(2).strip(), status=status, sources=_sources(path, meta.get("sources")),
        numbers=tuple(str(n).strip() for n in meta.get("numbers") or ()),
        translates=text("translates", required=False) or None,
    )


def _sources(path: Path, raw: Any) -> tuple[Source, ...]:
    if not isinstance(raw, list) or not raw:
        raise ContentError(f"{path}: 'sources' must list at least one source")
    sources = []
    for i, item in enumerate(raw, 1):
        if not isinstance(item, dict) or not str(item.get("url", "")).startswith("http"):
            raise ContentError(f"{path}: source {i} needs a url")
        read = item.get("read")
        if not isinstance(read, date):
            raise ContentError(f"{path}: source {i} needs the date it was read (YYYY-MM-DD)")
        sources.append(Source(str(item["url"]), str(item.get("title") or item["url"]), read))
    return tuple(sources)


@cache
def article(locale: str, country: str, topic: str, root: Path = LOCALES_DIR) -> Article | None:
    """The text in this language, else the English one (a gap `--check` reports); None when
    neither exists."""
    for candidate in dict.fromkeys((locale, SOURCE_LOCALE)):
        path = path_of(candidate, country, topic, root)
        if path.is_file():
            return parse(path, candidate, country, topic)
    return None


def countries_with_rights(root: Path = LOCALES_DIR) -> tuple[str, ...]:
    """The countries whose English texts exist, in the order of COUNTRIES."""
    return tuple(c for c in COUNTRIES if (root / SOURCE_LOCALE / "rights" / c).is_dir())


def digits(number: str) -> str:
    return re.sub(r"\D", "", number)


@dataclass(frozen=True)
class Finding:
    locale: str
    country: str
    topic: str
    state: str  # "missing" | "stale" | "draft" | "invalid"
    detail: str = ""

    @property
    def fails(self) -> bool:
        return self.state != "draft"


def status(
    known_numbers: Collection[str],
    *,
    root: Path = LOCALES_DIR,
    locales: Iterable[str] = SHIPPED,
    countries: Iterable[str] = COUNTRIES,
    segments: Callable[[str], int] = sms_segments,
) -> list[Finding]:
    """What is missing, stale, draft or broken, per language, country and topic.
    `known_numbers`: the digits of every number in the directory and the emergency numbers;
    every number a text names must be one of them."""
    findings: list[Finding] = []
    known = {digits(n) for n in known_numbers}
    for country in countries:
        for topic in TOPICS:
            # The English is what translations are compared with, also when only another
            # language is listed.
            source = _source(country, topic, root)
            for locale in locales:
                where = (locale, country, topic)
                path = path_of(locale, country, topic, root)
                if not path.is_file():
                    findings.append(Finding(*where, "missing"))
                    continue
                try:
                    text = parse(path, *where)
                except ContentError as exc:
                    findings.append(Finding(*where, "invalid", str(exc)))
                    continue
                problems = _problems(text, source, known, segments)
                findings += [Finding(*where, "invalid", p) for p in problems]
                if locale != SOURCE_LOCALE and source is not None and (
                        text.translates != source.digest):
                    findings.append(Finding(*where, "stale", "the English text changed since"
                                            if text.translates else "no 'translates' hash"))
                if text.status == "draft":
                    findings.append(Finding(*where, "draft"))
    return findings


def _source(country: str, topic: str, root: Path) -> Article | None:
    try:
        return parse(path_of(SOURCE_LOCALE, country, topic, root), SOURCE_LOCALE, country, topic)
    except ContentError:
        return None  # reported as missing or invalid under English


def _problems(text: Article, source: Article | None, known: set[str],
              segments: Callable[[str], int]) -> list[str]:
    problems = []
    sms_count = segments(sms_text(text.sms))
    if sms_count > MAX_SMS_SEGMENTS:
        problems.append(f"the SMS version takes {sms_count} SMS, more than {MAX_SMS_SEGMENTS}")
    written = f"{text.sms}\n{text.body}"
    named = _PHONE_LIKE.findall(written)
    named_digits = {digits(m) for m in named}
    listed = {digits(n) for n in text.numbers}
    for number in text.numbers:
        if digits(number) not in known:
            problems.append(f"{number} is in neither the directory nor the emergency numbers")
        if digits(number) not in named_digits and number not in written:
            problems.append(f"{number} is listed in 'numbers' but the text does not name it")
    for found in named:
        if digits(found) not in listed:
            problems.append(f"{found.strip()} is named in the text but not listed in 'numbers'")
    if source is not None and text.locale != source.locale:
        missing = {s.url for s in source.sources} - {s.url for s in text.sources}
        if missing:
            problems.append("sources of the English text are missing: " + ", ".join(
                sorted(missing)))
    return problems
