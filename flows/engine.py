"""The conversation engine: one inbound message in, replies out, in one transaction.

The engine knows no flow by name. The app hands it a `Registry` (flows, the step a new contact
starts at, the home step, the global keywords) and the engine runs whatever step the stored
state points at.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
import traceback
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Hashable,
    Mapping,
    Sequence,
)
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from flows.choices import Option, match
from flows.i18n import N_, SHIPPED, Translator, negotiate, translator
from flows.text import clean_input, fold
from storage.records import OutgoingReply, Profile, State
from storage.turns import Turn, Turns

if TYPE_CHECKING:
    from storage.directory import Listing

log = logging.getLogger(__name__)

StepRef = tuple[str, str]  # (flow, step)


@dataclass(frozen=True)
class Inbound:
    """A message from a person, whatever channel it came through."""

    channel: str
    address: str
    text: str | None = None
    choice: str | None = None  # a button's id, when a button was pressed
    message_id: str | None = None  # the channel's id, for de-duplication
    locale_hint: str | None = None  # e.g. Telegram's language_code
    country_hint: str | None = None  # e.g. the country of a phone number
    unsupported: bool = False  # a photo, sticker, voice note or edit: nothing we can read
    start_payload: str | None = None  # a deep link's payload: t.me/bot?start=<payload>


@dataclass(frozen=True)
class Answer:
    choice: str | None  # the option the input matched, if the step offered options
    text: str


@dataclass(frozen=True)
class Prompt:
    text: str
    options: tuple[Option, ...] = ()


@dataclass(frozen=True)
class Long:
    """Content with a short version, for channels where every character costs and may be seen
    over a shoulder (SMS): Telegram shows `full`, SMS sends `short`."""

    full: str
    short: str


@dataclass
class Outcome:
    say: list[str | Long] = field(default_factory=list)
    goto: StepRef | None = None  # enter this step and show its prompt
    reprompt: bool = False  # show the current step's prompt again
    end: bool = False  # leave the current flow (the next message starts at home)
    erase: bool = False  # delete everything about the contact; `say` is the last message
    # Where to go once the flow entered by `goto` is done (a deep link's destination, kept
    # while the welcome runs first); that flow reads it with `Context.then`.
    then: StepRef | None = None
    # Data the step entered by `goto` starts with (entering another flow clears the data).
    carry: dict[str, Any] | None = None


@dataclass(frozen=True)
class FlowSettings:
    """Deployment facts flows may show: who runs the service, how to reach a person."""

    organisation: str = "Hotline"
    human_contact: str | None = None


class Directory(Protocol):
    """The organisations directory as flows read it: in memory, so a turn that shows
    organisations costs no extra database trip. `fresh` reloads it when it is old, and is
    awaited before a turn, never inside one."""

    async def fresh(self) -> None: ...

    def serving(self, country: str, kinds: Collection[str], *, limit: int = 5
                ) -> Sequence[Listing]: ...


class NoDirectory:
    async def fresh(self) -> None:
        pass

    def serving(self, country: str, kinds: Collection[str], *, limit: int = 5
                ) -> Sequence[Listing]:
        return ()


@dataclass
class Context:
    """What a step may see and change for one message."""

    profile: Profile
    data: dict[str, Any]
    channel: str
    now: datetime
    settings: FlowSettings
    locale_hint: str | None
    turn: Turn
    registry: Registry
    start_payload: str | None = None
    directory: Directory = field(default_factory=NoDirectory)

    def word(self, keyword: str) -> str:
        """The first word that triggers a keyword in this contact's language, as texts
        mention it ("Send STOP", "Отправьте СТОП")."""
        words = self.registry.keyword_words(keyword, self.t)
        return words[0].upper() if words else keyword.upper()

    @property
    def locale(self) -> str:
        return negotiate(self.profile.locale, self.locale_hint, self.profile.country)

    @property
    def t(self) -> Translator:
        """A translator bound to this contact's language (it follows a language change)."""
        return translator(self.locale)

    async def message_count(self) -> int:
        return await self.turn.count_messages()

    def then(self, default: StepRef) -> StepRef:
        """Where this flow should lead once it is done: the step an earlier outcome asked for
        with `then`, or `default`."""
        kept = self.data.pop("_then", None)
        if isinstance(kept, list) and len(kept) == 2 and self.registry.has_step(*kept):
            return kept[0], kept[1]
        return default


@dataclass(frozen=True)
class Step:
    prompt: Callable[[Context], Awaitable[Prompt]]
    handle: Callable[[Context, Answer], Awaitable[Outcome]]


@dataclass(frozen=True)
class Flow:
    name: str
    steps: Mapping[str, Step]


Handler = Callable[[Context], Awaitable[Outcome]]  # what a keyword or a deep link does
Understand = Callable[[Context, str], Awaitable[Outcome | None]]


@dataclass(frozen=True)
class Keyword:
    """A global keyword. `words` is a comma-separated list marked with NP_("keywords", ...);
    every shipped language's list is active at once, so "стоп" stops an English speaker too."""

    name: str
    words: str
    handler: Handler
    when_stopped: bool = False  # also for a contact who sent STOP
    any_language: tuple[str, ...] = ()  # words that need no translation ("sos", "112")


@dataclass(frozen=True)
class DeepLink:
    """What a deep link's payload asks for (t.me/bot?start=ru-emergency): a language, a
    destination, both or neither. Parts it does not know are ignored, so an old poster's link
    still opens the bot."""

    locale: str | None = None
    target: Handler | None = None


# Telegram allows A-Z, a-z, 0-9, _ and - in a payload, up to 64 characters.
DEEP_LINK_MAX = 64


class Registry:
    def __init__(
        self,
        flows: Sequence[Flow],
        *,
        start: StepRef,
        home: StepRef,
        keywords: Sequence[Keyword],
        when_stopped: Handler,
        lost: Handler,
        unsupported: Handler,
        deep_links: Mapping[str, Handler] | None = None,
        failed: Handler | None = None,
        understand: Understand | None = None,
    ) -> None:
        self.flows = {f.name: f for f in flows}
        # What free text a step did not understand may be about (a rights topic), or None.
        self.understand = understand
        # What a person is told when a step raised (a bug): an apology, the emergency
        # numbers, and where they now are (the home step).
        self.failed = failed
        self.start = start
        self.home = home
        self.keywords = {k.name: k for k in keywords}
        self.when_stopped = when_stopped
        self.lost = lost
        self.unsupported = unsupported
        self.deep_links = dict(deep_links or {})
        for ref in (start, home):
            self.step(ref)  # fail at start-up, not in a conversation
        for name in self.deep_links:
            if not name.isascii() or not name.isalnum() or name != name.lower() or name in SHIPPED:
                raise ValueError(f"deep link {name!r} must be lowercase letters and digits, "
                                 "and not a language code")
        self._words = self._keyword_table(keywords)

    def deep_link(self, payload: str | None) -> DeepLink:
        """Read a payload such as "ru", "emergency" or "ru-emergency" (also "_" between the
        parts, any case)."""
        locale = target = None
        for part in (payload or "")[:DEEP_LINK_MAX].lower().replace("_", "-").split("-"):
            if part in SHIPPED and locale is None:
                locale = part
            elif part in self.deep_links and target is None:
                target = self.deep_links[part]
        return DeepLink(locale, target)

    def step(self, ref: StepRef) -> Step:
        return self.flows[ref[0]].steps[ref[1]]

    def has_step(self, flow: str | None, step: str | None) -> bool:
        return flow in self.flows and step in self.flows[flow].steps

    def keyword(self, text: str) -> Keyword | None:
        return self._words.get(fold(text))

    def keyword_words(self, name: str, t: Translator) -> list[str]:
        """The words that trigger `name` in one language, for help texts."""
        keyword = self.keywords[name]
        return [w.strip() for w in t.pgettext("keywords", keyword.words).split(",") if w.strip()]

    @staticmethod
    def _keyword_table(keywords: Sequence[Keyword]) -> dict[str, Keyword]:
        table: dict[str, Keyword] = {}
        for keyword in keywords:
            words = list(keyword.any_language)
            for locale in SHIPPED:
                words += translator(locale).pgettext("keywords", keyword.words).split(",")
            for word in filter(None, map(fold, words)):
                other = table.setdefault(word, keyword)
                if other is not keyword:
                    raise ValueError(
                        f"keyword {word!r} means both {other.name!r} and {keyword.name!r}"
                    )
        return table


@dataclass(frozen=True)
class Handled:
    duplicate: bool
    outbox_ids: tuple[int, ...] = ()
    step_failed: bool = False


class TurnObserver(Protocol):
    """Told about every inbound message (the web app's metrics): its channel, how long its
    turn took and how it ended ("ok", "duplicate" or "step_error")."""

    def turn(self, channel: str, seconds: float, outcome: str) -> None: ...


class _KeyedLocks:
    """One FIFO lock per contact, so that one process runs a contact's messages in arrival
    order; the database lock orders them across processes."""

    def __init__(self) -> None:
        self._locks: dict[Hashable, tuple[asyncio.Lock, list[int]]] = {}

    @asynccontextmanager
    async def hold(self, key: Hashable) -> AsyncIterator[None]:
        lock, users = self._locks.setdefault(key, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if users[0] == 0:
                del self._locks[key]


class Engine:
    def __init__(
        self,
        turns: Turns,
        registry: Registry,
        *,
        settings: FlowSettings = FlowSettings(),
        idle_after: timedelta = timedelta(hours=24),
        max_misses: int = 3,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        observer: TurnObserver | None = None,
        directory: Directory | None = None,
    ) -> None:
        self._turns = turns
        self._directory = directory or NoDirectory()
        self._registry = registry
        self._settings = settings
        self._idle_after = idle_after
        self._max_misses = max_misses
        self._clock = clock
        self._observer = observer
        self._locks = _KeyedLocks()

    async def handle(self, inbound: Inbound) -> Handled:
        """Run the message's turn and commit it. A step that raises still answers the person
        (see `_failed_turn`); only a failure to read or write the database raises, and then
        nothing was written, so the channel must not acknowledge the message."""
        started = time.perf_counter()
        now = self._clock()

        async def body(turn: Turn) -> Handled:
            return await self._run_turn(turn, inbound, now)

        await self._directory.fresh()
        async with self._locks.hold((inbound.channel, inbound.address)):
            handled = await self._turns.run(
                inbound.channel, inbound.address, inbound.message_id, now, body
            )
        handled = handled if handled is not None else Handled(duplicate=True)
        if self._observer is not None:
            outcome = ("duplicate" if handled.duplicate
                       else "step_error" if handled.step_failed else "ok")
            self._observer.turn(inbound.channel, time.perf_counter() - started, outcome)
        return handled

    async def _run_turn(self, turn: Turn, inbound: Inbound, now: datetime) -> Handled:
        text = clean_input(inbound.text or "")
        choice = clean_input(inbound.choice) if inbound.choice else None
        profile, state, ctx = self._context(turn, inbound, now)
        failed = False
        try:
            if inbound.unsupported and profile.status != "stopped":
                current, outcome = self._current(state), await self._registry.unsupported(ctx)
            else:
                current, outcome = await self._decide(ctx, state, text, choice, now)
            replies = await self._compose(ctx, state, current, outcome)
        except Exception as exc:
            failed = True
            _log_step_failure(exc, turn.state)
            # Start again from what was stored: the step may have changed these half-way.
            profile, state, ctx = self._context(turn, inbound, now)
            outcome, replies = await self._failed_turn(ctx, state)
        if outcome.erase:
            ids = await turn.erase(now=now, farewell=replies)
        else:
            ids = await turn.save(
                now=now, inbound_text=text if choice is None else f"[{choice}]",
                state=state, profile=profile, replies=replies,
            )
        return Handled(duplicate=False, outbox_ids=tuple(ids), step_failed=failed)

    def _context(self, turn: Turn, inbound: Inbound, now: datetime
                 ) -> tuple[Profile, State, Context]:
        profile = copy.copy(turn.profile)
        if turn.is_new and inbound.country_hint:
            profile.country = inbound.country_hint.upper()
        state = copy.deepcopy(turn.state)
        ctx = Context(
            profile=profile, data=state.data, channel=inbound.channel, now=now,
            settings=self._settings, locale_hint=inbound.locale_hint, turn=turn,
            registry=self._registry, start_payload=inbound.start_payload,
            directory=self._directory,
        )
        return profile, state, ctx

    async def _failed_turn(self, ctx: Context, state: State
                           ) -> tuple[Outcome, list[OutgoingReply]]:
        """A step raised: the person gets an apology with the emergency numbers of their
        country and the home step's menu, and the conversation returns home. If even that
        fails (the home step is what is broken), the apology alone."""
        _enter(state, self._registry.home)
        try:
            if self._registry.failed is None:
                raise LookupError("no handler for failed steps")
            outcome = await self._registry.failed(ctx)
            return outcome, await self._compose(ctx, state, self._registry.home, outcome)
        except Exception as exc:
            _log_step_failure(exc, state)
            state.flow = state.step = None
            state.data.clear()
            sorry = ctx.t(N_("Sorry, something went wrong on our side. Please write again."))
            outcome = Outcome(say=[sorry], end=True)
            return outcome, [OutgoingReply(text=sorry, rtl=ctx.t.rtl)]

    async def _decide(
        self, ctx: Context, state: State, text: str, choice: str | None, now: datetime
    ) -> tuple[StepRef | None, Outcome]:
        """Which step the message belongs to, and what it does there."""
        keyword = self._keyword(text, choice)
        if keyword is not None:
            if ctx.profile.status == "stopped" and not keyword.when_stopped:
                return None, await self._registry.when_stopped(ctx)
            current = self._current(state)
            return current, await keyword.handler(ctx)
        current = self._current(state)
        if ctx.profile.status == "stopped" and current is None:
            # STOP ends the flow, so a stopped contact is only ever in a step that a keyword
            # allowed while stopped (e.g. confirming DELETE MY DATA): let them finish it.
            return None, await self._registry.when_stopped(ctx)

        idle = (
            current is not None
            and state.updated_at is not None
            and now - state.updated_at > self._idle_after
        )
        if current is None or idle:
            # Starting over: the message may already answer the entry step (a language name,
            # a menu number); if not, it is a greeting, not a miss.
            # Whoever never chose a language has not been welcomed yet (e.g. their first
            # message was SOS).
            entry = self._registry.start if ctx.profile.locale is None else self._registry.home
            _enter(state, entry)
            prompt = await self._registry.step(entry).prompt(ctx)
            chosen = match(prompt.options, text, choice)
            if chosen is None:
                understood = await self._understand(ctx, entry, text)
                return entry, understood or Outcome(reprompt=True)
            return entry, await self._registry.step(entry).handle(ctx, Answer(chosen, text))

        step = self._registry.step(current)
        prompt = await step.prompt(ctx)
        if not prompt.options:
            return current, await step.handle(ctx, Answer(None, text))
        chosen = match(prompt.options, text, choice)
        if chosen is not None:
            state.data.pop("_misses", None)
            keyword = self._keyword_option(chosen)
            if keyword is not None:  # e.g. "5. Main menu" typed as a number
                return current, await keyword.handler(ctx)
            return current, await step.handle(ctx, Answer(chosen, text))
        understood = await self._understand(ctx, current, text)
        if understood is not None:
            state.data.pop("_misses", None)
            return current, understood
        misses = int(state.data.get("_misses", 0)) + 1
        if misses >= self._max_misses:
            state.data.pop("_misses", None)
            return current, await self._registry.lost(ctx)
        state.data["_misses"] = misses
        hint = ctx.t(N_(
            "Sorry, I did not understand. Please reply with a number from 1 to {count}."))
        return current, Outcome(say=[hint.format(count=len(prompt.options))], reprompt=True)

    async def _understand(self, ctx: Context, at: StepRef, text: str) -> Outcome | None:
        """Free text a step did not understand may still say what the person needs. Not in
        the flow new contacts start with: its language and safety questions come first."""
        if not text or self._registry.understand is None or at[0] == self._registry.start[0]:
            return None
        return await self._registry.understand(ctx, text)

    def _keyword(self, text: str, choice: str | None) -> Keyword | None:
        if choice is not None:
            return self._keyword_option(choice)
        return self._registry.keyword(text) if text else None

    def _keyword_option(self, option_id: str) -> Keyword | None:
        # Options such as "Main menu" carry a keyword's name as their id: "@menu".
        return self._registry.keywords.get(option_id[1:]) if option_id.startswith("@") else None

    def _current(self, state: State) -> StepRef | None:
        if state.flow and state.step and self._registry.has_step(state.flow, state.step):
            return state.flow, state.step
        return None  # no flow yet, or a step that a newer release removed

    async def _compose(
        self, ctx: Context, state: State, current: StepRef | None, outcome: Outcome
    ) -> list[OutgoingReply]:
        """Apply the outcome to the state and turn it into replies: what the step said, then
        the prompt of the step the person is now at, in one message."""
        if outcome.end or outcome.erase:
            state.flow = state.step = None
            state.data.clear()
        shown: StepRef | None = None
        if outcome.goto is not None:
            _enter(state, outcome.goto)
            shown = outcome.goto
            if outcome.carry:
                state.data.update(outcome.carry)
            if outcome.then is not None:
                state.data["_then"] = list(outcome.then)
        elif outcome.reprompt and current is not None and not outcome.end:
            shown = current
        said = [s if isinstance(s, Long) else Long(s, s) for s in outcome.say if s]
        options: tuple[Option, ...] = ()
        if shown is not None:
            prompt = await self._registry.step(shown).prompt(ctx)
            said.append(Long(prompt.text, prompt.text))
            options = prompt.options
        if not said:
            # Every message gets an answer: show the home step rather than stay silent.
            _enter(state, self._registry.home)
            prompt = await self._registry.step(self._registry.home).prompt(ctx)
            said, options = [Long(prompt.text, prompt.text)], prompt.options
        full = "\n\n".join(s.full for s in said)
        short = "\n\n".join(s.short for s in said)
        shown_options = tuple((o.id, o.label) for o in options if not o.sms_only)
        all_options = tuple((o.id, o.label) for o in options)
        return [
            OutgoingReply(
                text=full,
                options=shown_options,
                rtl=ctx.t.rtl,
                short=short if short != full else None,
                short_options=all_options if all_options != shown_options else None,
            )
        ]


def _log_step_failure(exc: BaseException, state: State) -> None:
    """Log where it failed and the code's frames, never the exception's message or locals
    (either may hold what the person wrote)."""
    frames = "".join(traceback.format_tb(exc.__traceback__))
    log.error("a step failed with %s at %s/%s; the person was answered with an apology\n%s",
              type(exc).__name__, state.flow, state.step, frames)


def _enter(state: State, ref: StepRef) -> None:
    if state.flow != ref[0]:
        state.data.clear()  # flow data belongs to the flow
    state.flow, state.step = ref
    state.data.pop("_misses", None)
