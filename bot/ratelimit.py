"""When each message of a batch may go out, within rate limits shared by every worker.

Each scope (the whole bot, one chat, one SMS sender) has a schedule in the database
(storage.ratelimits). A batch books what it needs on every scope in one statement, then spaces
its sends inside the booking: a send goes at the latest of its scopes' next free times, and moves
each of them on by its interval times its cost (SMS segments). If waiting for one scope (a chat)
stretched the plan past a booking, the rest is booked too, so the shared schedule always covers
every send. A 429's pause is written to the schedule for everyone, and this worker waits it out;
`follow_pauses` hears pauses other workers announce, so a send already planned waits too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence

from storage.ratelimits import SharedSchedule

log = logging.getLogger(__name__)
Scopes = list[tuple[str, float]]  # (scope, seconds per unit)
# A worker behind its plan may catch up at up to twice the rate: a short, bounded burst, without
# adding its own processing time to every interval (which would lose a few percent of the limit).
CATCH_UP = 0.5


class SendPlanner:
    def __init__(self, schedule: SharedSchedule, clock: Callable[[], float] = time.time) -> None:
        self._schedule = schedule
        self._clock = clock
        self._paused: dict[str, float] = {}
        self._shifts: dict[str, list[tuple[float, float]]] = {}  # (heard at, seconds)
        self._last_sent: dict[str, float] = {}

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

    async def wait_until(self, at: float, scopes: Scopes, cost: float = 1.0,
                         planned_at: float | None = None) -> None:
        """Sleep until `at` (planned at `planned_at`), moved back by every pause on the send's
        scopes heard of since it was planned, past any pause in force, and at least an interval
        after this worker's previous send on each scope: a worker that fell behind its plan
        catches up at a bounded rate instead of in a burst."""
        while True:
            delay = self.release_at(at, scopes, cost, planned_at) - self._clock()
            if delay <= 0:
                break
            await asyncio.sleep(delay)  # others may have sent meanwhile: check again
        now = self._clock()
        for scope, _ in scopes:
            self._last_sent[scope] = now

    def release_at(self, at: float, scopes: Scopes, cost: float = 1.0,
                   planned_at: float | None = None) -> float:
        """When a send planned for `at` may go, as far as this worker knows now."""
        planned = at if planned_at is None else planned_at
        shift = max(sum(seconds for heard, seconds in self._shifts.get(scope, ())
                        if heard > planned) for scope, _ in scopes) if self._shifts else 0.0
        return max(
            [at + shift]
            + [self._paused.get(scope, 0.0) for scope, _ in scopes]
            + [self._last_sent.get(scope, 0.0) + interval * cost * CATCH_UP
               for scope, interval in scopes]
        )

    async def pause(self, scope: str, seconds: float) -> None:
        """This worker was told to wait (a 429): tell every worker."""
        now = self._clock()
        self.hear(scope, now + seconds)
        await self._schedule.pause(scope, seconds, now)

    def paused_until(self, scope: str) -> float:
        return self._paused.get(scope, 0.0)

    def hear(self, scope: str, until: float) -> None:
        """A pause until `until`: sends already planned move back by as much of it as is new
        (so they keep their spacing instead of all going when it ends), and nothing goes on
        the scope before it ends."""
        now = self._clock()
        start = max(self._paused.get(scope, 0.0), now)
        if until <= start:
            return  # heard already (our own, echoed back), or over
        self._paused[scope] = until
        self._shifts.setdefault(scope, []).append((now, until - start))

    async def follow_pauses(self) -> None:
        """Until cancelled: learn every pause any worker announces. `wait_until` checks the
        pauses again after each sleep and just before a send goes, so a send planned before
        the pause waits it out."""
        while True:
            try:
                async for scope, until in self._schedule.pauses():
                    self.hear(scope, until)
            except Exception:  # the database went away: listen again once it is back
                log.warning("lost the shared pause listener; listening again", exc_info=True)
                await asyncio.sleep(1.0)

    def forget_idle(self) -> None:
        now = self._clock()
        self._paused = {k: v for k, v in self._paused.items() if v > now}
        self._last_sent = {k: v for k, v in self._last_sent.items() if v > now - 60}
        # A plan is sent within its lease (minutes): older shifts can no longer apply.
        self._shifts = {k: kept for k, v in self._shifts.items()
                        if (kept := [(h, s) for h, s in v if h > now - 900])}
