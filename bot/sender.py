"""The sender: drains the outbox through the channel clients, within the rate limits.

Each claimed row is its own task: wait for its rate slot, check it is still ours, send, settle.
The loop claims more as tasks finish, so a slow recipient never holds the others up.

- **Exactly once.** Rows are leased under a claim token; the lease is renewed while they wait,
  and a row is not sent once its lease is within a third of running out (it is left to expire
  and go out from another worker instead). Just before a send the row is checked to be still
  ours (erased rows are gone), and its outcome is settled as soon as the provider answers, by
  the token's holder only. A database error while settling is retried.
- **In order.** The outbox hands out one row per person at a time (storage.outbox), so a
  person's next message waits for the previous one to be sent, failed, or retried.
- Transient failures are retried with exponential backoff; after `max_attempts` the message is
  failed with its reason. Permanent failures are not retried. A row that cannot be read fails
  alone.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

from bot.channels.base import ChannelClient, Failed, Result, Retry, Sent
from bot.coalesce import Coalesced
from bot.ratelimit import Scopes, SendPlanner
from storage.outbox import Claimed, Sender, Settlement

log = logging.getLogger(__name__)


class SendObserver(Protocol):
    """What the sender reports (bot.metrics.Metrics)."""

    def send(self, channel: str, result: str) -> None: ...
    def rate_limited(self, channel: str) -> None: ...
    def pause(self, scope_kind: str) -> None: ...
    def resend(self, channel: str, count: int = 1) -> None: ...


@dataclass
class _Lease:
    until: datetime
    rows: set[int] = field(default_factory=set)


class SenderLoop:
    def __init__(
        self,
        outbox: Sender,
        clients: Mapping[str, ChannelClient],
        *,
        planner: SendPlanner | None = None,
        batch: int = 100,
        lease: timedelta = timedelta(minutes=2),
        max_attempts: int = 6,
        idle_wait: float = 0.2,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        metrics: SendObserver | None = None,
        purge_every: float = 60.0,
    ) -> None:
        self._outbox = outbox
        self._clients = dict(clients)

        def epoch() -> float:
            return self._clock().timestamp()

        self._planner = planner or SendPlanner(outbox.shared_schedule(epoch), clock=epoch)
        self._batch = batch
        self._lease = lease
        self._max_attempts = max_attempts
        self._idle_wait = idle_wait
        self._clock = clock
        self._metrics = metrics
        self._purge_every = purge_every
        self._leases: dict[str, _Lease] = {}
        self._waiting: dict[tuple[int, str], asyncio.Task[None]] = {}  # not yet sending
        self._tasks: set[asyncio.Task[None]] = set()
        self._done = asyncio.Event()
        self._check = Coalesced(self._still_held)
        self._settle = Coalesced(self._settle_all)

    # --- the loop ------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        # The helpers end when `halt` is set rather than being cancelled: a database call cut
        # off half-way can keep its connection from the pool (SQLite has only one).
        halt = asyncio.Event()
        helpers = [asyncio.create_task(self._planner.follow_pauses(halt), name="pauses"),
                   asyncio.create_task(self._keep_leases(halt), name="leases"),
                   asyncio.create_task(self._housekeeping(halt), name="purge")]
        try:
            while not stop.is_set():
                free = self._batch - len(self._tasks)
                started = 0
                # Claim in chunks (half a batch or more), not a row each time one finishes:
                # a claim costs the same database work for one row as for fifty.
                if free >= max(1, self._batch // 2) or not self._tasks:
                    try:
                        started = await self._claim_and_start(free)
                    except Exception as exc:  # a database hiccup must not end the loop
                        log.warning("claiming from the outbox failed (%s); retrying",
                                    type(exc).__name__)
                if started == 0 or self._batch - len(self._tasks) < max(1, self._batch // 2):
                    await self._wait_for_room(stop)
                self._planner.forget_idle()
        finally:
            await self._shut_down()
            halt.set()
            await asyncio.gather(*helpers, return_exceptions=True)

    async def run_once(self) -> int:
        """Claim one batch and see all of it through; returns how many rows it handled."""
        if not self._clients:
            return 0
        started = await self._claim_and_start(self._batch)
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        return started

    async def _wait_for_room(self, stop: asyncio.Event) -> None:
        """Until a task finishes, `idle_wait` passes, or we are stopped."""
        self._done.clear()
        waiters = [asyncio.ensure_future(self._done.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(waiters, timeout=self._idle_wait,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def _claim_and_start(self, limit: int) -> int:
        if not self._clients:
            return 0
        token = uuid.uuid4().hex
        now = self._clock()
        claim = await self._outbox.claim(list(self._clients), now, limit, self._lease, token)
        for bad in claim.unreadable:
            log.error("outbox %s cannot be read (%s): failed alone", bad.id, bad.reason)
            self._count("send", bad.channel, "failed")
            await self._settle(Settlement(bad.id, bad.token, "failed", error=bad.reason))
        if not claim.rows:
            return len(claim.unreadable)
        self._leases[token] = _Lease(now + self._lease, {item.id for item in claim.rows})
        for item in claim.rows:
            if item.taken_over:
                self._count("resend", item.channel)
        planned_at = self._planner.now()
        sends = {item.id: (self._clients[item.channel].scopes(item),
                           self._clients[item.channel].cost(item)) for item in claim.rows}
        times = await self._planner.plan([(i, *sends[i]) for i in sends])
        for item in claim.rows:
            task = asyncio.create_task(
                self._deliver(item, times[item.id], *sends[item.id], planned_at))
            self._waiting[(item.id, token)] = task
            self._tasks.add(task)
            task.add_done_callback(self._finished)
        return len(claim.rows) + len(claim.unreadable)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._done.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("a send task failed (%s)", type(task.exception()).__name__)

    # --- one row -------------------------------------------------------------------------------

    async def _deliver(self, item: Claimed, at: float, scopes: Scopes, cost: float,
                       planned_at: float) -> None:
        key = (item.id, item.token)
        try:
            await self._planner.take_slot(at, scopes, cost, planned_at)
            lease = self._leases.get(item.token)
            if lease is None or self._clock() > lease.until - self._lease / 3:
                # Too close to the end of the lease (renewing failed) to start a send that
                # might outlive it: give the row back unsent.
                log.warning("outbox %s: lease nearly over before its slot; given back", item.id)
                await self._settle_reliably(Settlement(
                    item.id, item.token, "queued", not_tried=True, error="lease nearly over"))
                return
            if key not in await self._check(key):
                self._count("send", item.channel, "cancelled")  # erased, or taken over
                return
            self._waiting.pop(key, None)  # from here on, shutting down waits for it
            try:
                result: Result = await self._clients[item.channel].send(item)
            except Exception as exc:  # a bug in a client must not lose the message
                log.error("send failed unexpectedly (outbox %s): %s", item.id,
                          type(exc).__name__)
                result = Retry(f"unexpected {type(exc).__name__}")
            settlement = await self._outcome(item, result)
            await self._settle_reliably(settlement)
        finally:
            self._waiting.pop(key, None)
            lease = self._leases.get(item.token)
            if lease is not None:
                lease.rows.discard(item.id)
                if not lease.rows:
                    del self._leases[item.token]

    async def _outcome(self, item: Claimed, result: Result) -> Settlement:
        now = self._clock()
        base = Settlement(item.id, item.token, "sent", erase=item.erase_after_send,
                          channel=item.channel, address_hash=item.address_hash)
        if isinstance(result, Sent):
            self._count("send", item.channel, "sent")
            return replace(base, provider_id=result.provider_id)
        if isinstance(result, Failed):
            self._count("send", item.channel, "failed")
            if result.stop_contact and item.contact_id is not None:
                await self._outbox.mark_contact_stopped(item.contact_id)
            log.warning("outbox %s failed: %s", item.id, result.reason)
            return replace(base, status="failed", error=result.reason,
                           parts_sent=item.parts_sent)
        if result.pause and result.scope:
            self._count("rate_limited", item.channel)
            self._count("pause", _scope_kind(result.scope))
            await self._planner.pause(result.scope, result.pause)
        if item.attempts >= self._max_attempts:
            self._count("send", item.channel, "failed")
            log.warning("outbox %s failed after %d attempts: %s", item.id, item.attempts,
                        result.reason)
            return replace(base, status="failed",
                           error=f"gave up after {item.attempts} attempts: {result.reason}",
                           parts_sent=result.parts_sent)
        self._count("send", item.channel, "retry")
        backoff = result.pause or min(300.0, 2.0 ** item.attempts) * random.uniform(0.8, 1.2)
        return replace(base, status="queued", retry_at=now + timedelta(seconds=backoff),
                       error=result.reason, parts_sent=result.parts_sent, erase=False)

    async def _settle_reliably(self, settlement: Settlement) -> None:
        """The provider has answered: record it, retrying while the database is away (the
        lease keeps the row ours for as long as that takes, up to one lease)."""
        delay, deadline = 0.2, self._clock() + self._lease
        while True:
            try:
                await self._settle(settlement)
                return
            except Exception as exc:
                if self._clock() > deadline:
                    log.error("could not record the outcome of outbox %s (%s): it may be sent "
                              "again", settlement.id, type(exc).__name__)
                    return
                log.warning("recording a send failed (%s); retrying", type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    # --- batched database work ----------------------------------------------------------------

    async def _still_held(self, keys: list[tuple[int, str]]) -> list[set[tuple[int, str]]]:
        held = await self._outbox.still_held(keys)
        return [held] * len(keys)

    async def _settle_all(self, settlements: list[Settlement]) -> list[None]:
        await self._outbox.settle(settlements, self._clock())
        return [None] * len(settlements)

    async def _keep_leases(self, stop: asyncio.Event) -> None:
        """Renew every lease this worker holds, a third of a lease apart; a row that is no
        longer ours (erased, or taken over after a lapse) is not sent."""
        every = self._lease.total_seconds() / 3
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), every)
                return
            except TimeoutError:
                pass
            if not self._leases:
                continue
            until = self._clock() + self._lease
            try:
                held = await self._outbox.renew(list(self._leases), until)
            except Exception as exc:
                log.warning("renewing leases failed (%s)", type(exc).__name__)
                continue
            for token, lease in list(self._leases.items()):
                lease.until = until
                for row in list(lease.rows):
                    waiting = self._waiting.get((row, token))
                    if (row, token) not in held and waiting is not None:
                        waiting.cancel()

    async def _housekeeping(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self._outbox.purge(self._clock())
            except Exception as exc:
                log.warning("outbox housekeeping failed (%s)", type(exc).__name__)
            try:
                await asyncio.wait_for(stop.wait(), self._purge_every)
            except TimeoutError:
                pass

    async def _shut_down(self) -> None:
        """Stop waiting sends and give their rows back at once (no attempt spent); let the
        sends already under way finish and be recorded."""
        waiting = dict(self._waiting)
        for task in waiting.values():
            task.cancel()
        await asyncio.gather(*waiting.values(), return_exceptions=True)
        if waiting:
            try:
                await self._outbox.settle(
                    [Settlement(row, token, "queued", not_tried=True,
                                error="released at shutdown")
                     for row, token in waiting], self._clock())
            except Exception as exc:
                log.warning("could not release rows at shutdown (%s); their leases will run "
                            "out", type(exc).__name__)
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _count(self, what: str, *args: str) -> None:
        if self._metrics is not None:
            getattr(self._metrics, what)(*args)


def _scope_kind(scope: str) -> str:
    """A scope's kind for metrics, never the recipient it names."""
    kind, _, rest = scope.partition(":")
    return f"{kind}_chat" if rest and kind == "telegram" else kind
