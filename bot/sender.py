"""The sender: drains the outbox through the channel clients, within the rate limits.

Messages to one person go one after another, in the order they were written; different people
are served at once. Transient failures are retried with exponential backoff; after
`max_attempts` the message is failed with its reason. Permanent failures are not retried.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import defaultdict
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone

from bot.channels.base import ChannelClient, Failed, Result, Retry, Sent
from bot.ratelimit import Scopes, SendPlanner
from storage.outbox import Claimed, Sender, Settlement

log = logging.getLogger(__name__)


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
        clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ) -> None:
        self._outbox = outbox
        self._clients = dict(clients)
        self._planner = planner or SendPlanner(outbox.shared_schedule())
        self._batch = batch
        self._lease = lease
        self._max_attempts = max_attempts
        self._idle_wait = idle_wait
        self._clock = clock

    async def run(self, stop: asyncio.Event) -> None:
        follow = asyncio.create_task(self._planner.follow_pauses(), name="pauses")
        try:
            while not stop.is_set():
                try:
                    sent = await self.run_once()
                except Exception:  # a database hiccup must not end the loop; leases keep rows
                    log.exception("sender batch failed; retrying")
                    sent = 0
                if sent == 0:
                    try:
                        await asyncio.wait_for(stop.wait(), self._idle_wait)
                    except TimeoutError:
                        pass
                self._planner.forget_idle()
        finally:
            follow.cancel()
            await asyncio.gather(follow, return_exceptions=True)

    async def run_once(self) -> int:
        """Send one batch; returns how many rows it handled."""
        if not self._clients:
            return 0
        items = await self._outbox.claim(list(self._clients), self._clock(), self._batch,
                                         self._lease)
        if not items:
            return 0
        by_recipient: dict[tuple[str, bytes], list[Claimed]] = defaultdict(list)
        for item in items:
            by_recipient[(item.channel, item.address_hash)].append(item)
        planned_at = self._planner.now()
        sends = {item.id: (self._clients[item.channel].scopes(item),
                           self._clients[item.channel].cost(item)) for item in items}
        times = await self._planner.plan([(i, *sends[i]) for i in sends])
        settled = await asyncio.gather(*(self._send_in_order(g, times, sends, planned_at)
                                         for g in by_recipient.values()))
        settlements = [s for group in settled for s in group]
        await self._outbox.settle(settlements, self._clock())
        return len(items)

    async def _send_in_order(self, items: list[Claimed], times: dict[int, float],
                             sends: dict[int, tuple[Scopes, float]], planned_at: float
                             ) -> list[Settlement]:
        settlements = []
        for index, item in enumerate(items):
            client = self._clients[item.channel]
            await self._planner.wait_until(times[item.id], *sends[item.id], planned_at)
            try:
                result: Result = await client.send(item)
            except Exception as exc:  # a bug in a client must not lose the message
                log.exception("send failed unexpectedly (outbox %s)", item.id)
                result = Retry(f"unexpected {type(exc).__name__}")
            settlement = await self._settle_one(item, result)
            settlements.append(settlement)
            if settlement.status != "sent" and isinstance(result, Retry):
                # Keep this person's order: what follows waits for the one that failed.
                later = settlement.retry_at
                settlements += [
                    Settlement(i.id, "queued", retry_at=later, error="waiting for an earlier "
                               "message to the same person", not_tried=True,
                               parts_sent=i.parts_sent)
                    for i in items[index + 1:]
                ]
                break
        return settlements

    async def _settle_one(self, item: Claimed, result: Result) -> Settlement:
        now = self._clock()
        if isinstance(result, Sent):
            return Settlement(item.id, "sent", provider_id=result.provider_id,
                              erase=item.erase_after_send)
        if isinstance(result, Failed):
            if result.stop_contact and item.contact_id is not None:
                await self._outbox.mark_contact_stopped(item.contact_id)
            log.warning("outbox %s failed: %s", item.id, result.reason)
            return Settlement(item.id, "failed", error=result.reason, parts_sent=item.parts_sent)
        if result.pause and result.scope:
            await self._planner.pause(result.scope, result.pause)
        if item.attempts >= self._max_attempts:
            log.warning("outbox %s failed after %d attempts: %s", item.id, item.attempts,
                        result.reason)
            return Settlement(item.id, "failed",
                              error=f"gave up after {item.attempts} attempts: {result.reason}",
                              parts_sent=result.parts_sent)
        backoff = result.pause or min(300.0, 2.0 ** item.attempts) * random.uniform(0.8, 1.2)
        return Settlement(item.id, "queued", retry_at=now + timedelta(seconds=backoff),
                          error=result.reason, parts_sent=result.parts_sent)
