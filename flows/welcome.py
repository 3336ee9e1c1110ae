"""Welcome: language, a one-question safety check, and the country when we cannot tell it."""

from __future__ import annotations

from functools import lru_cache

from babel import Locale

from flows.choices import Option
from flows.emergency import country_name, directory
from flows.engine import Answer, Context, Flow, Long, Outcome, Prompt, Step, StepRef
from flows.i18n import N_, SHIPPED, language_name, translator

HOME = ("menu", "main")


def unwelcomed(ctx: Context) -> StepRef | None:
    """The welcome step a person still has to answer, if any: nobody is sent on before we
    know their language and whether it is safe to text them."""
    if ctx.profile.locale is None:
        return ("welcome", "language")
    if ctx.profile.safe_to_text is None:
        return ("welcome", "safety")
    return None


@lru_cache(maxsize=1)
def language_options() -> tuple[Option, ...]:
    # Each language is named in itself, so a person finds theirs whatever the prompt's
    # language; its code and its name in every other shipped language work too.
    return tuple(
        Option(code, language_name(code),
               (code, *sorted({str(Locale.parse(code).get_display_name(o)) for o in SHIPPED})))
        for code in SHIPPED
    )


def country_options(ctx: Context) -> tuple[Option, ...]:
    return _country_options(ctx.locale)


@lru_cache(maxsize=len(SHIPPED))
def _country_options(locale: str) -> tuple[Option, ...]:
    codes = sorted(directory().countries, key=lambda c: country_name(c, locale))
    return (
        *(Option(code, country_name(code, locale),
                 (code, *sorted({country_name(code, other) for other in SHIPPED})))
          for code in codes),
        Option("none", translator(locale)(N_("Another country / skip"))),
    )


async def language_prompt(ctx: Context) -> Prompt:
    t = ctx.t
    text = t(N_("Hello! This is a free and confidential helpline run by {organisation}.")).format(
        organisation=ctx.settings.organisation
    )
    return Prompt(f"{text}\n{t(N_('Choose your language:'))}", language_options())


async def language_chosen(ctx: Context, answer: Answer) -> Outcome:
    ctx.profile.locale = answer.choice
    return Outcome(goto=("welcome", "safety"))


def yes_no_unsure(ctx: Context) -> tuple[Option, ...]:
    t = ctx.t
    return (
        Option("yes", t(N_("Yes")), tuple(t.pgettext("synonyms", "yes, y, ok, safe").split(","))),
        Option("no", t(N_("No")), tuple(t.pgettext("synonyms", "no, n, not safe").split(","))),
        Option("unsure", t(N_("I am not sure"))),
    )


async def safety_prompt(ctx: Context) -> Prompt:
    return Prompt(ctx.t(N_("Is it safe for you to get messages from us on this phone?")),
                  yes_no_unsure(ctx))


async def safety_answered(ctx: Context, answer: Answer) -> Outcome:
    t = ctx.t
    ctx.profile.safe_to_text = answer.choice == "yes"
    say: list[str | Long] = []
    if answer.choice != "yes":
        say.append(
            t(N_("We will keep our messages short. Delete them after reading if someone else "
                 "might see your phone. Send {stop} at any time to stop messages, or {delete} "
                 "to erase everything we keep about you.")).format(
                stop=ctx.word("stop"), delete=ctx.word("delete")
            )
        )
    if ctx.profile.country is None:
        return Outcome(say=say, goto=("welcome", "country"))
    return Outcome(say=say, goto=ctx.then(HOME))


async def country_prompt(ctx: Context) -> Prompt:
    return Prompt(
        ctx.t(N_("Which country are you in now? We use it only to show the right emergency "
                 "numbers and services.")),
        country_options(ctx),
    )


async def country_chosen(ctx: Context, answer: Answer) -> Outcome:
    if answer.choice != "none":
        ctx.profile.country = answer.choice
    return Outcome(goto=ctx.then(HOME))


FLOW = Flow(
    "welcome",
    {
        "language": Step(language_prompt, language_chosen),
        "safety": Step(safety_prompt, safety_answered),
        "country": Step(country_prompt, country_chosen),
    },
)
