"""`hotline content`: what translators and reviewers need to know about the long content."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from flows import content
from flows.emergency import directory as emergency_numbers
from flows.i18n import LOCALES_DIR, SHIPPED
from flows.rights import SEED_DIRECTORY
from storage.directory import seed_numbers


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("content", help="rights texts: what is missing, stale or draft")
    actions = parser.add_subparsers(dest="action", required=True)
    status = actions.add_parser("status", help="list missing, stale, draft and broken texts")
    status.add_argument("--check", action="store_true",
                        help="exit 1 if any text is missing, stale or broken (drafts pass)")
    status.add_argument("--language", choices=SHIPPED, help="only this language")
    status.add_argument("--country", choices=content.COUNTRIES, help="only this country")
    digest = actions.add_parser("hash", help="the hash a translation of an English text "
                                "records in 'translates'")
    digest.add_argument("path", help="e.g. en/rights/US/documents.md (under locales/)")


def known_numbers() -> set[str]:
    """Every number a text may name: the directory's and the emergency numbers."""
    numbers = emergency_numbers()
    found = {n.number for ns in numbers.countries.values() for n in ns}
    found |= {n.number for n in numbers.any_mobile}
    return found | seed_numbers(SEED_DIRECTORY)


def run(args: argparse.Namespace) -> int:
    if args.action == "hash":
        return _hash(args.path)
    findings = content.status(
        known_numbers(),
        locales=[args.language] if args.language else SHIPPED,
        countries=[args.country] if args.country else content.COUNTRIES,
    )
    _print(findings, args.language, args.country)
    return 1 if args.check and any(f.fails for f in findings) else 0


def _hash(raw: str) -> int:
    path = Path(raw)
    if not path.is_file():
        path = LOCALES_DIR / raw
    try:
        locale, _, country, name = path.resolve().relative_to(LOCALES_DIR).parts
        text = content.parse(path, locale, country, Path(name).stem)
    except (ValueError, content.ContentError) as exc:
        print(f"hotline: {exc}", file=sys.stderr)
        return 2
    print(text.digest)
    return 0


def _print(findings: list[content.Finding], language: str | None, country: str | None) -> None:
    locales = [language] if language else list(SHIPPED)
    countries = [country] if country else list(content.COUNTRIES)
    expected = len(countries) * len(content.TOPICS)
    print(f"{'language':<9}{'texts':>6}{'missing':>9}{'stale':>7}{'invalid':>9}{'draft':>7}")
    for locale in locales:
        counts = Counter(f.state for f in findings if f.locale == locale)
        present = expected - counts["missing"]
        print(f"{locale:<9}{present:>6}{counts['missing']:>9}{counts['stale']:>7}"
              f"{counts['invalid']:>9}{counts['draft']:>7}")
    problems = [f for f in findings if f.fails]
    if problems:
        print()
    for f in problems:
        detail = f": {f.detail}" if f.detail else ""
        print(f"{f.state:<8} {f.locale}/rights/{f.country}/{f.topic}.md{detail}")
    drafts: dict[tuple[str, str], list[str]] = {}
    for f in findings:
        if f.state == "draft":
            drafts.setdefault((f.locale, f.country), []).append(f.topic)
    if drafts:
        print()
    for (locale, country), topics in drafts.items():  # one line per language and country
        print(f"{'draft':<8} {locale}/rights/{country}/: {', '.join(topics)}")
    if not problems:
        print("\nnothing missing, stale or invalid" + (
            "; drafts still need a native speaker's review" if any(
                f.state == "draft" for f in findings) else ""))
