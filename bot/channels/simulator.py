"""The simulator: a channel like the others, whose replies come back in the same exchange.

Replies still go through the outbox: the engine commits them, then this channel delivers every
queued reply for the person (which also delivers any left over by a crash) and marks it sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from bot.channels.render import RENDERERS, Rendered
from flows.engine import Engine, Inbound
from storage.outbox import Outbox
from storage.turns import Turns

CHANNEL = "simulator"
STYLES = tuple(RENDERERS)


@dataclass(frozen=True)
class SimulatorMessage:
    user: str
    style: str  # "sms" | "telegram": how the replies are rendered
    text: str | None = None
    choice: str | None = None
    language_code: str | None = None
    message_id: str | None = None


class Simulator:
    def __init__(self, engine: Engine, turns: Turns, outbox: Outbox) -> None:
        self._engine = engine
        self._turns = turns
        self._outbox = outbox

    async def exchange(self, message: SimulatorMessage) -> list[Rendered]:
        # "/start <payload>" is what a Telegram deep link sends: the simulator reads it alike.
        command, _, payload = (message.text or "").strip().partition(" ")
        deep_link = command == "/start"
        await self._engine.handle(
            Inbound(
                channel=CHANNEL,
                address=message.user,
                text=command if deep_link else message.text,
                choice=message.choice,
                message_id=message.message_id,
                locale_hint=message.language_code,
                start_payload=payload.strip() or None if deep_link else None,
            )
        )
        deliveries = await self._outbox.deliver_to_recipient(
            CHANNEL, self._turns.address_hash(CHANNEL, message.user), datetime.now(UTC)
        )
        render = RENDERERS[message.style]
        return [render(d.reply) for d in deliveries]
