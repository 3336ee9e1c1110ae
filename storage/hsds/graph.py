"""The HSDS 3.0 object graph: nested JSON flattened into rows by object (what the CSV form holds),
and rows nested back into one organization's full record.

Both directions follow one table of relations, so every form (an organization or a service object,
a Page, a data package) goes through the same rows, and `nest(flatten(record)) == record` for every
record `nest` made: that is what lets an export re-import as "unchanged".

The canonical record `nest` builds (what the directory stores and exports):
- the organization with its own children and its `services`, each child list in the order the
  rows came in; children of every kind nested wherever their foreign keys point inside the record
  (a phone with both a service_id and a contact_id appears under both), as HSDS "full" objects do;
- a foreign key implied by nesting is left out; one that points outside the record (to a row that
  does not exist, as in the official examples) is kept, so nothing is lost;
- single objects a row points to are embedded in full (a service at location's `location`, a
  service's `program`, an attribute's `taxonomy_term` and that term's `taxonomy_detail`), keeping
  the key too; a service's `organization` is not repeated inside its own organization;
- empty strings, nulls and empty lists are left out; fields in the schema's order, then fields the
  schema does not know (kept as they came) in alphabetical order.
"""

from __future__ import annotations

import heapq
import itertools
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from storage.hsds.schema import fields

# parent object -> (key in the parent, child object, the child's foreign key to the parent)
CHILDREN: dict[str, tuple[tuple[str, str, str], ...]] = {
    "organization": (
        ("funding", "funding", "organization_id"), ("contacts", "contact", "organization_id"),
        ("phones", "phone", "organization_id"), ("locations", "location", "organization_id"),
        ("programs", "program", "organization_id"),
        ("organization_identifiers", "organization_identifier", "organization_id"),
        ("services", "service", "organization_id"),
    ),
    "service": (
        ("phones", "phone", "service_id"), ("schedules", "schedule", "service_id"),
        ("service_areas", "service_area", "service_id"),
        ("service_at_locations", "service_at_location", "service_id"),
        ("languages", "language", "service_id"), ("funding", "funding", "service_id"),
        ("cost_options", "cost_option", "service_id"),
        ("required_documents", "required_document", "service_id"),
        ("contacts", "contact", "service_id"),
    ),
    "service_at_location": (
        ("contacts", "contact", "service_at_location_id"),
        ("phones", "phone", "service_at_location_id"),
        ("schedules", "schedule", "service_at_location_id"),
    ),
    "location": (
        ("languages", "language", "location_id"), ("addresses", "address", "location_id"),
        ("contacts", "contact", "location_id"), ("accessibility", "accessibility", "location_id"),
        ("phones", "phone", "location_id"), ("schedules", "schedule", "location_id"),
    ),
    "phone": (("languages", "language", "phone_id"),),
    "contact": (("phones", "phone", "contact_id"),),
}
# owner -> (key in the owner, object pointed to, the owner's foreign key): embedded in full.
REFS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "service": (("program", "program", "program_id"),),
    "service_at_location": (("location", "location", "location_id"),),
    "attribute": (("taxonomy_term", "taxonomy_term", "taxonomy_term_id"),),
    "taxonomy_term": (("taxonomy_detail", "taxonomy", "taxonomy_id"),),
}
# Read on input only: a service object names its organization, which nests it on output.
UP_REFS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "service": (("organization", "organization", "organization_id"),),
}
NO_ATTRIBUTES = frozenset({"attribute", "taxonomy", "taxonomy_term", "metadata"})

# child object -> its foreign keys that nesting implies
_PARENT_KEYS: dict[str, set[str]] = defaultdict(set)
for _children in CHILDREN.values():
    for _key, _child, _fk in _children:
        _PARENT_KEYS[_child].add(_fk)


def has_attributes(obj: str) -> bool:
    return obj not in NO_ATTRIBUTES


def has_metadata(obj: str) -> bool:
    return obj != "metadata"


def nested_keys(obj: str) -> frozenset[str]:
    keys = {k for k, _, _ in CHILDREN.get(obj, ())} | {k for k, _, _ in REFS.get(obj, ())}
    keys |= {k for k, _, _ in UP_REFS.get(obj, ())}
    if has_attributes(obj):
        keys.add("attributes")
    if has_metadata(obj):
        keys.add("metadata")
    return frozenset(keys)


@dataclass(frozen=True)
class Problem:
    """Why a row cannot be imported: where it is (file and row, or a JSON path) and the reason."""

    where: str
    reason: str


@dataclass
class Row:
    obj: str
    values: dict[str, Any]
    origin: str


@dataclass
class Tables:
    """Rows by object and id, in the order they came, with every list they were seen in (so that
    `ordered` keeps each list's order even when a row appears in several)."""

    rows: dict[str, dict[str, Row]] = field(default_factory=lambda: defaultdict(dict))
    sequences: dict[str, list[list[str]]] = field(default_factory=lambda: defaultdict(list))
    problems: list[Problem] = field(default_factory=list)
    strict: bool = True  # a row given twice with different values is a problem, or first wins
    # Rows replaced by a canonical copy after reading (our own taxonomy's): copies may differ.
    lenient_ids: frozenset[str] = frozenset()
    _index: _Index | None = field(default=None, repr=False)
    _conflicts: set[tuple[str, str, str]] = field(default_factory=set, repr=False)

    def index(self) -> _Index:
        """Rows by the keys that nest them; built once, when every row is in."""
        if self._index is None:
            self._index = _Index(self)
        return self._index

    def get(self, obj: str, id_: str) -> Row | None:
        return self.rows[obj].get(id_)

    def add(self, obj: str, values: dict[str, Any], origin: str) -> None:
        id_ = values["id"]
        existing = self.rows[obj].get(id_)
        if existing is None:
            self.rows[obj][id_] = Row(obj, values, origin)
            return
        for key, value in values.items():
            if key not in existing.values:
                existing.values[key] = value
            elif existing.values[key] != value and self.strict \
                    and id_ not in self.lenient_ids and (obj, id_, key) not in self._conflicts:
                self._conflicts.add((obj, id_, key))  # once, however many copies follow
                self.problems.append(Problem(origin, (
                    f"{obj} {id_} is also at {existing.origin} with {key} "
                    f"{existing.values[key]!r}, here {value!r}")))

    def overlay(self, other: Tables) -> None:
        """Rows of `other` replace rows of the same id here (an import over what is stored)."""
        for obj, rows in other.rows.items():
            for id_, row in rows.items():
                self.rows[obj][id_] = Row(row.obj, dict(row.values), row.origin)
        for obj, sequences in other.sequences.items():
            self.sequences[obj].extend(sequences)

    def remove(self, obj: str, id_: str) -> None:
        self.rows[obj].pop(id_, None)

    def ordered(self, obj: str) -> list[str]:
        """Ids in an order that keeps every list they were seen in (a topological order of those
        lists, earliest first seen first): rows nested back keep their list's order."""
        rows = self.rows[obj]
        rank = {id_: i for i, id_ in enumerate(rows)}
        after: dict[str, set[str]] = defaultdict(set)
        waiting = dict.fromkeys(rows, 0)
        for sequence in self.sequences.get(obj, ()):
            present = [i for i in sequence if i in rows]
            for first, second in itertools.pairwise(present):
                if first != second and second not in after[first]:
                    after[first].add(second)
                    waiting[second] += 1
        ready = [(rank[i], i) for i, n in waiting.items() if n == 0]
        heapq.heapify(ready)
        out: list[str] = []
        done: set[str] = set()
        while len(out) < len(rows):
            if not ready:  # the lists disagree (a cycle): take the earliest left
                rest = min((i for i in rows if i not in done), key=rank.__getitem__)
                heapq.heappush(ready, (rank[rest], rest))
            _, id_ = heapq.heappop(ready)
            if id_ in done:
                continue
            done.add(id_)
            out.append(id_)
            for nxt in after.get(id_, ()):
                waiting[nxt] -= 1
                if waiting[nxt] == 0 and nxt not in done:
                    heapq.heappush(ready, (rank[nxt], nxt))
        return out


def _clean(value: Any) -> bool:
    return value is not None and value != "" and value != []


def flatten(tables: Tables, obj: str, data: Any, origin: str,
            parent: tuple[str, str, str] | None = None) -> str | None:
    """Add `data` (an HSDS `obj`, nested) and everything in it to `tables`; returns its id.
    `parent` is (parent object, parent id, foreign key) when it is nested in a list."""
    if not isinstance(data, dict):
        tables.problems.append(Problem(origin, f"a {obj} must be an object, not {data!r:.40}"))
        return None
    id_ = data.get("id")
    if not isinstance(id_, str) or not id_:
        tables.problems.append(Problem(origin, f"the {obj} has no id"))
        return None
    skip = nested_keys(obj)
    values = {k: v for k, v in data.items() if k not in skip and _clean(v)}
    if parent is not None:
        parent_obj, parent_id, fk = parent
        if values.get(fk, parent_id) != parent_id:
            tables.problems.append(Problem(origin, (
                f"{fk} is {values[fk]} but the {obj} is inside {parent_obj} {parent_id}")))
        values[fk] = parent_id
        if fk == "link_id":
            values.setdefault("link_entity", parent_obj)
        elif fk == "resource_id":
            values.setdefault("resource_type", parent_obj)
    for key, target, fk in REFS.get(obj, ()) + UP_REFS.get(obj, ()):
        if key in data and data[key] is not None:
            ref_id = flatten(tables, target, data[key], f"{origin}.{key}")
            if ref_id is not None:
                if values.get(fk, ref_id) != ref_id:
                    tables.problems.append(Problem(origin, (
                        f"{fk} is {values[fk]} but its {key} is {ref_id}")))
                values[fk] = ref_id
    tables.add(obj, values, origin)
    for key, child, fk in _lists(obj):
        items = data.get(key)
        if items is None:
            continue
        if not isinstance(items, list):
            tables.problems.append(Problem(f"{origin}.{key}", "must be an array"))
            continue
        sequence = []
        for i, item in enumerate(items):
            child_id = flatten(tables, child, item, f"{origin}.{key}[{i}]", (obj, id_, fk))
            if child_id is not None:
                sequence.append(child_id)
        tables.sequences[child].append(sequence)
    return id_


def _lists(obj: str) -> list[tuple[str, str, str]]:
    """(key, child object, the child's foreign key) of every list an `obj` may hold."""
    lists = list(CHILDREN.get(obj, ()))
    if has_attributes(obj):
        lists.append(("attributes", "attribute", "link_id"))
    if has_metadata(obj):
        lists.append(("metadata", "metadata", "resource_id"))
    return lists


class _Index:
    """Rows by the foreign keys that nest them, in `Tables.ordered` order."""

    def __init__(self, tables: Tables) -> None:
        self.tables = tables
        self.order = {obj: tables.ordered(obj) for obj in list(tables.rows)}
        self.by_fk: dict[tuple[str, str], dict[str, list[str]]] = defaultdict(
            lambda: defaultdict(list))
        for obj, ids in self.order.items():
            fks = set(_PARENT_KEYS.get(obj, ()))
            if obj == "attribute":
                fks.add("link_id")
            if obj == "metadata":
                fks.add("resource_id")
            for id_ in ids:
                values = tables.rows[obj][id_].values
                for fk in fks:
                    target = values.get(fk)
                    if isinstance(target, str):
                        self.by_fk[(obj, fk)][target].append(id_)

    def children(self, obj: str, id_: str) -> Iterator[tuple[str, str, list[str]]]:
        """(key, child object, child ids) of every list of `obj` that has rows."""
        for key, child, fk in _lists(obj):
            ids = self.by_fk[(child, fk)].get(id_)
            if ids:
                yield key, child, ids


def reachable(tables: Tables, organization_id: str, index: _Index | None = None
              ) -> set[tuple[str, str]]:
    """Every (object, id) the organization's record holds."""
    index = index or _Index(tables)
    seen: set[tuple[str, str]] = set()
    todo = [("organization", organization_id)]
    while todo:
        node = todo.pop()
        if node in seen or tables.get(*node) is None:
            continue
        seen.add(node)
        obj, id_ = node
        for _, child, ids in index.children(obj, id_):
            todo.extend((child, i) for i in ids)
        row = tables.rows[obj][id_]
        for _, target, fk in REFS.get(obj, ()):
            ref = row.values.get(fk)
            if isinstance(ref, str):
                todo.append((target, ref))
    return seen


def nest(tables: Tables, organization_id: str, index: _Index | None = None,
         inside: set[tuple[str, str]] | None = None) -> dict[str, Any]:
    """The organization's full record (see the module docstring); `inside`: what `reachable`
    found, when the caller has it already."""
    index = index or _Index(tables)
    if inside is None:
        inside = reachable(tables, organization_id, index)
    ids_inside = {id_ for _, id_ in inside}

    def build(obj: str, id_: str, via: str | None) -> dict[str, Any]:
        row = tables.rows[obj][id_]
        implied = {fk for fk in _PARENT_KEYS.get(obj, ())
                   if any((parent, row.values.get(fk)) in inside
                          for parent, fks in _parents_by_fk(obj).get(fk, {}).items())}
        if obj == "attribute" and row.values.get("link_id") in ids_inside:
            implied.add("link_id")
        if obj == "metadata" and row.values.get("resource_id") in ids_inside:
            implied.add("resource_id")
        if via is not None:
            implied.add(via)
        nested: dict[str, Any] = {}
        for key, child, child_ids in index.children(obj, id_):
            fk = _fk_of(obj, key)
            nested[key] = [build(child, i, fk) for i in child_ids]
        for key, target, fk in REFS.get(obj, ()):
            ref = row.values.get(fk)
            if isinstance(ref, str) and tables.get(target, ref) is not None:
                nested[key] = build(target, ref, None)
        out: dict[str, Any] = {}
        known = fields(obj)
        for name in known:
            if name in nested:
                out[name] = nested.pop(name)
            elif name in row.values and name not in implied:
                out[name] = row.values[name]
        out.update(nested)  # lists the schema does not name (an organization's services)
        for name in sorted(set(row.values) - set(known) - implied):
            out[name] = row.values[name]
        return out

    return build("organization", organization_id, None)


def _fk_of(obj: str, key: str) -> str:
    if key == "attributes":
        return "link_id"
    if key == "metadata":
        return "resource_id"
    return next(fk for k, _, fk in CHILDREN[obj] if k == key)


def _parents_by_fk(child: str) -> dict[str, dict[str, str]]:
    """fk -> {parent object: key}: which parent a child's foreign key names."""
    cached = _PARENTS_CACHE.get(child)
    if cached is None:
        cached = defaultdict(dict)
        for parent, children in CHILDREN.items():
            for key, c, fk in children:
                if c == child:
                    cached[fk][parent] = key
        _PARENTS_CACHE[child] = cached
    return cached


_PARENTS_CACHE: dict[str, dict[str, dict[str, str]]] = {}


def flatten_records(records: Iterable[dict[str, Any]], *, strict: bool = True) -> Tables:
    """Rows of stored records (their origin: the organization's id and path)."""
    tables = Tables(strict=strict)
    for record in records:
        flatten(tables, "organization", record, f"organization {record.get('id')}")
    return tables
