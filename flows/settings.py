"""Settings: language, country, stop, delete my data."""

from __future__ import annotations

from flows.choices import Option
from flows.engine import Answer, Context, Flow, Outcome, Prompt, Step
from flows.i18n import N_, language_name
from flows.welcome import HOME, country_options, language_options, unwelcomed, yes_no_unsure


async def main_prompt(ctx: Context) -> Prompt:
    t = ctx.t
    return Prompt(
        t(N_("Settings. What would you like to change?")),
        (
            Option("language", t(N_("Language"))),
            Option("country", t(N_("Country"))),
            Option("stop", t(N_("Stop messages"))),
            Option("delete", t(N_("Delete my data"))),
            Option("@menu", t(N_("Main menu"))),
        ),
    )


async def main_chosen(ctx: Context, answer: Answer) -> Outcome:
    if answer.choice == "stop":
        return await on_stop(ctx)
    return Outcome(goto=("settings", str(answer.choice)))


async def language_prompt(ctx: Context) -> Prompt:
    return Prompt(ctx.t(N_("Choose your language:")), language_options())


async def language_chosen(ctx: Context, answer: Answer) -> Outcome:
    ctx.profile.locale = answer.choice  # ctx.t now speaks the new language
    done = ctx.t(N_("Your language is now {language}.")).format(
        language=language_name(ctx.locale)
    )
    return Outcome(say=[done], goto=HOME)


async def country_prompt(ctx: Context) -> Prompt:
    return Prompt(ctx.t(N_("Which country are you in now?")), country_options(ctx))


async def country_chosen(ctx: Context, answer: Answer) -> Outcome:
    ctx.profile.country = None if answer.choice == "none" else answer.choice
    return Outcome(say=[ctx.t(N_("Saved."))], goto=HOME)


async def delete_prompt(ctx: Context) -> Prompt:
    count = await ctx.message_count()
    text = ctx.t.ngettext(
        "This erases everything we keep about you, including our conversation of {count} "
        "message. It cannot be undone. Delete your data?",
        "This erases everything we keep about you, including our conversation of {count} "
        "messages. It cannot be undone. Delete your data?",
        count,
    ).format(count=count)
    yes, no, _ = yes_no_unsure(ctx)
    return Prompt(text, (yes, no))


async def delete_answered(ctx: Context, answer: Answer) -> Outcome:
    if answer.choice == "yes":
        return Outcome(
            erase=True,
            say=[ctx.t(N_("Your data has been deleted. If you write to us again, we will start "
                          "from the beginning."))],
        )
    return Outcome(say=[ctx.t(N_("Nothing was deleted."))], goto=HOME)


async def on_stop(ctx: Context) -> Outcome:
    ctx.profile.status = "stopped"
    return Outcome(
        say=[ctx.t(N_("You will not get any more messages from us. Send {start} if you want to "
                      "start again.")).format(start=ctx.word("start"))],
        end=True,
    )


async def on_start(ctx: Context) -> Outcome:
    """START, /start, or a deep link (t.me/bot?start=ru-emergency) that may carry the
    language and a destination."""
    ctx.profile.status = "active"
    link = ctx.registry.deep_link(ctx.start_payload)
    if link.locale:
        ctx.profile.locale = link.locale  # no need to ask it
    outcome = await link.target(ctx) if link.target else None
    welcome = unwelcomed(ctx)
    if welcome is not None:
        # What the link shows (emergency numbers) is shown at once; where it leads waits
        # until the welcome is done.
        return Outcome(say=outcome.say if outcome else [], goto=welcome,
                       then=outcome.goto if outcome else None)
    return outcome or Outcome(say=[ctx.t(N_("Welcome back."))], goto=HOME)


async def when_stopped(ctx: Context) -> Outcome:
    return Outcome(
        say=[ctx.t(N_("You asked us to stop sending messages. Send {start} to start again, or "
                      "{emergency} for emergency numbers.")).format(
            start=ctx.word("start"), emergency=ctx.word("emergency"))]
    )


FLOW = Flow(
    "settings",
    {
        "main": Step(main_prompt, main_chosen),
        "language": Step(language_prompt, language_chosen),
        "country": Step(country_prompt, country_chosen),
        "delete": Step(delete_prompt, delete_answered),
    },
)
