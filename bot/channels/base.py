"""What every sending channel returns, so the sender can treat them alike."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from storage.outbox import Claimed


@dataclass(frozen=True)
class Sent:
    provider_id: str | None = None


@dataclass(frozen=True)
class Retry:
    """A transient failure: try again later. `pause` seconds on `scope` when the provider said
    to wait (429 retry_after)."""

    reason: str
    pause: float | None = None
    scope: str | None = None
    parts_sent: int = 0  # of a long reply, accepted before the failure: the retry sends the rest


@dataclass(frozen=True)
class Failed:
    """A permanent failure: do not retry. `stop_contact` when the person blocked us or opted
    out at the provider."""

    reason: str
    stop_contact: bool = False


Result = Sent | Retry | Failed


class ChannelClient(Protocol):
    channel: str

    def scopes(self, item: Claimed) -> list[tuple[str, float]]:
        """The rate-limit scopes one send uses, each with its interval in seconds."""

    def cost(self, item: Claimed) -> float:
        """How many units of the scopes' budget one send uses (SMS: segments)."""

    async def send(self, item: Claimed) -> Result: ...

    async def close(self) -> None: ...
