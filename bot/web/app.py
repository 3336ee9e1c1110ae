"""The aiohttp application."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web

from bot.channels.simulator import Simulator
from bot.services import Services
from bot.settings import Settings
from bot.web import health, simulator_api
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
    if services.settings.simulator:  # off beside a real channel unless SIMULATOR=on
        simulator = Simulator(services.engine, services.turns, services.outbox)
        app.add_routes(simulator_api.routes(simulator, services.settings.max_text_chars))
        app.add_routes([
            web.get("/", simulator_page(live=services.settings.real_channel)),
            web.static("/static", STATIC),
        ])
    app.add_routes(health.routes(services.db, services.metrics))

    settings = services.settings
    if services.telegram_dispatcher is not None and settings.telegram_webhook:
        from bot.channels.telegram_webhook import telegram_webhook

        assert services.telegram_bot is not None  # built together with the dispatcher
        app.router.add_post(TELEGRAM_WEBHOOK_PATH, telegram_webhook(
            services.telegram_dispatcher, services.telegram_bot,
            settings.telegram_webhook_secret or "",  # Settings refuses to start without it
        ))
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
    # Also without a channel to send through: the loop does the outbox's housekeeping.
    tasks.append(asyncio.create_task(services.sender_loop().run(stop), name="sender"))
    bot, dispatcher = services.telegram_bot, services.telegram_dispatcher
    if bot is not None and dispatcher is not None:
        # In a task: Telegram being unreachable must not keep the simulator and SMS down.
        # (It may register a moment before the port opens; Telegram retries a delivery.)
        tasks.append(asyncio.create_task(_connect_telegram(bot, dispatcher, settings, stop),
                                         name="telegram"))
    yield
    stop.set()  # also ends long polling's poll and backoff; a turn under way finishes
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
    from bot.channels.telegram_polling import TelegramPoller

    await TelegramPoller(bot, dispatcher, allowed_updates=ALLOWED_UPDATES).run(stop)
