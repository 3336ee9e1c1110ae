"""The tabular form of HSDS 3.0: a `datapackage.json` and one CSV per object, read into rows and
written from them with the official descriptor and column names."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from storage.hsds.graph import Problem, Tables
from storage.hsds.schema import (
    OBJECTS,
    columns,
    csv_files,
    descriptor,
    numeric_fields,
    tabular_required,
)


def package_folder(path: Path) -> Path:
    return path if path.is_dir() else path.parent


def read_package(path: Path, tables: Tables) -> list[str]:
    """Rows of the package at `path` (a folder or its datapackage.json) into `tables`; problems
    go to `tables.problems`. Returns notes on what was skipped."""
    folder = package_folder(path)
    manifest = folder / "datapackage.json"
    notes: list[str] = []
    try:
        described = json.loads(manifest.read_text(encoding="utf-8"))
        resources = described["resources"]
        files = {r["name"]: r["path"] for r in resources}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        tables.problems.append(Problem(str(manifest), f"not a data package descriptor: {exc}"))
        return notes
    for name, relative in files.items():
        if name not in OBJECTS:
            notes.append(f"{relative}: {name} is not an HSDS 3.0 object; skipped")
            continue
        file = (folder / relative).resolve()
        if folder.resolve() not in file.parents:
            tables.problems.append(Problem(str(relative), "is outside the package's folder"))
            continue
        if file.exists():
            _read_csv(file, name, tables)
    return notes


def _read_csv(file: Path, obj: str, tables: Tables) -> None:
    numeric = numeric_fields(obj)
    required = tabular_required().get(obj, ())
    sequence: list[str] = []
    try:
        with file.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                return
            for number, cells in enumerate(reader, start=2):
                if not any(cells):
                    continue
                where = f"{file.name} row {number}"
                if len(cells) != len(header):
                    tables.problems.append(Problem(where, (
                        f"{len(cells)} values, but the header has {len(header)} columns")))
                    continue
                values: dict[str, Any] = {}
                for column, cell in zip(header, cells, strict=True):
                    if cell == "":
                        continue
                    if column in numeric:
                        try:
                            values[column] = _number(cell)
                        except ValueError:
                            tables.problems.append(Problem(where, (
                                f"{column} {cell!r} is not a number")))
                            continue
                    else:
                        values[column] = cell
                if not values.get("id"):
                    tables.problems.append(Problem(where, "the row has no id"))
                    continue
                missing = [c for c in required if c not in values]
                if missing:
                    tables.problems.append(Problem(where, (
                        f"{', '.join(missing)} is required in {file.name}")))
                tables.add(obj, values, where)
                sequence.append(values["id"])
    except UnicodeDecodeError:
        tables.problems.append(Problem(file.name, "is not UTF-8 text"))
    except csv.Error as exc:
        tables.problems.append(Problem(file.name, f"is not CSV: {exc}"))
    tables.sequences[obj].append(sequence)


def _number(cell: str) -> int | float:
    try:
        return int(cell)
    except ValueError:
        return float(cell)


def write_package(tables: Tables, folder: Path) -> dict[str, int]:
    """Every object's CSV (a header alone when it has no rows) and the official descriptor;
    returns the rows written per file."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "datapackage.json").write_text(
        json.dumps(descriptor(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    counts: dict[str, int] = {}
    for obj, filename in csv_files().items():
        names = columns()[obj]
        with (folder / filename).open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(names)
            ids = tables.ordered(obj) if obj in tables.rows else []
            for id_ in ids:
                values = tables.rows[obj][id_].values
                writer.writerow([_cell(values.get(name)) for name in names])
            counts[filename] = len(ids)
    return counts


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        return json.dumps(value, ensure_ascii=False)
    return str(value)
