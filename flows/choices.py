"""Matching what a person sent to the choices a step offered."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher

from flows.text import fold, key_number

# How alike a typed word must be to a label to count as a typing error of it.
_TYPO_RATIO = 0.8


@dataclass(frozen=True)
class Option:
    id: str
    label: str
    synonyms: tuple[str, ...] = ()
    # Offered only where the short version of long content went out (SMS): "Full text".
    sms_only: bool = False

    def keys(self) -> list[str]:
        return [k for k in (fold(self.label), *map(fold, self.synonyms)) if k]


def match(options: Sequence[Option], text: str | None, choice: str | None) -> str | None:
    """By button id, by number, by label or synonym, then by a label with a typing error."""
    if choice is not None:
        return choice if any(o.id == choice for o in options) else None
    if not text or not options:
        return None
    key = fold(text)
    number = key_number(key)
    if number is not None:
        return options[number - 1].id if 1 <= number <= len(options) else None
    if not key:
        return None
    keyed = [(o.id, o.keys()) for o in options]
    exact = [option_id for option_id, keys in keyed if key in keys]
    if len(exact) == 1:
        return exact[0]
    if len(key) < 4:  # too short to guess from
        return None
    scored = sorted(((_typo_score(key, keys), option_id) for option_id, keys in keyed if keys),
                    reverse=True)
    if scored and scored[0][0] >= _TYPO_RATIO and (len(scored) == 1 or scored[1][0] < scored[0][0]):
        return scored[0][1]
    return None


def _typo_score(key: str, keys: list[str]) -> float:
    """The best ratio of `key` to one of `keys`, where a key that cannot reach _TYPO_RATIO
    counts as 0: only whether, and for which option, the threshold is reached matters."""
    best = 0.0
    for k in keys:
        matcher = SequenceMatcher(None, key, k)
        # ratio() costs up to the product of the lengths. Its cheap upper bounds rule most
        # pairs out first, among them every long message: real_quick_ratio() is below the
        # threshold as soon as one side is over 1.5 times as long as the other.
        if matcher.real_quick_ratio() >= _TYPO_RATIO and matcher.quick_ratio() >= _TYPO_RATIO:
            best = max(best, matcher.ratio())
    return best
