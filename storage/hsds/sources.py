"""Reading what an import is given (HSDS JSON in any of its forms, or a tabular data package)
into one scope per organization, and building each organization's record from its scope."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storage.hsds import hotline
from storage.hsds.graph import Problem, Tables, flatten, flatten_records, nest, reachable
from storage.hsds.schema import validator
from storage.hsds.tabular import read_package

_OURS = frozenset(hotline.TERM_IDS.values()) | {hotline.TAXONOMY_ID}
_SHARED = frozenset({"taxonomy_term", "taxonomy"})


@dataclass
class Scope:
    """One organization an import touches. `whole`: the source gives the organization with its
    services, which replaces what is stored under its id (services it no longer lists go).
    Otherwise its rows (some services, or the organization without them) replace theirs inside
    the stored record, and the rest of it stays."""

    organization_id: str
    whole: bool
    tables: Tables
    origin: str


@dataclass
class Source:
    scopes: list[Scope] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    tables: list[Tables] = field(default_factory=list)
    valid: set[tuple[str, str]] = field(default_factory=set)


@dataclass
class Built:
    record: dict[str, Any]
    inside: set[tuple[str, str]]
    problems: list[Problem]
    notes: list[str]


def is_package(path: Path) -> bool:
    return (path / "datapackage.json").is_file() if path.is_dir() else (
        path.name == "datapackage.json")


def _expanded(paths: Iterable[Path]) -> Iterator[Path]:
    """A folder that is not a data package stands for the JSON files in it (the seed)."""
    for path in paths:
        if path.is_dir() and not is_package(path):
            yield from sorted(path.glob("*.json"))
        else:
            yield path


def read_sources(paths: Iterable[Path]) -> Source:
    source = Source()
    items: list[tuple[str, str, dict[str, Any]]] = []
    for path in _expanded(paths):
        if is_package(path):
            _read_package(path, source)
        else:
            items.extend(_read_json(path, source))
    groups: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for origin, kind, obj in items:
        organization_id = _organization_of(kind, obj)
        if organization_id is None:
            source.problems.append(Problem(origin, (
                "the organization has no id" if kind == "organization" else
                "a service must name its organization (organization or organization_id)")))
            continue
        groups.setdefault(organization_id, []).append((origin, kind, obj))
    for organization_id, group in groups.items():
        tables = Tables(lenient_ids=_OURS)
        for origin, kind, obj in group:
            flatten(tables, kind, obj, origin)
        _prepare(tables, source)
        # An organization with its services replaces the stored one; without a `services` key
        # (a summary, as API lists give) it updates the organization and keeps its services.
        whole = any(k == "organization" and "services" in obj for _, k, obj in group)
        source.scopes.append(Scope(organization_id, whole, tables, group[0][0]))
    return source


def _read_package(path: Path, source: Source) -> None:
    tables = Tables(lenient_ids=_OURS)
    source.notes.extend(read_package(path, tables))
    _prepare(tables, source)
    for organization_id, row in tables.rows["organization"].items():
        source.scopes.append(Scope(organization_id, True, tables, row.origin))
    for service in tables.rows["service"].values():
        owner = service.values.get("organization_id")
        if isinstance(owner, str) and owner not in tables.rows["organization"] \
                and all(s.organization_id != owner for s in source.scopes):
            source.scopes.append(Scope(owner, False, tables, service.origin))


def _read_json(path: Path, source: Source) -> list[tuple[str, str, dict[str, Any]]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        source.problems.append(Problem(path.name, (
            f"is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")))
        return []
    except (OSError, UnicodeDecodeError) as exc:
        source.problems.append(Problem(path.name, f"cannot be read: {exc}"))
        return []
    if isinstance(data, dict) and "resources" in data:
        _read_package(path, source)
        return []
    found: list[tuple[str, str, dict[str, Any]]] = []
    prefix = f"{path.name}: "
    if isinstance(data, dict) and isinstance(data.get("contents"), list):
        listed = [(f"{prefix}contents[{i}]", item) for i, item in enumerate(data["contents"])]
    elif isinstance(data, list):
        listed = [(f"{prefix}[{i}]", item) for i, item in enumerate(data)]
    else:
        listed = [(f"{prefix}$", data)]
    for origin, item in listed:
        if not isinstance(item, dict):
            source.problems.append(Problem(origin, (
                "expected an HSDS organization or service object")))
            continue
        found.append((origin, _kind(item), item))
    return found


def _kind(obj: dict[str, Any]) -> str:
    """A service has a status (required) and names its organization; an organization has
    neither."""
    return "service" if {"status", "organization", "organization_id"} & set(obj) \
        else "organization"


def _organization_of(kind: str, obj: dict[str, Any]) -> str | None:
    if kind == "organization":
        found = obj.get("id")
    elif isinstance(obj.get("organization"), dict):
        found = obj["organization"].get("id")
    else:
        found = obj.get("organization_id")
    return found if isinstance(found, str) and found else None


def _prepare(tables: Tables, source: Source) -> None:
    """Our taxonomy made canonical, then every row checked against its official schema."""
    hotline.canonicalise(tables)
    for obj, rows in tables.rows.items():
        check = validator(obj)
        for row in rows.values():
            if obj in _SHARED:  # the same terms in every organization: checked once
                key = (obj, json.dumps(row.values, sort_keys=True))
                if key in source.valid:
                    continue
                source.valid.add(key)
            for error in check.iter_errors(row.values):
                path = ".".join(str(p) for p in error.absolute_path)
                source.problems.append(Problem(row.origin, (
                    f"{path}: {error.message}" if path else error.message)))
    source.problems.extend(tables.problems)
    tables.problems.clear()
    source.tables.append(tables)


def build(scope: Scope, stored: dict[str, Any] | None) -> Built:
    """The organization's record after this import: the source's rows, over the stored record
    when the source gives only some of its services."""
    tables = scope.tables
    if not scope.whole and stored is not None:
        given = {id_ for id_, row in tables.rows["service"].items()
                 if row.values.get("organization_id") == scope.organization_id}
        base = copy.deepcopy(stored)
        base["services"] = [s for s in base.get("services", []) if s["id"] not in given]
        tables = flatten_records([base], strict=False)
        tables.overlay(scope.tables)
    if tables.get("organization", scope.organization_id) is None:
        return Built({}, set(), [Problem(scope.origin, (
            f"organization {scope.organization_id} is neither in the file nor in the "
            "directory"))], [])
    index = tables.index()
    inside = reachable(tables, scope.organization_id, index)
    problems = hotline.check(tables, sorted(inside))
    record = nest(tables, scope.organization_id, index, inside)
    notes = []
    dropped = hotline.drop_addresses(record, hotline.confidential_locations(record))
    if dropped:
        notes.append(f"{scope.origin}: organization {record['name']!r} has a confidential "
                     f"location: {dropped} address(es) and their coordinates dropped")
    return Built(record, inside, problems, notes)


def skipped(source: Source, used: set[tuple[int, str, str]]) -> list[str]:
    """Rows that belong to no organization of the source (a taxonomy nobody uses, an attribute
    linked to nothing): reported, not imported. `used`: (id of tables, object, id) built."""
    notes = []
    for tables in source.tables:
        for obj, rows in tables.rows.items():
            for id_, row in rows.items():
                if (id(tables), obj, id_) not in used:
                    notes.append(f"{row.origin}: {obj} {id_} belongs to no organization; "
                                 "skipped")
    return notes
