"""Everything a running process needs, built from the settings and closed in one place."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from bot.channels.base import ChannelClient
from bot.metrics import Metrics
from bot.sender import SenderLoop
from bot.settings import Settings
from flows.engine import Engine, FlowSettings
from flows.standard import standard_registry
from storage.clock import DatabaseClock
from storage.crypto import Vault
from storage.db import create_engine
from storage.directory_snapshot import DirectorySnapshot
from storage.outbox import PRIORITY_REPLY, Outbox, Sender
from storage.records import OutgoingReply
from storage.turns import Turns

if TYPE_CHECKING:
    from aiogram import Bot, Dispatcher


@dataclass
class Services:
    settings: Settings
    db: AsyncEngine
    vault: Vault
    turns: Turns
    outbox: Outbox
    engine: Engine
    sender: Sender
    clients: dict[str, ChannelClient]
    telegram_bot: Bot | None = None
    telegram_dispatcher: Dispatcher | None = None
    metrics: Metrics = field(default_factory=Metrics)
    clock: DatabaseClock | None = None

    @classmethod
    def build(cls, settings: Settings) -> Services:
        db = create_engine(settings.database_url)
        vault = Vault(settings.secret_key)
        metrics = Metrics()
        clock = DatabaseClock(db)
        turns = Turns(db, vault)
        directory = DirectorySnapshot(async_sessionmaker(db, expire_on_commit=False))
        engine = Engine(
            turns,
            standard_registry(),
            settings=FlowSettings(
                organisation=settings.organisation, human_contact=settings.human_contact
            ),
            idle_after=timedelta(minutes=settings.idle_minutes),
            clock=clock.now,
            observer=metrics,
            directory=directory,
        )
        sender = Sender(db, vault)
        clients: dict[str, ChannelClient] = {}
        bot = dispatcher = None
        if settings.telegram_bot_token:
            # aiogram takes seconds to import (pydantic models): only when Telegram is used.
            from bot.channels.telegram import TelegramClient, make_bot, telegram_dispatcher

            bot = make_bot(settings.telegram_bot_token, settings.telegram_api_base)
            clients["telegram"] = TelegramClient(
                bot, per_second=settings.telegram_per_second,
                per_chat_per_second=settings.telegram_per_chat_per_second,
            )
            outbox = Outbox(db, vault)

            async def group_reply(chat: str, reply: OutgoingReply) -> object:
                return await outbox.enqueue("telegram", chat, [reply], clock.now(),
                                            priority=PRIORITY_REPLY, erase_after_send=True)

            dispatcher = telegram_dispatcher(engine, sender, turns.address_hash, group_reply)
        if settings.twilio_account_sid and settings.twilio_auth_token:
            from bot.channels.sms import STATUS_PATH, TwilioClient

            clients["sms"] = TwilioClient(
                settings.twilio_account_sid, settings.twilio_auth_token,
                sender=settings.twilio_from,
                messaging_service_sid=settings.twilio_messaging_service_sid,
                status_callback=f"{settings.public_base_url}{STATUS_PATH}",
                api_base=settings.twilio_api_base,
                segments_per_second=settings.twilio_segments_per_second,
            )
        return cls(settings, db, vault, turns, Outbox(db, vault), engine, sender, clients,
                   bot, dispatcher, metrics, clock)

    def sender_loop(self) -> SenderLoop:
        """The sender as `hotline run` and `hotline worker` run it."""
        return SenderLoop(self.sender, self.clients,
                          lease=timedelta(seconds=self.settings.sender_lease_seconds),
                          clock=self.clock.now if self.clock else _utcnow, metrics=self.metrics)

    async def close(self) -> None:
        if self.clock is not None:
            await self.clock.close()
        for client in self.clients.values():
            await client.close()
        await self.db.dispose()


def _utcnow() -> datetime:
    return datetime.now(UTC)
