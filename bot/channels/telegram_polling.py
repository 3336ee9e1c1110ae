"""Telegram long polling that confirms an update only after its turn committed.

aiogram's own polling moves the offset past an update as soon as it has made a task for it, and
logs the task's exception: a turn that failed (a busy database, a restart mid-turn) was never
retried. Here each batch is processed before the next getUpdates, and the offset (which is what
confirms updates to Telegram) moves only past the longest run of updates whose turns returned.
A failed update comes back with the next poll; the engine de-duplicates by message id whatever
had committed already, and updates that committed above the offset are not fed again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.exceptions import TelegramConflictError, TelegramRetryAfter
from aiogram.methods import TelegramMethod
from aiogram.types import CallbackQuery, Update

from bot.channels.telegram import has_event

log = logging.getLogger(__name__)


class TelegramPoller:
    """Feeds `dispatcher` what getUpdates returns: different chats concurrently, one chat's
    updates in order, and confirms them to Telegram only once committed."""

    def __init__(self, bot: Bot, dispatcher: Dispatcher, *, allowed_updates: list[str],
                 timeout: int = 25, first_backoff: float = 1.0, max_backoff: float = 60.0
                 ) -> None:
        self._bot = bot
        self._dispatcher = dispatcher
        self._allowed_updates = allowed_updates
        self._timeout = timeout
        self._first_backoff = first_backoff
        self._max_backoff = max_backoff
        self._delay = first_backoff
        self._offset: int | None = None  # every update below it has committed
        self._confirmed: int | None = None  # the offset Telegram last heard
        self._committed: set[int] = set()  # at or above the offset: skipped when they come back

    async def run(self, stop: asyncio.Event) -> None:
        log.info("telegram long polling")
        while not stop.is_set():
            updates = await self._poll(stop)
            if updates is None:
                continue  # stopping, or the poll failed and was backed off
            if await self._process(updates):
                self._delay = self._first_backoff
            else:
                await self._back_off(stop)
        await self._confirm()

    async def _poll(self, stop: asyncio.Event) -> list[Update] | None:
        """One getUpdates, given up at once when `stop` is set (a long poll lasts 25 s)."""
        offset = self._offset
        poll = asyncio.ensure_future(self._bot.get_updates(
            offset=offset, timeout=self._timeout, allowed_updates=self._allowed_updates,
            request_timeout=self._timeout + 15,
        ))
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({poll, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            if not poll.done():
                poll.cancel()
            await asyncio.gather(poll, stopping, return_exceptions=True)
        if poll.cancelled():
            return None
        exc = poll.exception()
        if exc is None:
            self._confirmed = offset
            return poll.result()
        # By kind only: aiogram's messages can quote the request or the answer.
        if isinstance(exc, TelegramRetryAfter):
            log.warning("telegram getUpdates: too many requests; trying again in %d s",
                        exc.retry_after)
            await _wait(stop, float(exc.retry_after))
            return None
        if isinstance(exc, TelegramConflictError):
            log.error("telegram getUpdates refused (%s): another process polls with this token "
                      "or a webhook is set; trying again in %.0f s", type(exc).__name__,
                      self._delay)
        else:
            log.warning("telegram getUpdates failed (%s); trying again in %.0f s",
                        type(exc).__name__, self._delay)
        await self._back_off(stop)
        return None

    async def _process(self, updates: Sequence[Update]) -> bool:
        """Feed a batch and move the offset; whether every update in it committed."""
        if not updates:
            return True
        lanes: dict[int | None, list[Update]] = {}
        for update in updates:
            if update.update_id not in self._committed:
                lanes.setdefault(_chat_of(update), []).append(update)
        done = await asyncio.gather(*(self._lane(lane) for lane in lanes.values()))
        committed = self._committed.union(*done)
        waiting = [u.update_id for u in updates if u.update_id not in committed]
        self._offset = min(waiting) if waiting else max(u.update_id for u in updates) + 1
        self._committed = {i for i in committed if i >= self._offset}
        return not waiting

    async def _lane(self, updates: list[Update]) -> set[int]:
        """One chat's updates in order; the ids that committed. After a failure the rest of
        the chat waits for the next poll: feeding them now would answer them out of order."""
        committed: set[int] = set()
        for update in updates:
            if has_event(update):
                try:
                    result = await self._dispatcher.feed_update(self._bot, update)
                except Exception as exc:  # whatever it was, nothing of the turn was committed
                    log.warning("telegram update not processed (%s); it comes back with the "
                                "next poll", type(exc).__name__)
                    return committed
                if isinstance(result, TelegramMethod):
                    await self._answer(result)
            committed.add(update.update_id)
        return committed

    async def _answer(self, method: TelegramMethod[Any]) -> None:
        """What a handler returns for Telegram to do (stopping a button's spinner) is done
        here, as a webhook's answer would be. The turn has committed whatever happens to it."""
        try:
            await self._bot(method, request_timeout=10)
        except Exception as exc:
            log.warning("telegram %s failed (%s)", method.__api_method__, type(exc).__name__)

    async def _back_off(self, stop: asyncio.Event) -> None:
        await _wait(stop, self._delay)
        self._delay = min(self._delay * 2, self._max_backoff)

    async def _confirm(self) -> None:
        """On the way out, tell Telegram what committed since the last poll, so that a restart
        does not feed it again (the engine would drop it, but a button's answer would repeat)."""
        if self._offset is None or self._offset == self._confirmed:
            return
        try:
            # getUpdates confirms everything below its offset; the update it returns is not.
            await self._bot.get_updates(offset=self._offset, limit=1, timeout=0,
                                        request_timeout=3)
        except Exception as exc:
            log.info("telegram: could not confirm the last updates (%s); they will be "
                     "de-duplicated after the restart", type(exc).__name__)


def _chat_of(update: Update) -> int | None:
    """Which chat an update belongs to: a chat's updates are fed one at a time, in order."""
    if not has_event(update):
        return None
    event: Any = update.event
    if isinstance(event, CallbackQuery):
        event = event.message
    chat = getattr(event, "chat", None)
    return chat.id if chat is not None else None


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    """Sleep, but not past `stop`."""
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        pass
