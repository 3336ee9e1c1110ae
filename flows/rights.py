"""Know your rights: the country the person is in, a topic, its text, who can help there.

Telegram shows the full text; SMS sends its short version and offers the full one. After the
text come the organisations of the directory that serve that country and topic, and the
emergency numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from babel import Locale

from flows import content, topics
from flows.choices import Option
from flows.emergency import country_name, numbers_text
from flows.engine import Answer, Context, Flow, Long, Outcome, Prompt, Step
from flows.i18n import N_
from flows.text import sms_segments, sms_text

if TYPE_CHECKING:
    from storage.directory import Listing

SEED_DIRECTORY = Path(__file__).resolve().parent / "data" / "directory"
COUNTRY = ("rights", "country")
TOPIC = ("rights", "topic")
AFTER = ("rights", "after")

TOPIC_LABELS = {
    "documents": N_("Passport and documents"),
    "wages": N_("Wages and unpaid pay"),
    "leaving": N_("Leaving or changing work"),
    "violence": N_("Violence at home"),
    "children": N_("Children"),
    "embassy": N_("Embassy or consulate"),
    "legal_aid": N_("Free legal aid"),
    "reporting": N_("Reporting a crime, protection for victims"),
}
# The kinds of case (the directory's `case_kind`) whose organisations help with each topic.
TOPIC_KINDS = {
    "documents": ("trafficking", "migrant", "labour", "legal_aid"),
    "wages": ("labour", "legal_aid", "migrant"),
    "leaving": ("labour", "trafficking", "migrant"),
    "violence": ("domestic_violence",),
    "children": ("child",),
    "embassy": ("consular",),
    "legal_aid": ("legal_aid",),
    "reporting": ("trafficking", "domestic_violence", "general"),
}
ALL_KINDS = tuple(dict.fromkeys(k for kinds in TOPIC_KINDS.values() for k in kinds))
ORGANISATIONS_SHOWN = 4


# -- where the person is ---------------------------------------------------------------------

async def country_prompt(ctx: Context) -> Prompt:
    t = ctx.t
    known = content.countries_with_rights()
    here = ctx.profile.country
    ordered = ([here] if here in known else []) + [c for c in known if c != here]
    text = t(N_("Which country are you in now?"))
    if here in known:
        text = t(N_("Are you in {country} now? Choose it, or the country you are in.")).format(
            country=country_name(here, ctx.locale))
    return Prompt(text, (
        *(Option(c, country_name(c, ctx.locale), (c,)) for c in ordered),
        Option("other", t(N_("Another country"))),
    ))


async def country_chosen(ctx: Context, answer: Answer) -> Outcome:
    if answer.choice == "other":
        return Outcome(say=[_no_texts_here(ctx)], goto=("menu", "main"))
    ctx.profile.country = answer.choice
    pending = ctx.data.pop("topic", None)
    if pending in content.TOPICS:
        return _show(ctx, pending)
    return Outcome(goto=TOPIC)


def _no_texts_here(ctx: Context) -> str:
    """No texts for where they are (yet): say so, and still give who helps there."""
    t = ctx.t
    known = ", ".join(country_name(c, ctx.locale) for c in content.countries_with_rights())
    lines = [t(N_("We have texts on rights for these countries so far: {countries}. Tell us "
                  "your country in Settings to see its organisations and numbers.")).format(
        countries=known)]
    return _with_help(ctx, lines, ctx.profile.country, ALL_KINDS)


# -- what about ------------------------------------------------------------------------------

async def topic_prompt(ctx: Context) -> Prompt:
    t = ctx.t
    country = country_name(ctx.profile.country or "", ctx.locale)
    return Prompt(
        t(N_("Your rights in {country}. What do you want to know about?")).format(
            country=country),
        tuple(Option(topic, t(label)) for topic, label in TOPIC_LABELS.items()),
    )


async def topic_chosen(ctx: Context, answer: Answer) -> Outcome:
    assert answer.choice is not None
    return _show(ctx, answer.choice)


def _show(ctx: Context, topic: str) -> Outcome:
    country = ctx.profile.country or ""
    text = content.article(ctx.locale, country, topic)
    if text is None:  # a country without that text: never a dead end
        return Outcome(say=[_no_texts_here(ctx)], goto=("menu", "main"))
    full = _full(ctx, text, topic)
    # What the full text costs by SMS, counted once here rather than at every prompt.
    return Outcome(say=[Long(full, text.sms)], goto=AFTER,
                   carry={"topic": topic, "full_sms": sms_segments(sms_text(full))})


def _full(ctx: Context, text: content.Article, topic: str) -> str:
    return _with_help(ctx, [text.plain], text.country, TOPIC_KINDS[topic])


def _with_help(ctx: Context, parts: list[str], country: str | None,
               kinds: Sequence[str]) -> str:
    # What was said, then who helps there with those kinds of case, then emergency numbers.
    found = ctx.directory.serving(country, kinds, limit=ORGANISATIONS_SHOWN) if country else ()
    if found:
        parts.append(_organisations(ctx, found))
    parts.append(numbers_text(ctx))
    return "\n\n".join(parts)


# -- after the text --------------------------------------------------------------------------

async def after_prompt(ctx: Context) -> Prompt:
    t = ctx.t
    count = ctx.data.get("full_sms")
    options = []
    if isinstance(count, int):
        # The offer of the full text matters on SMS only, where the short version went out; it
        # says what it costs, since the person may be paying for every SMS.
        options.append(Option("full", t(N_("Full text ({count} SMS)")).format(count=count),
                              sms_only=True))
    options += [Option("topic", t(N_("Another topic"))), Option("@menu", t(N_("Main menu")))]
    return Prompt(t(N_("What next?")), tuple(options))


async def after_chosen(ctx: Context, answer: Answer) -> Outcome:
    topic = str(ctx.data.get("topic"))
    if answer.choice == "full" and topic in content.TOPICS:
        text = content.article(ctx.locale, ctx.profile.country or "", topic)
        if text is not None:
            full = _full(ctx, text, topic)
            return Outcome(say=[Long(full, full)], goto=TOPIC)
    return Outcome(goto=TOPIC)


# -- the directory's organisations -----------------------------------------------------------

def _organisations(ctx: Context, found: Sequence[Listing]) -> str:
    t = ctx.t
    lines = [t(N_("Who can help:"))]
    for listing in found:
        name = listing.organisation if listing.name in ("", listing.organisation) else (
            f"{listing.organisation}: {listing.name}")
        lines.append(f"• {name}")
        for line in listing.phones:
            kind = t(N_("call")) if line.kind == "voice" else t(N_("SMS"))
            lines.append(f"  {line.number} ({kind})")
        facts = []
        if listing.open_24_7:
            facts.append(t(N_("24/7")))
        if listing.free:
            facts.append(t(N_("free")))
        if listing.foreign_nationals:
            facts.append(t(N_("for foreigners too")))
        spoken = _languages(listing.languages, ctx.locale)
        if spoken:
            facts.append(spoken)
        if facts:
            lines.append("  " + ", ".join(facts))
    return "\n".join(lines)


def _languages(codes: Sequence[str], locale: str) -> str:
    names = Locale.parse(locale).languages
    return ", ".join(names.get(code, code) for code in codes[:6])


# -- free text -------------------------------------------------------------------------------

async def understand(ctx: Context, text: str) -> Outcome | None:
    """A message about a topic ("my boss took my passport") leads to that topic's text in the
    country the person is in, or first asks where they are."""
    topic = topics.topic_of(text, topics.search_order(ctx.locale))
    if topic is None:
        return None
    if ctx.profile.country in content.countries_with_rights():
        return _show(ctx, topic)
    return Outcome(goto=COUNTRY, carry={"topic": topic})


async def on_rights(ctx: Context) -> Outcome:
    return Outcome(goto=COUNTRY)


FLOW = Flow("rights", {
    "country": Step(country_prompt, country_chosen),
    "topic": Step(topic_prompt, topic_chosen),
    "after": Step(after_prompt, after_chosen),
})
