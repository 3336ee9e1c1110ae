"""The flows this release ships, wired together. The engine knows none of them by name."""

from __future__ import annotations

from flows import menu, rights, settings, topics, welcome
from flows.emergency import numbers_text, on_emergency
from flows.engine import Context, Keyword, Long, Outcome, Registry
from flows.i18n import N_, NP_, SHIPPED


async def on_help(ctx: Context) -> Outcome:
    words = {k: ctx.word(k) for k in ("menu", "emergency", "language", "stop", "delete")}
    full = ctx.t(N_(
        "This is a free and confidential helpline. You can send these words at any time:\n"
        "{menu} – main menu\n{emergency} – emergency numbers\n{language} – change language\n"
        "{stop} – stop messages\n{delete} – delete your data"
    )).format(**words)
    # TRANSLATORS: the SMS version of the help text above: keep it to one short line.
    short = ctx.t(N_("Send {menu}, {emergency}, {language}, {stop} or {delete} at any time."))
    return Outcome(say=[Long(full, short.format(**words))], reprompt=True)


async def on_step_failed(ctx: Context) -> Outcome:
    """A bug stopped the step the person was at: apologise, give the emergency numbers of
    their country, and show the main menu."""
    sorry = ctx.t(N_("Sorry, something went wrong on our side and I could not do that. If you "
                     "are in danger, call now:"))
    numbers = numbers_text(ctx).split("\n", 1)[-1]  # without its own "If you are in danger"
    return Outcome(say=[f"{sorry}\n{numbers}"], goto=menu.HOME)


async def on_unsupported(ctx: Context) -> Outcome:
    return Outcome(
        say=[ctx.t(N_("I can only read text messages. Please write to me in words."))],
        reprompt=True,
    )


async def on_menu(ctx: Context) -> Outcome:
    return Outcome(goto=menu.HOME)


async def on_language(ctx: Context) -> Outcome:
    return Outcome(goto=("settings", "language"))


async def on_delete(ctx: Context) -> Outcome:
    return Outcome(goto=("settings", "delete"))


async def on_settings(ctx: Context) -> Outcome:
    return Outcome(goto=("settings", "main"))


# TRANSLATORS: the keyword lists are comma-separated words or short phrases a person would
# actually type in your language, first the one our messages show ("Send STOP"). Keep the
# English words in English; add your language's words, both scripts where people use both.
KEYWORDS = (
    Keyword("emergency", NP_("keywords", "sos, emergency, urgent, danger, help me"),
            on_emergency, when_stopped=True, any_language=("sos", "112", "911")),
    Keyword("stop", NP_("keywords", "stop, stopall, unsubscribe, end, quit"),
            settings.on_stop, when_stopped=True),
    Keyword("start", NP_("keywords", "start, unstop, subscribe"), settings.on_start,
            when_stopped=True),
    Keyword("help", NP_("keywords", "help, info"), on_help),
    Keyword("menu", NP_("keywords", "menu, main menu, home"), on_menu),
    Keyword("language", NP_("keywords", "language, change language, lang"), on_language),
    Keyword("delete", NP_("keywords", "delete my data, delete, erase my data, forget me"),
            on_delete, when_stopped=True),
)


# Deep links (t.me/<bot>?start=<payload>) for posters, cards and partner sites, optionally with
# a language before them: ?start=emergency, ?start=uk-emergency. Nothing that stops messages or
# deletes data can be linked: a link someone else sends must not do that to a person.
DEEP_LINKS = {
    "emergency": on_emergency,
    "menu": on_menu,
    "settings": on_settings,
    "language": on_language,
    "help": on_help,
    "rights": rights.on_rights,
}


def standard_registry() -> Registry:
    # Read the topic words now: a broken file fails at start-up, not in a conversation, and
    # the first message to reach free text does not pay for reading eight files.
    for locale in SHIPPED:
        topics.index(locale)
    return Registry(
        [welcome.FLOW, menu.FLOW, settings.FLOW, rights.FLOW],
        start=("welcome", "language"),
        home=menu.HOME,
        keywords=KEYWORDS,
        when_stopped=settings.when_stopped,
        lost=menu.on_lost,
        unsupported=on_unsupported,
        deep_links=DEEP_LINKS,
        failed=on_step_failed,
        understand=rights.understand,
    )
