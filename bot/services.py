"""Everything a running process needs, built from the settings and closed in one place."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from typing import TYPE_CHECKING

from bot.channels.base import ChannelClient
from bot.settings import Settings
from flows.engine import Engine, FlowSettings
from flows.standard import standard_registry
from storage.crypto import Vault
from storage.db import create_engine
from storage.outbox import Outbox, Sender
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

    @classmethod
    def build(cls, settings: Settings) -> Services:
        db = create_engine(settings.database_url)
        vault = Vault(settings.secret_key)
        turns = Turns(db, vault)
        engine = Engine(
            turns,
            standard_registry(),
            settings=FlowSettings(
                organisation=settings.organisation, human_contact=settings.human_contact
            ),
            idle_after=timedelta(minutes=settings.idle_minutes),
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
            dispatcher = telegram_dispatcher(engine, sender, turns.address_hash)
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
                   bot, dispatcher)

    async def close(self) -> None:
        for client in self.clients.values():
            await client.close()
        await self.db.dispose()
