"""Rate limits for sending: a schedule per scope (the whole bot, one chat, one SMS sender).

Each scope hands out send times at a fixed interval (the generic cell rate algorithm): a send
waits for its slot instead of being refused. A provider's 429 pauses the scope: no request is
made inside the pause.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class RateLimiter:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._next: dict[str, float] = {}

    def reserve(self, scope: str, interval: float, cost: float = 1.0) -> float:
        """Book the next slot of `scope`; returns how long to wait for it."""
        now = self._clock()
        start = max(now, self._next.get(scope, now))
        self._next[scope] = start + interval * cost
        return start - now

    async def acquire(self, scopes: list[tuple[str, float]], cost: float = 1.0) -> None:
        """Wait until every scope allows one more send (of `cost` units, e.g. SMS segments)."""
        wait = max((self.reserve(scope, interval, cost) for scope, interval in scopes), default=0)
        if wait > 0:
            await asyncio.sleep(wait)

    def pause(self, scope: str, seconds: float) -> None:
        """A 429 with retry_after: nothing goes out on this scope before the pause ends."""
        self._next[scope] = max(self._next.get(scope, 0.0), self._clock() + seconds)

    def forget_idle(self) -> None:
        """Drop scopes whose schedule is in the past (per-chat scopes would pile up)."""
        now = self._clock()
        self._next = {k: v for k, v in self._next.items() if v > now}
