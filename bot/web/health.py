"""`/healthz` and `/metrics`, served by the web process and by `hotline worker`: what an
operator's monitoring asks before a texter notices that something is wrong."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.metrics import CONTENT_TYPE, Metrics
from storage.stats import database_health, outbox_stats

log = logging.getLogger(__name__)
# Longer than a healthy database ever takes, shorter than a load balancer's probe timeout.
DATABASE_TIMEOUT = 2.0


def routes(db: AsyncEngine, metrics: Metrics) -> list[web.RouteDef]:
    async def healthz(_request: web.Request) -> web.Response:
        health = await database_health(db, timeout=DATABASE_TIMEOUT)
        if not health.ok:
            log.warning("health check failed: %s", health.problem)
            return web.json_response({
                "ok": False, "database": "ok" if health.answers else "unreachable",
                "schema": health.schema, "error": health.problem,
            }, status=503)
        return web.json_response({"ok": True, "database": "ok", "schema": health.schema})

    async def scrape(_request: web.Request) -> web.Response:
        try:
            async with asyncio.timeout(DATABASE_TIMEOUT):
                stats = await outbox_stats(db, datetime.now(UTC))
        except Exception as exc:  # the counters are still worth having; /healthz says why
            log.warning("metrics without the outbox: the database did not answer (%s)",
                        type(exc).__name__)
            stats = None
        return web.Response(body=metrics.render(stats), headers={"Content-Type": CONTENT_TYPE})

    return [web.get("/healthz", healthz), web.get("/metrics", scrape)]
