"""The directory of organisations: who takes which kind of case in which country, on which lines,
when. Imported from and exported to Open Referral HSDS 3.0 (storage.hsds).

How it is stored, and why: each organisation's whole HSDS record (full, nested, normalised by
storage.hsds.graph) is kept as JSON in `directory_organizations.record`, with a digest of it.
Beside it, derived from the record on every import and never edited by themselves, are the rows
the bot queries: `directory_services` (one per service, with what a listing shows) and
`directory_coverage` (service x country x kind of case, the index of `DirectoryStore.serving`).
So a field we do not use (an accreditation, a contact, a funding source, a property another
system added) survives import and export untouched, an export is the records themselves, and a
second import of the same data is recognised by its digest as "unchanged" without a comparison
field by field. The price: a change to how listings are derived needs the records re-derived,
which `_FORMAT` in the digest forces on the next import.

An import is one transaction: every record is read and checked (the official schema, then the
`hotline` taxonomy's rules) before anything is written, and one rejected row leaves the
database as it was.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.hsds import (
    Problem,
    build,
    flatten_records,
    profiles,
    read_sources,
    skipped,
    write_package,
)
from storage.models import DirectoryCoverage, DirectoryOrganization, DirectoryService

_FORMAT = 1  # bump when records or listings are derived differently: every digest changes
_CHUNK = 500

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Line:
    number: str
    kind: str  # "voice" | "text"
    description: str | None
    languages: tuple[str, ...]  # ISO 639-1 codes


@dataclass(frozen=True)
class Hours:
    """A weekly opening: on `days` ("MO".."SU"), from `opens` to `closes` ("HH:MM", in the
    listing's time zone)."""

    days: tuple[str, ...]
    opens: str
    closes: str
    note: str | None


@dataclass(frozen=True)
class Listing:
    service_id: str
    organisation: str
    name: str
    description: str | None
    url: str | None
    country: str  # "" for a service whose record names no country (only from `get`)
    regions: tuple[str, ...]  # ISO 3166-2; empty: the whole country
    kinds: frozenset[str]
    phones: tuple[Line, ...]
    open_24_7: bool
    hours: tuple[Hours, ...]
    time_zone: str | None
    accepts: tuple[str, ...]
    foreign_nationals: bool | None
    free: bool | None
    languages: tuple[str, ...]


@dataclass
class ImportReport:
    """What an import did, or, when anything was rejected, why it did nothing."""

    created: list[str] = field(default_factory=list)  # organisation names
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    services: int = 0
    rejected: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.rejected


class DirectoryStore:
    """What the bot's flows read."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def serving(self, country: str, kinds: Collection[str], *, limit: int = 5
                      ) -> list[Listing]:
        """Active services in `country` taking any of `kinds`: most matching kinds first, then
        those open 24/7, then by name. One query."""
        country = country.upper()
        if not kinds:
            return []
        matched = (
            select(DirectoryCoverage.service_id, func.count().label("matched"))
            .where(DirectoryCoverage.country == country, DirectoryCoverage.kind.in_(kinds))
            .group_by(DirectoryCoverage.service_id)
            .subquery()
        )
        query = (
            select(DirectoryService.id, DirectoryService.areas, DirectoryService.listing)
            .join(matched, matched.c.service_id == DirectoryService.id)
            .where(DirectoryService.active.is_(True))
            .order_by(matched.c.matched.desc(), DirectoryService.open_24_7.desc(),
                      DirectoryService.name, DirectoryService.id)
            .limit(limit)
        )
        async with self.sessions() as session:
            rows = (await session.execute(query)).all()
        return [to_listing(id_, country, areas.get(country, []), listing)
                for id_, areas, listing in rows]

    async def get(self, service_or_org_id: str) -> list[Listing]:
        """The active services of an organisation (or the one service) with this id: one
        listing per country each serves, by name."""
        query = (
            select(DirectoryService.id, DirectoryService.areas, DirectoryService.listing)
            .where(or_(DirectoryService.id == service_or_org_id,
                       DirectoryService.organization_id == service_or_org_id),
                   DirectoryService.active.is_(True))
            .order_by(DirectoryService.name, DirectoryService.id)
        )
        async with self.sessions() as session:
            rows = (await session.execute(query)).all()
        return [to_listing(id_, country, regions, listing)
                for id_, areas, listing in rows
                for country, regions in (sorted(areas.items()) or [("", [])])]

    async def is_empty(self) -> bool:
        async with self.sessions() as session:
            found = await session.execute(select(DirectoryOrganization.id).limit(1))
            return found.first() is None


def to_listing(service_id: str, country: str, regions: Sequence[str], data: dict[str, Any]
             ) -> Listing:
    return Listing(
        service_id=service_id, organisation=data["organisation"], name=data["name"],
        description=data.get("description"), url=data.get("url"), country=country,
        regions=tuple(regions), kinds=frozenset(data.get("kinds", ())),
        phones=tuple(Line(p["number"], p["kind"], p.get("description"), tuple(p["languages"]))
                     for p in data.get("phones", ())),
        open_24_7=bool(data.get("open_24_7")),
        hours=tuple(Hours(tuple(h["days"]), h["opens"], h["closes"], h.get("note"))
                    for h in data.get("hours", ())),
        time_zone=data.get("time_zone"), accepts=tuple(data.get("accepts", ())),
        foreign_nationals=data.get("foreign_nationals"), free=data.get("free"),
        languages=tuple(data.get("languages", ())),
    )


# --- import -------------------------------------------------------------------------------------

async def import_paths(sessions: async_sessionmaker[AsyncSession], paths: Iterable[Path], *,
                       progress: Progress | None = None) -> ImportReport:
    """Import HSDS files (JSON in any canonical form, or a data package) in one transaction."""
    # Reading and checking every row against the schema is the slow part: off the event loop.
    source = await asyncio.to_thread(read_sources, list(paths))
    report = ImportReport(rejected=list(source.problems), notes=list(source.notes))
    scopes = source.scopes
    async with sessions.begin() as session:
        ids = [s.organization_id for s in scopes]
        digests: dict[str, str] = {}
        for chunk in _chunks(ids):
            result = await session.execute(
                select(DirectoryOrganization.id, DirectoryOrganization.digest)
                .where(DirectoryOrganization.id.in_(chunk)))
            digests.update({row.id: row.digest for row in result})
        partial = [s.organization_id for s in scopes if not s.whole and s.organization_id in
                   digests]
        stored: dict[str, dict[str, Any]] = {}
        for chunk in _chunks(partial):
            result = await session.execute(
                select(DirectoryOrganization.id, DirectoryOrganization.record)
                .where(DirectoryOrganization.id.in_(chunk)))
            stored.update({row.id: row.record for row in result})

        built = []
        used: set[tuple[int, str, str]] = set()
        owners: dict[str, str] = {}
        for done, scope in enumerate(scopes, start=1):
            result_ = build(scope, stored.get(scope.organization_id))
            report.rejected.extend(result_.problems)
            report.notes.extend(result_.notes)
            used |= {(id(scope.tables), obj, id_) for obj, id_ in result_.inside}
            if result_.record:
                services = profiles(result_.record)
                for service in services:
                    other = owners.setdefault(service["id"], scope.organization_id)
                    if other != scope.organization_id:
                        report.rejected.append(Problem(scope.origin, (
                            f"service {service['id']} is in organizations {other} and "
                            f"{scope.organization_id}")))
                built.append((scope, result_.record, services))
            if progress:
                progress(done, len(scopes))
        report.notes.extend(skipped(source, used))
        await _check_owners(session, owners, set(ids), report)
        if report.rejected:
            return report

        now = datetime.now(UTC)
        new_orgs: list[dict[str, Any]] = []
        changed_orgs: list[dict[str, Any]] = []
        services_rows: list[dict[str, Any]] = []
        coverage_rows: list[dict[str, Any]] = []
        for scope, record, services in built:
            digest = _digest(record)
            org_id = scope.organization_id
            if digests.get(org_id) == digest:
                report.unchanged.append(record["name"])
                continue
            row = {"id": org_id, "name": record["name"], "record": record, "digest": digest,
                   "updated_at": now}
            if org_id in digests:
                changed_orgs.append(row)
                report.updated.append(record["name"])
            else:
                new_orgs.append(row)
                report.created.append(record["name"])
            for service in services:
                services_rows.append({
                    "id": service["id"], "organization_id": org_id, "name": service["name"],
                    "active": service["active"], "open_24_7": service["open_24_7"],
                    "areas": service["areas"],
                    "listing": {**service["listing"], "kinds": service["kinds"],
                                "open_24_7": service["open_24_7"]},
                })
                coverage_rows.extend({"country": country, "kind": kind,
                                      "service_id": service["id"]}
                                     for country in service["areas"]
                                     for kind in service["kinds"])
        report.services = len(services_rows)
        for chunk in _chunks([row["id"] for row in changed_orgs]):
            # Their services go, and are written again from the new records.
            gone = select(DirectoryService.id).where(DirectoryService.organization_id.in_(chunk))
            await session.execute(delete(DirectoryCoverage)
                                  .where(DirectoryCoverage.service_id.in_(gone)))
            await session.execute(delete(DirectoryService)
                                  .where(DirectoryService.organization_id.in_(chunk)))
        for rows in _chunks(changed_orgs):
            await session.execute(update(DirectoryOrganization), rows)
        for model, all_rows in ((DirectoryOrganization, new_orgs),
                                (DirectoryService, services_rows),
                                (DirectoryCoverage, coverage_rows)):
            for rows in _chunks(all_rows):
                await session.execute(insert(model), rows)
    return report


async def _check_owners(session: AsyncSession, owners: dict[str, str], importing: set[str],
                        report: ImportReport) -> None:
    """A service stored under another organisation that this import does not rewrite cannot
    move: it would be in two records."""
    for chunk in _chunks(list(owners)):
        result = await session.execute(
            select(DirectoryService.id, DirectoryService.organization_id)
            .where(DirectoryService.id.in_(chunk)))
        for service_id, organization_id in result:
            if organization_id != owners[service_id] and organization_id not in importing:
                report.rejected.append(Problem(f"service {service_id}", (
                    f"is already in organization {organization_id}; import that organization "
                    "without it first")))


def _digest(record: dict[str, Any]) -> str:
    text = json.dumps([_FORMAT, record], sort_keys=True, ensure_ascii=False,
                      separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


T = TypeVar("T")


def _chunks(items: Sequence[T], size: int = _CHUNK) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield list(items[start:start + size])


async def load_seed(sessions: async_sessionmaker[AsyncSession], folder: Path) -> ImportReport:
    """The seed directory (one HSDS file per country, flows/data/directory/*.json)."""
    return await import_paths(sessions, sorted(folder.glob("*.json")))


def seed_numbers(folder: Path) -> set[str]:
    """The digits of every phone number in the seed files (no database): the content checker
    compares the numbers texts name with these."""
    numbers: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if key == "phones" and isinstance(item, list):
                    for phone in item:
                        if isinstance(phone, dict) and isinstance(phone.get("number"), str):
                            digits = "".join(c for c in phone["number"] if c.isdigit())
                            if digits:
                                numbers.add(digits)
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    for path in sorted(folder.glob("*.json")):
        walk(json.loads(path.read_text(encoding="utf-8")))
    return numbers


# --- export -------------------------------------------------------------------------------------

async def _records(sessions: async_sessionmaker[AsyncSession]) -> list[dict[str, Any]]:
    async with sessions() as session:
        result = await session.execute(select(DirectoryOrganization.record).order_by(
            DirectoryOrganization.name, DirectoryOrganization.id))
        return [record for (record,) in result]


async def export_json(sessions: async_sessionmaker[AsyncSession], path: Path) -> int:
    """One JSON array of full organizations, their services nested; returns how many."""
    records = await _records(sessions)
    path.write_text(json.dumps(records, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return len(records)


async def export_csv(sessions: async_sessionmaker[AsyncSession], folder: Path
                     ) -> dict[str, int]:
    """The tabular data package (datapackage.json and one CSV per object); returns the rows
    written per file. A row two records hold differently (a shared taxonomy term edited in one)
    is written as the first record has it: CSV has one row per id."""
    tables = flatten_records(await _records(sessions), strict=False)
    return write_package(tables, folder)
