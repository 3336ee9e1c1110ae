"""Calls made in the same turn of the event loop share one database round trip.

A sender has many sends in flight; each must be checked just before it goes and settled as soon
as the provider answers. Doing each alone costs a round trip per message; sends whose slots come
due together wake in the same loop iteration, so their checks (and the answers that arrive
together, their settlements) are gathered here and run as one statement, with no added wait.
One round runs at a time: what comes in meanwhile waits for it and goes together in the next
(group commit), so the busier the sender, the larger and fewer the statements.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Coalesced(Generic[T, R]):
    def __init__(self, run: Callable[[list[T]], Awaitable[list[R]]]) -> None:
        """`run` takes every item submitted since the last call and returns one result per
        item, in order; if it raises, every caller of that round gets the exception."""
        self._run = run
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._running = False

    async def __call__(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        if not self._pending and not self._running:
            loop.call_soon(self._flush)
        self._pending.append((item, future))
        return await future

    def _flush(self) -> None:
        if self._running or not self._pending:
            return
        batch, self._pending = self._pending, []
        self._running = True
        task = asyncio.get_running_loop().create_task(self._execute(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _execute(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            await self._run_round(batch)
        finally:
            self._running = False
            if self._pending:
                asyncio.get_running_loop().call_soon(self._flush)

    async def _run_round(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            results = await self._run([item for item, _ in batch])
        except Exception as exc:  # handed to every waiting caller
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        except BaseException:  # cancelled (shutting down): so are the callers
            for _, future in batch:
                future.cancel()
            raise
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)
