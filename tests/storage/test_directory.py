"""The directory: HSDS 3.0 import (official examples, a file by others, broken files), export that
validates and re-imports without loss, and the queries the bot reads."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.db import create_engine, sessionmaker
from storage.directory import (
    DirectoryStore,
    ImportReport,
    export_csv,
    export_json,
    import_paths,
    load_seed,
    seed_numbers,
)
from storage.hsds.hotline import TERM_IDS
from storage.hsds.schema import validator
from storage.models import DirectoryCoverage, DirectoryOrganization, DirectoryService

EXAMPLES = Path(__file__).parent / "hsds_examples"
EXAMPLE_ORG = "d9d5e0f5-d3ce-4f73-9a2f-4dd0ecc6c610"
EXAMPLE_SERVICE = "ac148810-d857-441c-9679-408f346de14b"
SHIPPED_SEED = Path(__file__).resolve().parents[2] / "flows" / "data" / "directory"


def seed_id(what: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"hotline-seed:{what}"))


def attribute(owner: str, entity: str, code: str, value: str) -> dict[str, Any]:
    # The README's form; the term is a partial copy, as a person writes it.
    return {"id": seed_id(f"{owner}:{code}:{value}"), "taxonomy_term_id": TERM_IDS[code],
            "taxonomy_term": {"id": TERM_IDS[code], "code": code, "name": code},
            "link_entity": entity, "link_id": owner, "value": value}


def service(cc: str, org: str, key: str, name: str, kinds: list[str], numbers: list[str], *,
            open_24_7: bool = False, regions: tuple[str, ...] = (), status: str = "active",
            **profile: str) -> dict[str, Any]:
    sid = seed_id(f"{cc}:{org}:{key}")
    area = seed_id(f"{cc}:{org}:{key}:area")
    attributes = [attribute(sid, "service", "case_kind", k) for k in kinds]
    attributes += [attribute(sid, "service", code, value) for code, value in profile.items()]
    attributes.append(attribute(sid, "service", "source",
                                "2026-11-23 https://example.org/hotline"))
    schedules = []
    if open_24_7:
        attributes.append(attribute(sid, "service", "open_24_7", "true"))
        schedules.append({"id": seed_id(f"{sid}:hours"), "freq": "WEEKLY",
                          "byday": "MO,TU,WE,TH,FR,SA,SU", "opens_at": "00:00",
                          "closes_at": "23:59"})
    return {
        "id": sid, "name": name, "status": status, "description": f"{name}, a test line",
        "phones": [{"id": seed_id(f"{sid}:phone:{i}"), "number": number, "type": "voice",
                    "languages": [{"id": seed_id(f"{sid}:phone:{i}:en"), "name": "English",
                                   "code": "en"}]}
                   for i, number in enumerate(numbers, start=1)],
        "schedules": schedules,
        "service_areas": [{
            "id": area, "name": cc,
            "attributes": [attribute(area, "service_area", "country", cc)] + [
                attribute(area, "service_area", "region", r) for r in regions]}],
        "languages": [{"id": seed_id(f"{sid}:ru"), "name": "Russian", "code": "ru"}],
        "attributes": attributes,
    }


def organisation(cc: str, key: str, name: str, services: list[dict[str, Any]],
                 **extra: Any) -> dict[str, Any]:
    oid = seed_id(f"{cc}:{key}")
    for s in services:
        s.setdefault("organization_id", oid)
    return {"id": oid, "name": name, "description": f"{name} (a test organisation)",
            "services": services, **extra}


@pytest.fixture
def seed_folder(tmp_path: Path) -> Path:
    """A small seed folder: two countries, lines of several kinds, one confidential shelter."""
    folder = tmp_path / "seed"
    folder.mkdir()
    pl = [
        organisation("PL", "a", "Alpha Foundation", [
            service("PL", "a", "line", "Alpha line", ["trafficking", "labour"], ["800 000 001"],
                    open_24_7=True, time_zone="Europe/Warsaw", accepts="whatsapp",
                    foreign_nationals="true", free="true"),
        ]),
        organisation("PL", "b", "Beta Centre", [
            service("PL", "b", "line", "Beta line", ["trafficking", "labour"], ["800 000 002"]),
            service("PL", "b", "old", "Beta old line", ["trafficking"], ["800 000 009"],
                    status="defunct"),
        ]),
        organisation("PL", "c", "Gamma Shelter", [
            service("PL", "c", "line", "Gamma line", ["domestic_violence"], ["800 000 003"],
                    regions=("PL-14",), confidential_location="true"),
        ], locations=[{"id": seed_id("PL:c:home"), "location_type": "physical",
                       "latitude": 52.2, "longitude": 21.0,
                       "addresses": [{"id": seed_id("PL:c:home:address"),
                                      "address_1": "1 Secret Street", "city": "Warsaw",
                                      "state_province": "Mazowieckie", "postal_code": "00-001",
                                      "country": "PL", "address_type": "physical"}]}],
           attributes=[attribute(seed_id("PL:c"), "organization", "confidential_location",
                                 "true")]),
    ]
    ru = [organisation("RU", "d", "Delta", [
        service("RU", "d", "line", "Delta line", ["trafficking"], ["8-800-000-00-04"]),
    ])]
    (folder / "PL.json").write_text(json.dumps(pl, indent=2), encoding="utf-8")
    (folder / "RU.json").write_text(json.dumps(ru, indent=2), encoding="utf-8")
    return folder


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(database_url)
    yield sessionmaker(engine)
    await engine.dispose()


async def snapshot(sessions: async_sessionmaker[AsyncSession]) -> list[tuple[str, str]]:
    async with sessions() as session:
        rows = await session.execute(select(DirectoryOrganization.id, DirectoryOrganization.digest)
                                     .order_by(DirectoryOrganization.id))
        return [tuple(r) for r in rows]  # type: ignore[misc]


def counts(report: ImportReport) -> tuple[int, int, int, int]:
    return (len(report.created), len(report.updated), len(report.unchanged),
            len(report.rejected))


# --- the official examples and a file by others -------------------------------------------------

async def test_the_official_json_examples_import_and_are_the_same_organization(
        sessions: async_sessionmaker[AsyncSession]) -> None:
    report = await import_paths(sessions, [EXAMPLES / "organization_full.json"])
    assert counts(report) == (1, 0, 0, 0), report.rejected
    # The same organization told from its service: the same record, so nothing changes.
    for example in ("service_full.json", "organization_full.json"):
        report = await import_paths(sessions, [EXAMPLES / example])
        assert counts(report) == (0, 0, 1, 0), report.rejected
    # An API page of organizations without their services updates the organization, keeps them.
    report = await import_paths(sessions, [EXAMPLES / "organization_list.json"])
    assert counts(report) == (0, 0, 1, 0)
    assert [s.service_id for s in await DirectoryStore(sessions).get(EXAMPLE_ORG)] == [
        EXAMPLE_SERVICE]


async def test_the_official_data_package_imports_and_says_what_it_skipped(
        sessions: async_sessionmaker[AsyncSession]) -> None:
    report = await import_paths(sessions, [EXAMPLES / "csv"])
    assert counts(report) == (1, 0, 0, 0), report.rejected
    # Its attribute, metadata and taxonomy rows are linked to nothing that exists.
    assert any(n.startswith("attributes.csv row 2: attribute") and "skipped" in n
               for n in report.notes)
    report = await import_paths(sessions, [EXAMPLES / "csv" / "datapackage.json"])
    assert counts(report) == (0, 0, 1, 0)
    async with sessions() as session:
        record = (await session.execute(select(DirectoryOrganization.record))).scalar_one()
    # A foreign key to a row that does not exist is kept, not lost.
    location = record["services"][0]["service_at_locations"][0]["location"]
    assert location["organization_id"] == "985e4a42-bd9f-4edc-911d-0243a4640aca"
    assert location["addresses"][0]["address_1"] == "1-30 Main Street"


async def test_a_file_written_by_others_is_rejected_where_it_breaks_the_schema(
        sessions: async_sessionmaker[AsyncSession]) -> None:
    """Open Referral UK's validator ships this organization (tpximpact/OpenReferralApi,
    Mocks/ApiResponses/V3_Organization.json): its location has no location_type and its taxonomy
    term neither name nor description, all three required by HSDS 3.0."""
    report = await import_paths(sessions, [EXAMPLES / "others" / "oruk_V3_Organization.json"])
    where = "oruk_V3_Organization.json: $.services[0]"
    assert {(p.where, p.reason) for p in report.rejected} == {
        (f"{where}.service_at_locations[0].location", "'location_type' is a required property"),
        (f"{where}.attributes[0].taxonomy_term", "'name' is a required property"),
        (f"{where}.attributes[0].taxonomy_term", "'description' is a required property"),
    }
    assert not report.ok and await snapshot(sessions) == []


# --- broken files -------------------------------------------------------------------------------

def _break_json(folder: Path, change: str) -> Path:
    line = service("RU", "e", "line", "Epsilon line", ["trafficking"], ["8-800-000-00-05"])
    data = organisation("RU", "e", "Epsilon", [line])
    if change == "bad uuid":
        line["phones"][0]["id"] = "phone-1"
        del line["phones"][0]["languages"]  # which would carry the bad id as their phone_id
    elif change == "missing name":
        del line["name"]
    elif change == "bad country":
        line["service_areas"][0]["attributes"][0]["value"] = "Russia"
    elif change == "empty phone":
        line["phones"][0]["number"] = " - "
    path = folder / "broken.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.mark.parametrize(("change", "where", "reason"), [
    ("bad uuid", "broken.json: $.services[0].phones[0]", "id: 'phone-1' is not a 'uuid'"),
    ("missing name", "broken.json: $.services[0]", "'name' is a required property"),
    ("bad country", "broken.json: $.services[0].service_areas[0].attributes[0]",
     "country 'Russia' is not an ISO 3166-1 alpha-2 code (upper case, e.g. RU)"),
    ("empty phone", "broken.json: $.services[0].phones[0]",
     f"phone {seed_id(seed_id('RU:e:line') + ':phone:1')} has no number"),
])
async def test_a_broken_json_file_changes_nothing(
        sessions: async_sessionmaker[AsyncSession], seed_folder: Path, tmp_path: Path,
        change: str, where: str, reason: str) -> None:
    assert (await load_seed(sessions, seed_folder)).ok
    before = await snapshot(sessions)
    # The broken organization beside a good one that would otherwise be updated.
    good = json.loads((seed_folder / "RU.json").read_text(encoding="utf-8"))
    good[0]["name"] = "Delta renamed"
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "RU.json").write_text(json.dumps(good), encoding="utf-8")
    report = await import_paths(sessions, [_break_json(folder, change), folder / "RU.json"])
    assert [(p.where, p.reason) for p in report.rejected] == [(where, reason)]
    assert report.created == report.updated == []
    assert await snapshot(sessions) == before


async def test_invalid_json_and_a_bad_csv_row_are_rejected_with_their_place(
        sessions: async_sessionmaker[AsyncSession], tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('[{"id": "x",}]', encoding="utf-8")
    report = await import_paths(sessions, [bad])
    assert [(p.where, p.reason) for p in report.rejected] == [
        ("bad.json", "is not JSON: Expecting property name enclosed in double quotes at line 1 "
                     "column 13")]
    package = tmp_path / "package"
    shutil.copytree(EXAMPLES / "csv", package)
    with (package / "phones.csv").open("a", encoding="utf-8") as phones:
        phones.write("not-a-uuid,,,,,,+48 1,x1,voice,\n")  # row 3
        phones.write("5f3a3b0e-0000-4000-8000-000000000001,only,three\n")  # row 4
    report = await import_paths(sessions, [package])
    assert {(p.where, p.reason) for p in report.rejected} == {
        ("phones.csv row 3", "extension 'x1' is not a number"),
        ("phones.csv row 3", "id: 'not-a-uuid' is not a 'uuid'"),
        ("phones.csv row 4", "3 values, but the header has 10 columns"),
    }
    assert await snapshot(sessions) == []


async def test_a_row_given_twice_differently_is_rejected(
        sessions: async_sessionmaker[AsyncSession], tmp_path: Path) -> None:
    data = json.loads((EXAMPLES / "organization_full.json").read_text(encoding="utf-8"))
    data["contacts"][0]["phones"][0]["number"] = "+44 1234 000000"
    path = tmp_path / "twice.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    report = await import_paths(sessions, [path])
    assert [p.reason for p in report.rejected] == [
        "phone 1554f2e2-a373-45db-a3fa-9fc48a61c15e is also at twice.json: $.contacts[0].phones[0] "
        "with number '+44 1234 000000', here '\"+44 1234 234567\"'"]


# --- idempotence, updates, confidential locations -----------------------------------------------

async def test_import_is_idempotent_and_updates_only_what_changed(
        sessions: async_sessionmaker[AsyncSession], seed_folder: Path) -> None:
    report = await load_seed(sessions, seed_folder)
    assert counts(report) == (4, 0, 0, 0) and report.services == 5
    assert counts(await load_seed(sessions, seed_folder)) == (0, 0, 4, 0)
    orgs = json.loads((seed_folder / "PL.json").read_text(encoding="utf-8"))
    orgs[1]["services"] = orgs[1]["services"][:1]  # Beta's defunct line is gone
    (seed_folder / "PL.json").write_text(json.dumps(orgs), encoding="utf-8")
    report = await load_seed(sessions, seed_folder)
    assert (report.updated, len(report.unchanged)) == (["Beta Centre"], 3)
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(DirectoryService)) == 4


async def test_a_service_alone_replaces_its_own_and_keeps_the_others(
        sessions: async_sessionmaker[AsyncSession], seed_folder: Path, tmp_path: Path) -> None:
    await load_seed(sessions, seed_folder)
    beta = json.loads((seed_folder / "PL.json").read_text(encoding="utf-8"))[1]
    line = beta["services"][0]
    line["name"] = "Beta line (renamed)"
    path = tmp_path / "service.json"
    path.write_text(json.dumps(line), encoding="utf-8")  # it names its organization_id
    report = await import_paths(sessions, [path])
    assert report.updated == ["Beta Centre"]
    async with sessions() as session:
        names = set((await session.execute(select(DirectoryService.name).where(
            DirectoryService.organization_id == beta["id"]))).scalars())
    assert names == {"Beta line (renamed)", "Beta old line"}


async def test_a_service_cannot_move_to_another_organization_unnoticed(
        sessions: async_sessionmaker[AsyncSession], seed_folder: Path, tmp_path: Path) -> None:
    await load_seed(sessions, seed_folder)
    line = json.loads((seed_folder / "RU.json").read_text(encoding="utf-8"))[0]["services"][0]
    other = organisation("RU", "e", "Epsilon", [dict(line, organization_id=seed_id("RU:e"))])
    path = tmp_path / "move.json"
    path.write_text(json.dumps([other]), encoding="utf-8")
    report = await import_paths(sessions, [path])
    assert [p.reason for p in report.rejected] == [
        f"is already in organization {seed_id('RU:d')}; import that organization without it "
        "first"]


async def test_a_confidential_location_keeps_no_address(
        sessions: async_sessionmaker[AsyncSession], seed_folder: Path, tmp_path: Path) -> None:
    report = await load_seed(sessions, seed_folder)
    assert [n for n in report.notes if "confidential" in n] == [
        "PL.json: [2]: organization 'Gamma Shelter' has a confidential location: 1 address(es) "
        "and their coordinates dropped"]
    await export_json(sessions, tmp_path / "out.json")
    text = (tmp_path / "out.json").read_text(encoding="utf-8")
    assert "Secret Street" not in text and "52.2" not in text
    async with sessions() as session:
        records = (await session.execute(select(DirectoryOrganization.record))).scalars()
        assert "Secret Street" not in json.dumps(list(records))


# --- export -------------------------------------------------------------------------------------

async def test_export_validates_and_reimports_without_loss(
        sessions: async_sessionmaker[AsyncSession], seed_folder: Path, tmp_path: Path) -> None:
    for path in (seed_folder, EXAMPLES / "organization_full.json"):
        report = await import_paths(sessions, sorted(path.glob("*.json")) if path.is_dir()
                                    else [path])
        assert report.ok, report.rejected
    first = tmp_path / "first.json"
    assert await export_json(sessions, first) == 5
    records = json.loads(first.read_text(encoding="utf-8"))
    for record in records:
        services = record.pop("services", [])
        assert list(validator("organization").iter_errors(record)) == []
        for s in services:
            assert list(validator("service").iter_errors(s)) == []
    before = await snapshot(sessions)

    assert counts(await import_paths(sessions, [first])) == (0, 0, 5, 0)
    second = tmp_path / "second.json"
    await export_json(sessions, second)
    assert second.read_bytes() == first.read_bytes()

    package = tmp_path / "package"
    written = await export_csv(sessions, package)
    assert written["organizations.csv"] == 5 and written["services.csv"] == 6
    assert (package / "phones.csv").read_text(encoding="utf-8").splitlines()[0] == (
        "id,location_id,service_id,organization_id,contact_id,service_at_location_id,number,"
        "extension,type,description")
    assert counts(await import_paths(sessions, [package])) == (0, 0, 5, 0)
    # Into an empty directory the data package gives back the very same records.
    async with sessions.begin() as session:
        await session.execute(DirectoryCoverage.__table__.delete())
        await session.execute(DirectoryService.__table__.delete())
        await session.execute(DirectoryOrganization.__table__.delete())
    assert counts(await import_paths(sessions, [package / "datapackage.json"])) == (5, 0, 0, 0)
    assert await snapshot(sessions) == before
    third = tmp_path / "third.json"
    await export_json(sessions, third)
    assert third.read_bytes() == first.read_bytes()


# --- what the bot reads -------------------------------------------------------------------------

async def test_serving_lists_the_best_matches_first(
        sessions: async_sessionmaker[AsyncSession], seed_folder: Path) -> None:
    await load_seed(sessions, seed_folder)
    store = DirectoryStore(sessions)
    found = await store.serving("pl", ["trafficking", "labour", "domestic_violence"])
    # Two kinds matched, then 24/7 first, then by name; the defunct line is not listed.
    assert [x.name for x in found] == ["Alpha line", "Beta line", "Gamma line"]
    alpha, _, gamma = found
    assert (alpha.organisation, alpha.country, alpha.regions, alpha.open_24_7) == (
        "Alpha Foundation", "PL", (), True)
    assert alpha.kinds == {"trafficking", "labour"}
    assert alpha.phones[0].number == "800 000 001" and alpha.phones[0].kind == "voice"
    assert alpha.phones[0].languages == ("en",)
    assert (alpha.time_zone, alpha.accepts, alpha.foreign_nationals, alpha.free) == (
        "Europe/Warsaw", ("whatsapp",), True, True)
    assert alpha.hours[0].days == ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
    assert alpha.languages == ("ru",)
    assert gamma.regions == ("PL-14",) and gamma.free is None and gamma.hours == ()
    assert [x.name for x in await store.serving("PL", ["labour"], limit=1)] == ["Alpha line"]
    assert await store.serving("PL", ["child"]) == []
    assert [x.name for x in await store.serving("RU", ["trafficking"])] == ["Delta line"]
    assert await store.serving("PL", []) == []

    beta = await store.get(seed_id("PL:b"))
    assert [x.name for x in beta] == ["Beta line"]
    assert await store.get(beta[0].service_id) == beta
    assert await store.get(str(uuid.uuid4())) == []
    assert not await store.is_empty()


async def test_the_official_example_has_no_country_so_the_bot_does_not_list_it(
        sessions: async_sessionmaker[AsyncSession]) -> None:
    await import_paths(sessions, [EXAMPLES / "organization_full.json"])
    [listing] = await DirectoryStore(sessions).get(EXAMPLE_ORG)
    assert (listing.country, listing.phones[0].number) == ("", "+44 1234 234567")


# --- the seed -----------------------------------------------------------------------------------

def test_seed_numbers_are_the_digits_of_every_phone(seed_folder: Path) -> None:
    assert seed_numbers(seed_folder) == {"800000001", "800000002", "800000009", "800000003",
                                         "88000000004"}


async def test_the_shipped_seed_imports(sessions: async_sessionmaker[AsyncSession]) -> None:
    """Whatever flows/data/directory holds must import with nothing rejected."""
    report = await load_seed(sessions, SHIPPED_SEED)
    assert report.ok, report.rejected[:10]
    assert counts(await load_seed(sessions, SHIPPED_SEED))[2] == len(report.created)
