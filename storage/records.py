"""Plain records the storage layer hands out: no ORM objects leave `storage`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass
class Profile:
    """What we keep about a contact that flows may read and change."""

    locale: str | None = None
    country: str | None = None
    status: str = "active"  # "active" | "stopped"
    safe_to_text: bool | None = None

    def changes_from(self, before: Profile) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if getattr(before, k) != v}


@dataclass
class State:
    """Where the conversation stands: plain data, so any process can continue it."""

    flow: str | None = None
    step: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    version: int = 0
    updated_at: datetime | None = None


@dataclass(frozen=True)
class OutgoingReply:
    """A reply as the engine produced it, before any channel renders it."""

    text: str
    options: tuple[tuple[str, str], ...] = ()  # (id, label)
    rtl: bool = False
    short: str | None = None  # the same reply with long content in its short version (SMS)
    # The choices offered with `short`, when they differ (e.g. "Full text" on SMS only).
    short_options: tuple[tuple[str, str], ...] | None = None

    def to_json(self) -> dict[str, Any]:
        data = {"text": self.text, "options": [list(o) for o in self.options], "rtl": self.rtl}
        if self.short is not None:
            data["short"] = self.short
        if self.short_options is not None:
            data["short_options"] = [list(o) for o in self.short_options]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OutgoingReply:
        return cls(
            text=data["text"],
            options=tuple((str(i), str(label)) for i, label in data.get("options", ())),
            rtl=bool(data.get("rtl", False)),
            short=data.get("short"),
            short_options=None if data.get("short_options") is None else tuple(
                (str(i), str(label)) for i, label in data["short_options"]),
        )
