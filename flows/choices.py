"""Matching what a person sent to the choices a step offered."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher

from flows.text import as_number, fold

# How alike a typed word must be to a label to count as a typing error of it.
_TYPO_RATIO = 0.8


@dataclass(frozen=True)
class Option:
    id: str
    label: str
    synonyms: tuple[str, ...] = ()

    def keys(self) -> list[str]:
        return [k for k in (fold(self.label), *map(fold, self.synonyms)) if k]


def match(options: Sequence[Option], text: str | None, choice: str | None) -> str | None:
    """By button id, by number, by label or synonym, then by a label with a typing error."""
    if choice is not None:
        return choice if any(o.id == choice for o in options) else None
    if not text or not options:
        return None
    number = as_number(text)
    if number is not None:
        return options[number - 1].id if 1 <= number <= len(options) else None
    key = fold(text)
    if not key:
        return None
    exact = [o.id for o in options if key in o.keys()]
    if len(exact) == 1:
        return exact[0]
    if len(key) < 4:  # too short to guess from
        return None
    scored = sorted(
        ((max(SequenceMatcher(None, key, k).ratio() for k in o.keys()), o.id)
         for o in options if o.keys()),
        reverse=True,
    )
    if scored and scored[0][0] >= _TYPO_RATIO and (len(scored) == 1 or scored[1][0] < scored[0][0]):
        return scored[0][1]
    return None
