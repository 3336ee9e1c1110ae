"""The `hotline` taxonomy: what HSDS 3.0 has no field for (a service area's country, the kinds of
case a line takes, a confidential location...), carried as `attribute`s, as
flows/data/directory/README.md defines it; the rules an import checks on top of the official
schema; and the profile of each service that the directory's queries read."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Iterator
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from storage.hsds.graph import Problem, Tables

TAXONOMY_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "hotline-taxonomy"))
TAXONOMY = {
    "id": TAXONOMY_ID, "name": "hotline",
    "description": "Facts a hotline directory needs that HSDS 3.0 has no field for",
    "uri": "https://github.com/hotline-bot/hotline/blob/main/flows/data/directory/README.md",
    "version": "1",
}
CASE_KINDS = ("trafficking", "domestic_violence", "child", "labour", "migrant", "legal_aid",
              "consular", "general")
CHANNELS = ("sms", "whatsapp", "telegram", "viber", "chat", "email")
BOOLEANS = {"true": True, "false": False}
# code -> (objects it may be attached to, what its value is)
TERMS: dict[str, tuple[tuple[str, ...], str]] = {
    "country": (("service_area",), "ISO 3166-1 alpha-2 code of the country a service area is"),
    "region": (("service_area",), "ISO 3166-2 code of the only region a service area covers"),
    "case_kind": (("service",), "a kind of case the service takes: " + ", ".join(CASE_KINDS)),
    "open_24_7": (("service",), "true when the line answers at all hours every day"),
    "time_zone": (("service",), "the IANA time zone of the service's schedules"),
    "accepts": (("service",), "a channel besides voice calls: " + ", ".join(CHANNELS)),
    "foreign_nationals": (("service",), "true or false: whether it serves foreign nationals"),
    "free": (("service",), "true or false: whether calls are free of charge"),
    "confidential_location": (("organization", "service"),
                              "true: the physical address must never be stored or shown"),
    "source": (("organization", "service"), "'<YYYY-MM-DD> <url>': a page read on that date"),
}
TERM_IDS = {code: str(uuid.uuid5(uuid.NAMESPACE_URL, f"hotline-taxonomy:{code}"))
            for code in TERMS}
CODES = {term_id: code for code, term_id in TERM_IDS.items()}

# ISO 3166-1 alpha-2, the officially assigned codes.
_ALPHA_2 = """
AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS
BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE
EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM
HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC
LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA
NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW
SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO
TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW
"""
COUNTRIES = frozenset(_ALPHA_2.split())
_REGION = re.compile(r"^([A-Z]{2})-[A-Z0-9]{1,3}$")
_SOURCE = re.compile(r"^\d{4}-\d{2}-\d{2} \S+$")
_TIME = re.compile(r"^(\d{2}):(\d{2})")
DAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
# RFC 6350 phone types, and what people write for them.
PHONE_TYPES = {"sms": "text", "phone": "voice", "telephone": "voice", "landline": "voice",
               "tel": "voice", "mobile": "cell", "tty": "textphone"}


def term(code: str) -> dict[str, Any]:
    return {"id": TERM_IDS[code], "code": code, "name": code, "description": TERMS[code][1],
            "taxonomy": "hotline", "taxonomy_id": TAXONOMY_ID}


def canonicalise(tables: Tables) -> None:
    """Our terms and taxonomy exactly as defined here (a file may carry an older or partial
    copy); phone types in RFC 6350's words; a number without the quotes or spaces around it."""
    used = {row.values.get("taxonomy_term_id") for row in tables.rows["attribute"].values()}
    for code, term_id in TERM_IDS.items():
        if term_id in used:
            row = tables.get("taxonomy_term", term_id)
            origin = row.origin if row else "hotline taxonomy"
            tables.rows["taxonomy_term"].pop(term_id, None)
            tables.add("taxonomy_term", term(code), origin)
    if any(v in CODES for v in used):
        tables.rows["taxonomy"].pop(TAXONOMY_ID, None)
        tables.add("taxonomy", dict(TAXONOMY), "hotline taxonomy")
    for row in tables.rows["phone"].values():
        number = row.values.get("number")
        if isinstance(number, str):
            row.values["number"] = number.strip().strip("\"'").strip()
        kind = row.values.get("type")
        if isinstance(kind, str):
            kind = kind.strip().lower()
            row.values["type"] = PHONE_TYPES.get(kind, kind)


def check(tables: Tables, inside: Iterable[tuple[str, str]]) -> list[Problem]:
    """Our rules for the rows of one record: attributes of the hotline taxonomy where the
    README puts them and with values it allows; phones with a number."""
    problems: list[Problem] = []
    owners = {id_: obj for obj, id_ in inside}
    for obj, id_ in inside:
        row = tables.rows[obj][id_]
        if obj == "phone":
            number = row.values.get("number")
            if not isinstance(number, str) or not any(c.isdigit() for c in number):
                problems.append(Problem(row.origin, f"phone {id_} has no number"))
        if obj != "attribute" or row.values.get("taxonomy_term_id") not in CODES:
            continue
        code = CODES[row.values["taxonomy_term_id"]]
        on, _ = TERMS[code]
        owner = owners.get(row.values.get("link_id", ""))
        if owner not in on:
            problems.append(Problem(row.origin, (
                f"a {code} attribute belongs on a {' or '.join(on)}, not on "
                f"{owner or 'nothing in this record'}")))
            continue
        reason = _bad_value(code, row.values.get("value"))
        if reason:
            problems.append(Problem(row.origin, f"{code} {reason}"))
    for obj, id_ in inside:
        if obj == "service_area":
            reason = _bad_area(_attributes_of(tables, inside, id_))
            if reason:
                problems.append(Problem(tables.rows[obj][id_].origin, reason))
    return problems


def _bad_value(code: str, value: Any) -> str | None:
    if not isinstance(value, str):
        return "needs a value"
    if code == "country" and value not in COUNTRIES:
        return f"{value!r} is not an ISO 3166-1 alpha-2 code (upper case, e.g. RU)"
    if code == "region" and not _REGION.match(value):
        return f"{value!r} is not an ISO 3166-2 code (e.g. RU-MOW)"
    if code == "case_kind" and value not in CASE_KINDS:
        return f"{value!r} is not one of {', '.join(CASE_KINDS)}"
    if code == "accepts" and value not in CHANNELS:
        return f"{value!r} is not one of {', '.join(CHANNELS)}"
    if code in ("open_24_7", "foreign_nationals", "free", "confidential_location") \
            and value not in BOOLEANS:
        return f"{value!r} is neither true nor false"
    if code == "time_zone":
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            return f"{value!r} is not an IANA time zone (e.g. Europe/Warsaw)"
    if code == "source" and not _SOURCE.match(value):
        return f"{value!r} is not '<YYYY-MM-DD> <url>'"
    return None


def _attributes_of(tables: Tables, inside: Iterable[tuple[str, str]], id_: str
                   ) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for obj, attr_id in inside:
        if obj == "attribute":
            values = tables.rows[obj][attr_id].values
            if values.get("link_id") == id_ and values.get("taxonomy_term_id") in CODES:
                found.setdefault(CODES[values["taxonomy_term_id"]], []).append(
                    str(values.get("value", "")))
    return found


def _bad_area(attributes: dict[str, list[str]]) -> str | None:
    countries = attributes.get("country", [])
    if len(countries) > 1:
        return "a service area names one country (give each country its own service area)"
    for region in attributes.get("region", []):
        match = _REGION.match(region or "")
        if match and countries and match.group(1) != countries[0]:
            return f"region {region} is not in country {countries[0]}"
    return None


def confidential_locations(record: dict[str, Any]) -> set[str]:
    """Ids of the locations whose addresses must not be kept: all of an organization marked
    confidential, and those of its services marked so."""
    def confidential(obj: dict[str, Any]) -> bool:
        return "true" in _values(obj, "confidential_location")

    found: set[str] = set()
    whole = confidential(record)
    if whole:
        found |= {loc["id"] for loc in record.get("locations", [])}
    for service in record.get("services", []):
        if whole or confidential(service):
            found |= {sal["location"]["id"] for sal in service.get("service_at_locations", [])
                      if "location" in sal}
            found |= {sal["location_id"] for sal in service.get("service_at_locations", [])
                      if "location_id" in sal}
    return found


def drop_addresses(record: dict[str, Any], locations: set[str]) -> int:
    """Remove the addresses and coordinates of `locations` wherever the record holds them;
    returns how many addresses were dropped (each counted once)."""
    dropped: set[str] = set()
    for obj in _walk(record):
        if obj.get("id") in locations and "location_type" in obj:
            dropped |= {a.get("id") for a in obj.pop("addresses", [])}
            obj.pop("latitude", None)
            obj.pop("longitude", None)
    return len(dropped)


def _walk(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from _walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)


def _values(obj: dict[str, Any], code: str) -> list[str]:
    term_id = TERM_IDS[code]
    return [a.get("value") for a in obj.get("attributes", [])
            if a.get("taxonomy_term_id") == term_id and isinstance(a.get("value"), str)]


def _boolean(obj: dict[str, Any], code: str) -> bool | None:
    values = _values(obj, code)
    return BOOLEANS[values[0]] if values else None


def profiles(record: dict[str, Any]) -> list[dict[str, Any]]:
    """What the directory's queries read of each service of a record (JSON-ready)."""
    out = []
    for service in record.get("services", []):
        areas: dict[str, list[str]] = {}
        whole_country: set[str] = set()
        for area in service.get("service_areas", []):
            countries = _values(area, "country")
            regions = _values(area, "region")
            country = countries[0] if countries else (regions[0][:2] if regions else None)
            if country is None:
                continue
            areas.setdefault(country, [])
            if not regions:
                whole_country.add(country)
            areas[country].extend(r for r in regions if r not in areas[country])
        for country in whole_country:
            areas[country] = []  # the whole country, whatever regions are also named
        hours = [h for h in (_hours(s) for s in service.get("schedules", [])) if h]
        open_24_7 = _boolean(service, "open_24_7")
        if open_24_7 is None:
            open_24_7 = any(h["days"] == list(DAYS) and h["opens"] == "00:00"
                            and h["closes"] in ("23:59", "24:00") for h in hours)
        phones = [p for p in (_line(p) for p in service.get("phones") or record.get("phones", []))
                  if p]
        accepts = _values(service, "accepts")
        if any(p["kind"] == "text" for p in phones) and "sms" not in accepts:
            accepts.append("sms")
        out.append({
            "id": service["id"],
            "name": service.get("name", ""),
            "active": service.get("status") == "active",
            "areas": areas,
            "kinds": sorted(set(_values(service, "case_kind")), key=CASE_KINDS.index),
            "open_24_7": open_24_7,
            "listing": {
                "organisation": record.get("name", ""), "name": service.get("name", ""),
                "description": service.get("description"),
                "url": service.get("url") or record.get("website"),
                "phones": phones, "hours": hours,
                "time_zone": next(iter(_values(service, "time_zone")), None),
                "accepts": sorted(set(accepts), key=CHANNELS.index),
                "foreign_nationals": _boolean(service, "foreign_nationals"),
                "free": _boolean(service, "free"),
                "languages": _codes(service.get("languages", [])),
            },
        })
    return out


def _codes(languages: list[dict[str, Any]]) -> list[str]:
    codes: list[str] = []
    for language in languages:
        code = str(language.get("code") or "").lower()
        if len(code) == 2 and code.isalpha() and code not in codes:
            codes.append(code)
    return codes


def _line(phone: dict[str, Any]) -> dict[str, Any] | None:
    kind = phone.get("type", "voice")
    if kind not in ("voice", "cell", "text"):
        return None  # fax, pager, video, textphone: not a line a person in danger calls
    return {"number": phone["number"], "kind": "text" if kind == "text" else "voice",
            "description": phone.get("description"),
            "languages": _codes(phone.get("languages", []))}


def _hours(schedule: dict[str, Any]) -> dict[str, Any] | None:
    """A weekly opening of the regular hours; exceptions (a validity window) and schedules we
    cannot read are left to the record."""
    if schedule.get("freq", "WEEKLY") != "WEEKLY" or "valid_from" in schedule \
            or "valid_to" in schedule:
        return None
    opens, closes = (_TIME.match(str(schedule.get(k, ""))) for k in ("opens_at", "closes_at"))
    if not opens or not closes:
        return None
    days = [d.strip() for d in str(schedule.get("byday", "")).split(",") if d.strip() in DAYS]
    return {"days": sorted(set(days), key=DAYS.index), "opens": opens.group(0)[:5],
            "closes": closes.group(0)[:5], "note": schedule.get("description")}
