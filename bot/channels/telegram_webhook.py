"""Telegram's webhook: answered 200 only after the update's turn committed.

aiogram's SimpleRequestHandler waits at most 55 s for the handlers, then answers 200 and lets the
turn go on in the background, where a failure loses the update; and it compares the secret
header as text, so a non-ASCII header raised (500, with a traceback). Here the whole turn is
awaited, and a turn that raised answers 500 so that Telegram delivers the update again (the
engine de-duplicates it by message id).
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiogram import Bot, Dispatcher
from aiogram.methods import TelegramMethod
from aiogram.types import Update
from aiohttp import JsonPayload, MultipartWriter, Payload, web

from bot.channels.telegram import has_event

if TYPE_CHECKING:
    from aiogram.types import InputFile

log = logging.getLogger(__name__)
SECRET_HEADER = b"x-telegram-bot-api-secret-token"


def telegram_webhook(dispatcher: Dispatcher, bot: Bot, secret: str
                     ) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The aiohttp handler for the path given to setWebhook along with `secret`."""
    if not secret:
        raise ValueError("the Telegram webhook needs its secret token")
    expected = secret.encode()

    async def handle(request: web.Request) -> web.Response:
        if not _authentic(request, expected):
            return web.Response(status=401, text="Unauthorized")
        try:
            update = Update.model_validate(bot.session.json_loads(await request.read()),
                                           context={"bot": bot})
        except (ValueError, RecursionError) as exc:  # not JSON, or not an update
            log.warning("telegram webhook: not an update (%s)", type(exc).__name__)
            return web.Response(status=400, text="Bad Request")
        if not has_event(update):
            return web.json_response({})  # nothing for us; Telegram need not send it again
        try:
            result = await dispatcher.feed_update(bot, update)
        except Exception as exc:
            # By kind only: an exception's message can quote what the person wrote.
            log.error("telegram update not processed (%s); Telegram delivers it again",
                      type(exc).__name__)
            return web.Response(status=500, text="Not processed: deliver it again")
        return web.Response(body=_reply(bot, result))

    return handle


def _authentic(request: web.Request, expected: bytes) -> bool:
    """The secret header, compared as the bytes received (aiohttp's decoded text is no
    comparable string when they are not ASCII) and in constant time."""
    given = [value for name, value in request.raw_headers if name.lower() == SECRET_HEADER]
    return len(given) == 1 and hmac.compare_digest(given[0], expected)


def _reply(bot: Bot, result: Any) -> Payload:
    """A method a handler returned (answerCallbackQuery, to stop a button's spinner) goes back
    as the webhook's answer, built as aiogram's own handler builds it (aiohttp_server.py):
    Telegram carries it out, and the person's button stops spinning without another request.
    Telegram does not say whether it worked, which for that answer does not matter."""
    if not isinstance(result, TelegramMethod):
        return JsonPayload({})  # an empty multipart form would be only its closing boundary
    writer = MultipartWriter("form-data", boundary=f"webhookBoundary{secrets.token_urlsafe(16)}")
    writer.append(result.__api_method__).set_content_disposition("form-data", name="method")
    files: dict[str, InputFile] = {}
    for key, value in result.model_dump(warnings=False).items():
        prepared = bot.session.prepare_value(value, bot=bot, files=files)
        if prepared:
            writer.append(prepared).set_content_disposition("form-data", name=key)
    for key, file in files.items():
        writer.append(file.read(bot)).set_content_disposition(
            "form-data", name=key, filename=file.filename or key)
    return writer
