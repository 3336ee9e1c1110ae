"""When each message of a batch may go out, within rate limits shared by every worker.

Each scope (the whole bot, one chat, one SMS sender) has a schedule in the database
(storage.ratelimits). A batch books what it needs on every scope in one statement, then spaces
its sends inside the booking: a send goes at the latest of its scopes' next free times, and moves
each of them on by its interval times its cost (SMS segments). If waiting for one scope (a chat)
stretched the plan past a booking, the rest is booked too, so the shared schedule always covers
every send. A 429's pause is written to the schedule for everyone, and this worker waits it out;
`follow_pauses` hears pauses other workers announce. A send planned before a pause began has a
void slot (the schedule restarts at the pause's end): it books a new one after the pause, so the
sends of all workers come after it one slot apart instead of all at once.

A send goes in its own slot or not at all: one that comes late (its worker was busy, or heard a
pause late) books a new slot at the end of the schedule instead of going at once, because the
slots after its own belong to other sends, maybe of other workers, and going now would put two
sends where the limit allows one. So the limit holds in every one-second window, not only on
average. Times are the database's clock (storage.clock), the same for every worker.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence

from bot.coalesce import Coalesced
from storage.ratelimits import SharedSchedule

log = logging.getLogger(__name__)
Scopes = list[tuple[str, float]]  # (scope, seconds per unit)
# How late a send may still go in its slot, as a share of its tightest scope's interval: a send
# that late adds less than one unit to any window (Telegram and Twilio allow one unit of burst).
# At very high rates (a test fake at 1,000/s) a database round trip is longer than that; a few
# milliseconds are always allowed.
LATE_SHARE = 0.9
LATE_FLOOR = 0.005


class SendPlanner:
    def __init__(self, schedule: SharedSchedule, clock: Callable[[], float] = time.time) -> None:
        self._schedule = schedule
        self._clock = clock
        self._paused: dict[str, float] = {}
        self._began: dict[str, list[float]] = {}  # when each pause heard of began
        self.rebooked = 0  # sends that came late to their slot and booked another
        # Sends that book again at the same moment (after a pause, or all late together when
        # the worker was busy) share one reservation.
        self._book_again = Coalesced(self._book_many)

    async def plan(self, sends: Sequence[tuple[int, Scopes, float]]) -> dict[int, float]:
        """`sends` are (id, scopes, cost) in sending order; returns each id's earliest time."""
        now = self._clock()
        wanted: dict[str, float] = defaultdict(float)
        for _, scopes, cost in sends:
            for scope, interval in scopes:
                wanted[scope] += interval * cost
        starts = await self._schedule.reserve(wanted, now)
        booked_until = {scope: starts[scope] + wanted[scope] for scope in wanted}
        cursor = dict(starts)
        times: dict[int, float] = {}
        for send_id, scopes, cost in sends:
            at = max([cursor[scope] for scope, _ in scopes] + [now])
            times[send_id] = at
            for scope, interval in scopes:
                cursor[scope] = at + interval * cost
        overrun = {s: cursor[s] - booked_until[s] for s in cursor if cursor[s] > booked_until[s]}
        if overrun:
            await self._schedule.reserve(overrun, now)
        return times

    def now(self) -> float:
        return self._clock()

    async def take_slot(self, at: float, scopes: Scopes, cost: float = 1.0,
                        planned_at: float | None = None) -> None:
        """Sleep until the send planned for `at` (at `planned_at`) may go. A pause on any of
        its scopes that began after it was planned voids its slot: it waits the pause out and
        books a new slot (the schedule restarts at the pause's end for everyone, so the sends
        of all workers come after it spaced by the limit, not in a burst). If it comes to its
        slot late, it books a new one once and waits for that."""
        tolerance = max(LATE_FLOOR,
                        LATE_SHARE * min((interval for _, interval in scopes), default=0.0))
        planned = self._clock() if planned_at is None else planned_at
        rebooked_late = False
        while True:
            now = self._clock()
            pause_end = max(self._paused.get(scope, 0.0) for scope, _ in scopes)
            if pause_end > now:
                await asyncio.sleep(pause_end - now)
                continue
            if self.voided(scopes, planned):
                planned = self._clock()
                at = await self._book_again((scopes, cost))
                continue
            delay = at - now
            if delay > 0:
                await asyncio.sleep(delay)  # a pause may come meanwhile: check again
                continue
            # Late: book a new slot, once. Late again means this worker cannot keep to any
            # slot (an overloaded machine), and waiting on would only starve the message.
            if -delay <= tolerance or rebooked_late:
                return
            rebooked_late = True
            self.rebooked += 1
            planned = self._clock()
            at = await self._book_again((scopes, cost))

    async def _book_many(self, sends: list[tuple[Scopes, float]]) -> list[float]:
        times = await self.plan([(i, scopes, cost) for i, (scopes, cost) in enumerate(sends)])
        return [times[i] for i in range(len(sends))]

    def voided(self, scopes: Scopes, planned_at: float) -> bool:
        """Whether a pause on these scopes began after a send was planned at `planned_at`."""
        return any(began > planned_at for scope, _ in scopes
                   for began in self._began.get(scope, ()))

    async def pause(self, scope: str, seconds: float) -> None:
        """This worker was told to wait (a 429): tell every worker."""
        now = self._clock()
        self.hear(scope, now + seconds, seconds)
        await self._schedule.pause(scope, seconds, now)

    def paused_until(self, scope: str) -> float:
        return self._paused.get(scope, 0.0)

    def hear(self, scope: str, until: float, length: float | None = None) -> None:
        """A pause of `length` seconds until `until`: nothing goes on the scope before it
        ends, and sends planned before it began book new slots after it."""
        if until <= self._paused.get(scope, 0.0):
            return  # heard already (our own, echoed back)
        self._paused[scope] = until
        began = until - length if length is not None else self._clock()
        self._began.setdefault(scope, []).append(began)

    async def follow_pauses(self, stop: asyncio.Event) -> None:
        """Until `stop`: learn every pause any worker announces. `take_slot` checks the
        pauses again after each sleep and just before a send goes, so a send planned before
        the pause waits it out."""
        while not stop.is_set():
            try:
                async for scope, until, length in self._schedule.pauses(stop):
                    self.hear(scope, until, length)
            except Exception as exc:  # the database went away: listen again once it is back
                log.warning("lost the shared pause listener (%s); listening again",
                            type(exc).__name__)
                try:
                    await asyncio.wait_for(stop.wait(), 1.0)
                except TimeoutError:
                    pass

    def forget_idle(self) -> None:
        now = self._clock()
        self._paused = {k: v for k, v in self._paused.items() if v > now}
        # A plan is sent within its lease (minutes): older pauses can no longer void it.
        self._began = {k: kept for k, v in self._began.items()
                       if (kept := [b for b in v if b > now - 900])}
