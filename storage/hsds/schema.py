"""The official HSDS 3.0 JSON Schemas (copied into storage/hsds_schema/, see its README) and what
the rest of the package reads from them: each object's validator, its fields in order, their types,
and the tabular data package descriptor."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SCHEMAS = Path(__file__).resolve().parent.parent / "hsds_schema"

# Every object of HSDS 3.0, by the name its schema, its `link_entity` and its CSV resource use.
OBJECTS = (
    "organization", "service", "location", "service_at_location", "address", "phone",
    "schedule", "service_area", "language", "funding", "cost_option", "program",
    "required_document", "contact", "accessibility", "organization_identifier", "attribute",
    "taxonomy_term", "taxonomy", "metadata", "meta_table_description",
)


@cache
def schema(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SCHEMAS / f"{name}.json").read_text(encoding="utf-8"))
    return loaded


@cache
def _registry() -> Registry:
    # The schemas name each other by file name ("phone.json") and carry no $id or $schema.
    resources = [(f"{name}.json", Resource.from_contents(schema(name), DRAFT202012))
                 for name in OBJECTS]
    return Registry().with_resources(resources)


@cache
def validator(name: str) -> Draft202012Validator:
    """Checks formats too (uuid, email), which is what makes a non-UUID id an error."""
    return Draft202012Validator(schema(name), registry=_registry(),
                                format_checker=FormatChecker())


@cache
def fields(name: str) -> tuple[str, ...]:
    """The object's properties in the schema's order (the order of an exported record)."""
    return tuple(schema(name)["properties"])


@cache
def numeric_fields(name: str) -> frozenset[str]:
    return frozenset(k for k, v in schema(name)["properties"].items() if v.get("type") == "number")


@cache
def descriptor() -> dict[str, Any]:
    """The official `datapackage.json` of the tabular form."""
    loaded: dict[str, Any] = json.loads(
        (SCHEMAS / "datapackage.json").read_text(encoding="utf-8"))
    return loaded


@cache
def columns() -> dict[str, tuple[str, ...]]:
    """Each object's CSV columns, as the descriptor names them."""
    return {resource["name"]: tuple(f["name"] for f in resource["schema"]["fields"])
            for resource in descriptor()["resources"]}


@cache
def csv_files() -> dict[str, str]:
    """Each object's CSV file name (organization: organizations.csv)."""
    return {resource["name"]: resource["path"] for resource in descriptor()["resources"]}


@cache
def tabular_required() -> dict[str, tuple[str, ...]]:
    """Columns the tabular form requires beyond the JSON schema (service.organization_id...)."""
    return {resource["name"]: tuple(
        f["name"] for f in resource["schema"]["fields"]
        if f.get("constraints", {}).get("required") and f["name"] != "id"
        and f["name"] not in schema(resource["name"]).get("required", ()))
        for resource in descriptor()["resources"]}
