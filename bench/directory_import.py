"""Directory import and export: 1,000 generated organisations (two services each, with phones,
hours, service areas and the `hotline` taxonomy's attributes, as the seed files have them).

1. The first import (everything created), as JSON and as a data package.
2. The same file again (everything unchanged).
3. Export to JSON and to a data package.

    .venv/bin/python bench/directory_import.py --organisations 1000 \
        [--postgres postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.scratch import scratch_databases
from storage.db import create_engine, sessionmaker
from storage.directory import export_csv, export_json, import_paths
from storage.hsds.hotline import TERM_IDS

COUNTRIES = ("PL", "RU", "KZ", "TR", "AE", "US")
KINDS = ("trafficking", "domestic_violence", "child", "labour", "migrant", "legal_aid")


def _id(what: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"hotline-bench:{what}"))


def _attribute(owner: str, code: str, value: str) -> dict[str, Any]:
    return {"id": _id(f"{owner}:{code}:{value}"), "taxonomy_term_id": TERM_IDS[code],
            "taxonomy_term": {"id": TERM_IDS[code], "code": code, "name": code},
            "link_id": owner, "value": value}


def organisation(n: int) -> dict[str, Any]:
    org = _id(f"org:{n}")
    country = COUNTRIES[n % len(COUNTRIES)]
    services = []
    for s in range(2):
        sid = _id(f"org:{n}:service:{s}")
        area = _id(f"org:{n}:service:{s}:area")
        services.append({
            "id": sid, "name": f"Line {n}.{s}", "status": "active",
            "description": "A generated line for the benchmark",
            "phones": [{"id": _id(f"{sid}:phone:{p}"), "number": f"8-800-{n:04d}-{s}{p}",
                        "type": "voice",
                        "languages": [{"id": _id(f"{sid}:phone:{p}:ru"), "name": "Russian",
                                       "code": "ru"}]} for p in range(2)],
            "schedules": [{"id": _id(f"{sid}:hours"), "freq": "WEEKLY", "byday": "MO,TU,WE,TH,FR",
                           "opens_at": "09:00", "closes_at": "18:00"}],
            "service_areas": [{"id": area, "name": country,
                               "attributes": [_attribute(area, "country", country)]}],
            "languages": [{"id": _id(f"{sid}:en"), "name": "English", "code": "en"}],
            "attributes": [_attribute(sid, "case_kind", KINDS[(n + s) % len(KINDS)]),
                           _attribute(sid, "case_kind", "general"),
                           _attribute(sid, "time_zone", "Europe/Warsaw"),
                           _attribute(sid, "free", "true"),
                           _attribute(sid, "source", "2026-11-23 https://example.org/")],
        })
    return {"id": org, "name": f"Organisation {n:04d}", "description": "Generated",
            "website": "https://example.org/", "services": services}


async def run(url: str, organisations: int, folder: Path) -> None:
    source = folder / "organisations.json"
    source.write_text(json.dumps([organisation(n) for n in range(organisations)]),
                      encoding="utf-8")
    engine = create_engine(url)
    sessions = sessionmaker(engine)
    try:
        for label in ("first import (JSON)", "same file again"):
            started = time.perf_counter()
            report = await import_paths(sessions, [source])
            took = time.perf_counter() - started
            assert report.ok, report.rejected[:3]
            print(f"  {label:22s}: {took:6.2f} s ({len(report.created)} created, "
                  f"{len(report.unchanged)} unchanged, {organisations / took:,.0f} org/s)")
        started = time.perf_counter()
        await export_json(sessions, folder / "out.json")
        print(f"  {'export JSON':22s}: {time.perf_counter() - started:6.2f} s")
        started = time.perf_counter()
        await export_csv(sessions, folder / "package")
        print(f"  {'export CSV':22s}: {time.perf_counter() - started:6.2f} s")
        started = time.perf_counter()
        report = await import_paths(sessions, [folder / "package"])
        print(f"  {'import data package':22s}: {time.perf_counter() - started:6.2f} s "
              f"({len(report.unchanged)} unchanged)")
    finally:
        await engine.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--organisations", type=int, default=1000)
    parser.add_argument("--postgres", default=os.environ.get("TEST_DATABASE_URL"))
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, {platform.platform()}\n")
    async for name, url in scratch_databases(args.postgres):
        print(f"{name}, {args.organisations} organisations, {2 * args.organisations} services:")
        with tempfile.TemporaryDirectory() as tmp:
            await run(url, args.organisations, Path(tmp))


if __name__ == "__main__":
    asyncio.run(main())
