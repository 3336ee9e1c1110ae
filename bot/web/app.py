"""The aiohttp application."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from bot.channels.simulator import Simulator
from bot.services import Services
from bot.web import simulator_api
from bot.web.page import STATIC, simulator_page

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    """An unexpected failure is logged (without the request body) and answered with a JSON
    error, never an HTML traceback."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status >= 400 and request.path.startswith("/api/"):
            return web.json_response({"error": exc.reason}, status=exc.status)
        raise
    except Exception:
        log.exception("request failed: %s %s", request.method, request.path)
        return web.json_response({"error": "internal error, nothing was lost: try again"},
                                 status=500)


def create_app(services: Services) -> web.Application:
    app = web.Application(middlewares=[errors_as_json], client_max_size=256 * 1024)
    simulator = Simulator(services.engine, services.turns, services.outbox)
    app.add_routes(simulator_api.routes(simulator, services.settings.max_text_chars))
    app.add_routes([
        web.get("/", simulator_page),
        web.get("/healthz", _health),
        web.static("/static", STATIC),
    ])

    async def close(_app: web.Application) -> None:
        await services.close()

    app.on_cleanup.append(close)
    return app


async def _health(_request: web.Request) -> web.Response:
    return web.json_response({"ok": True})
