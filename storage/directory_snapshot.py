"""The directory as the bot's turns read it: every active listing in memory, reloaded at most once
a minute, outside any turn.

Why in memory: a turn may cost at most three database round trips, and a step that reads the
database inside a turn that holds SQLite's only connection would wait for itself. The directory
is small (a national directory is thousands of services, a few MB) and changes by import, so a
minute-old copy is fine; an import is seen by every process within `max_age`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.directory import Listing, to_listing
from storage.models import DirectoryService

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Entry:
    listing: Listing
    nationwide: bool  # serves the whole country, not only some regions


class DirectorySnapshot:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, max_age: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._sessions = sessions
        self._max_age = max_age
        self._clock = clock
        self._loaded_at: float | None = None
        self._lock = asyncio.Lock()
        self._by_country: dict[str, list[_Entry]] = {}

    async def fresh(self) -> None:
        """Reload if older than `max_age`. A failure keeps the copy there is (logged): the
        turn that follows needs the database too and says so itself."""
        if self._loaded_at is not None and self._clock() - self._loaded_at < self._max_age:
            return
        async with self._lock:
            if self._loaded_at is not None and self._clock() - self._loaded_at < self._max_age:
                return  # another turn reloaded it meanwhile
            try:
                await self.reload()
            except Exception as exc:
                log.warning("could not reload the directory (%s); using the copy loaded %s",
                            type(exc).__name__, "never" if self._loaded_at is None else
                            f"{self._clock() - self._loaded_at:.0f} s ago")
                self._loaded_at = self._clock()  # try again after max_age, not every turn

    async def reload(self) -> None:
        query = (select(DirectoryService.id, DirectoryService.areas, DirectoryService.listing)
                 .where(DirectoryService.active.is_(True)))
        async with self._sessions() as session:
            rows = (await session.execute(query)).all()
        by_country: dict[str, list[_Entry]] = {}
        for id_, areas, listing in rows:
            for country, regions in areas.items():
                by_country.setdefault(country, []).append(
                    _Entry(to_listing(id_, country, regions or [], listing), not regions))
        self._by_country = by_country
        self._loaded_at = self._clock()

    def serving(self, country: str, kinds: Collection[str], *, limit: int = 5
                ) -> Sequence[Listing]:
        """Active services in `country` taking any of `kinds`: most matching kinds first, then
        those serving the whole country (we do not know the person's region), then those open
        24/7, then by name."""
        wanted = set(kinds)
        found = [(len(e.listing.kinds & wanted), e) for e in
                 self._by_country.get(country.upper(), ()) if e.listing.kinds & wanted]
        found.sort(key=lambda m: (-m[0], not m[1].nationwide, not m[1].listing.open_24_7,
                                  m[1].listing.name, m[1].listing.service_id))
        return [e.listing for _, e in found[:limit]]
