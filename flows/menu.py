"""The main menu, and where a person lands after repeated misunderstandings."""

from __future__ import annotations

from flows.choices import Option
from flows.emergency import numbers_text
from flows.engine import Answer, Context, Flow, Outcome, Prompt, Step
from flows.i18n import N_

HOME = ("menu", "main")
LOST = ("menu", "lost")


async def main_prompt(ctx: Context) -> Prompt:
    t = ctx.t
    # Only flows that exist are offered: later issues add health and consultations.
    return Prompt(
        t(N_("Main menu. What do you need?")),
        (
            Option("emergency", t(N_("Emergency numbers"))),
            Option("rights", t(N_("Know your rights"))),
            Option("settings", t(N_("Settings"))),
        ),
    )


async def main_chosen(ctx: Context, answer: Answer) -> Outcome:
    if answer.choice == "emergency":
        return Outcome(say=[numbers_text(ctx)], reprompt=True)
    if answer.choice == "rights":
        return Outcome(goto=("rights", "country"))
    return Outcome(goto=("settings", "main"))


async def lost_prompt(ctx: Context) -> Prompt:
    t = ctx.t
    return Prompt(
        t(N_("I still could not understand. You can go back to the main menu or ask how to "
             "reach a person.")),
        (Option("@menu", t(N_("Main menu"))), Option("person", t(N_("Talk to a person")))),
    )


async def lost_chosen(ctx: Context, answer: Answer) -> Outcome:
    # "@menu" is the menu keyword's button and never reaches here; only "person" does.
    return Outcome(say=[person_text(ctx)], goto=HOME)


def person_text(ctx: Context) -> str:
    t = ctx.t
    if ctx.settings.human_contact:
        return t(N_("You can talk to a person at {organisation}: {contact}")).format(
            organisation=ctx.settings.organisation, contact=ctx.settings.human_contact
        )
    return numbers_text(ctx)


async def on_lost(ctx: Context) -> Outcome:
    return Outcome(goto=LOST)


FLOW = Flow("menu", {"main": Step(main_prompt, main_chosen),
                     "lost": Step(lost_prompt, lost_chosen)})
