"""The aiohttp application."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

from aiohttp import web

from bot.sender import SenderLoop
from bot.channels.simulator import Simulator
from bot.services import Services
from bot.settings import Settings
from bot.web import simulator_api
from bot.web.page import STATIC, simulator_page

log = logging.getLogger(__name__)
TELEGRAM_WEBHOOK_PATH = "/webhooks/telegram"

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


def create_app(services: Services, *, background: bool = True) -> web.Application:
    """The web app; with `background` it also runs the sender and, without a public address,
    Telegram long polling, so that one process is the whole service."""
    app = web.Application(middlewares=[errors_as_json], client_max_size=256 * 1024)
    simulator = Simulator(services.engine, services.turns, services.outbox)
    app.add_routes(simulator_api.routes(simulator, services.settings.max_text_chars))
    app.add_routes([
        web.get("/", simulator_page),
        web.get("/healthz", _health),
        web.static("/static", STATIC),
    ])

    settings = services.settings
    if services.telegram_dispatcher is not None and settings.telegram_webhook:
        from aiogram.webhook.aiohttp_server import SimpleRequestHandler

        SimpleRequestHandler(
            services.telegram_dispatcher, services.telegram_bot,
            handle_in_background=False,  # acknowledge only after the turn committed
            secret_token=settings.telegram_webhook_secret,
        ).register(app, path=TELEGRAM_WEBHOOK_PATH)
    if settings.twilio_auth_token and settings.public_base_url:
        from bot.channels.sms import twilio_routes

        app.add_routes(twilio_routes(
            services.engine, services.sender, services.turns.address_hash,
            auth_token=settings.twilio_auth_token, public_base_url=settings.public_base_url,
        ))
    if background:
        app.cleanup_ctx.append(lambda _app: run_background(services))

    async def close(_app: web.Application) -> None:
        await services.close()

    app.on_cleanup.append(close)
    return app


async def run_background(services: Services) -> AsyncIterator[None]:
    """The sender, Telegram's webhook registration or long polling, for as long as the app
    runs."""
    stop = asyncio.Event()
    tasks = []
    settings = services.settings
    if services.clients:
        loop = SenderLoop(services.sender, services.clients,
                          lease=timedelta(seconds=settings.sender_lease_seconds))
        tasks.append(asyncio.create_task(loop.run(stop), name="sender"))
    bot, dispatcher = services.telegram_bot, services.telegram_dispatcher
    if bot is not None and dispatcher is not None:
        # In a task: Telegram being unreachable must not keep the simulator and SMS down.
        # (It may register a moment before the port opens; Telegram retries a delivery.)
        tasks.append(asyncio.create_task(_connect_telegram(bot, dispatcher, settings, stop),
                                         name="telegram"))
    yield
    stop.set()
    if dispatcher is not None and not settings.telegram_webhook:
        try:
            await dispatcher.stop_polling()
        except RuntimeError:
            pass  # polling had not started (or already ended)
    _, pending = await asyncio.wait(tasks, timeout=5) if tasks else (set(), set())
    for task in pending:
        if task.get_name() == "telegram":  # e.g. a request to an unreachable Telegram
            task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)  # the sender finishes its batch


async def _connect_telegram(bot: Any, dispatcher: Any, settings: Settings,
                            stop: asyncio.Event) -> None:
    """Register the webhook, or remove it and poll, retrying with backoff while Telegram cannot
    be reached. Errors are logged by kind only: aiogram's messages may carry the request."""
    from aiogram.exceptions import TelegramAPIError, TelegramNetworkError, TelegramServerError

    from bot.channels.telegram import ALLOWED_UPDATES

    delay = 1.0
    while True:
        try:
            if settings.telegram_webhook:
                await bot.set_webhook(
                    f"{settings.public_base_url}{TELEGRAM_WEBHOOK_PATH}",
                    secret_token=settings.telegram_webhook_secret,
                    allowed_updates=ALLOWED_UPDATES,
                )
                log.info("telegram webhook registered")
                return
            await bot.delete_webhook()  # Telegram refuses getUpdates while a webhook is set
            break
        except (TelegramNetworkError, TelegramServerError, TimeoutError) as exc:
            log.warning("telegram unreachable (%s); trying again in %.0f s",
                        type(exc).__name__, delay)
        except TelegramAPIError as exc:
            if not settings.telegram_webhook:
                # A Bot API server without deleteWebhook: polling will say if one is set.
                log.warning("telegram refused deleteWebhook (%s); polling anyway",
                            type(exc).__name__)
                break
            log.error("telegram refused the webhook (%s); trying again in %.0f s",
                      type(exc).__name__, delay)
        try:
            await asyncio.wait_for(stop.wait(), delay)
            return  # shutting down
        except TimeoutError:
            delay = min(delay * 2, 300.0)
    if stop.is_set():
        return
    await dispatcher.start_polling(bot, handle_signals=False, close_bot_session=False,
                                   allowed_updates=ALLOWED_UPDATES, polling_timeout=25)


async def _health(_request: web.Request) -> web.Response:
    return web.json_response({"ok": True})
