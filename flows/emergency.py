"""Emergency numbers: the answer to the emergency keyword, shown before anything else.

The numbers come from data/emergency.json, where every country lists its sources.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from babel import Locale

from flows.engine import Context, Outcome
from flows.i18n import N_

DATA = Path(__file__).resolve().parent / "data" / "emergency.json"

SERVICES = {
    "general": N_("All emergencies"),
    "police": N_("Police"),
    "ambulance": N_("Ambulance"),
    "fire": N_("Fire service"),
    "gas": N_("Gas emergency"),
    "child": N_("Helpline for children"),
    "women": N_("Helpline for women facing violence"),
}


@dataclass(frozen=True)
class Number:
    service: str
    number: str


@dataclass(frozen=True)
class Directory:
    countries: dict[str, tuple[Number, ...]]
    any_mobile: tuple[Number, ...]


@lru_cache(maxsize=1)
def directory(path: Path = DATA) -> Directory:
    raw = json.loads(path.read_text(encoding="utf-8"))

    def numbers(entry: dict) -> tuple[Number, ...]:
        if not entry.get("sources"):
            raise ValueError("every emergency number needs a source")
        return tuple(Number(n["service"], n["number"]) for n in entry["numbers"])

    return Directory(
        countries={code: numbers(e) for code, e in raw["countries"].items()},
        any_mobile=numbers(raw["any_mobile"]),
    )


def country_name(code: str, locale: str) -> str:
    return str(Locale.parse(locale).territories.get(code, code))


def numbers_text(ctx: Context) -> str:
    t = ctx.t
    country = ctx.profile.country or ""
    found = directory().countries.get(country, ())
    if found:
        lines = [t(N_("If you are in danger now, call (in {country}):")).format(
            country=country_name(country, ctx.locale))]
    else:
        lines = [t(N_("If you are in danger now, call:"))]
    # A country without one number for everything also gets the numbers every mobile phone
    # routes to the emergency services.
    numbers = found if any(n.service == "general" for n in found) else (
        *found, *directory().any_mobile)
    services: dict[str, list[str]] = {}
    for n in numbers:  # one line per number, however many services answer it
        label = t(SERVICES.get(n.service, SERVICES["general"]))
        if label not in services.setdefault(n.number, []):
            services[n.number].append(label)
    lines += [f"{number} — {', '.join(labels)}" for number, labels in services.items()]
    if not found:
        lines.append(t(N_("These numbers work from most mobile phones. Tell us your country in "
                          "Settings to see its own numbers.")))
    return "\n".join(lines)


async def on_emergency(ctx: Context) -> Outcome:
    return Outcome(say=[numbers_text(ctx)])
