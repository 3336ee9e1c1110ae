"""Everything a running process needs, built from the settings and closed in one place."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.settings import Settings
from flows.engine import Engine, FlowSettings
from flows.standard import standard_registry
from storage.crypto import Vault
from storage.db import create_engine
from storage.outbox import Outbox
from storage.turns import Turns


@dataclass
class Services:
    settings: Settings
    db: AsyncEngine
    vault: Vault
    turns: Turns
    outbox: Outbox
    engine: Engine

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
        return cls(settings, db, vault, turns, Outbox(db, vault), engine)

    async def close(self) -> None:
        await self.db.dispose()
