"""POST /api/simulator/messages: talk to the bot as a texter would, from a page or a script."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from bot.channels.render import Rendered
from bot.channels.simulator import STYLES, Simulator, SimulatorMessage

MAX_ID_CHARS = 128


class BadRequest(ValueError):
    """The request is malformed; the message says how, for the caller."""


def parse(body: Any, max_text_chars: int) -> SimulatorMessage:
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    unknown = set(body) - {"user", "text", "channel", "language_code", "message_id", "choice"}
    if unknown:
        raise BadRequest(f"unknown field(s): {', '.join(sorted(unknown))}")
    user = _identifier(body, "user", required=True)
    style = body.get("channel")
    if style not in STYLES:
        raise BadRequest(f"'channel' must be one of {', '.join(map(repr, STYLES))}")
    text = body.get("text")
    if text is not None and not isinstance(text, str):
        raise BadRequest("'text' must be a string")
    if text is not None and len(text) > max_text_chars:
        raise BadRequest(f"'text' is longer than {max_text_chars} characters")
    choice = _identifier(body, "choice")
    if text is None and choice is None:
        raise BadRequest("send 'text' or 'choice'")
    language_code = body.get("language_code")
    if language_code is not None and (
            not isinstance(language_code, str) or len(language_code) > 35):
        raise BadRequest("'language_code' must be a language tag such as 'ru' or 'uz-Latn'")
    return SimulatorMessage(
        user=str(user), style=style, text=text, choice=choice,
        language_code=language_code, message_id=_identifier(body, "message_id"),
    )


def _identifier(body: dict[str, Any], name: str, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise BadRequest(f"'{name}' is required")
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise BadRequest(f"'{name}' must be a string or a number")
    value = str(value)
    if not value.strip() or len(value) > MAX_ID_CHARS:
        raise BadRequest(f"'{name}' must be 1 to {MAX_ID_CHARS} characters")
    return value


def reply_json(reply: Rendered) -> dict[str, Any]:
    return {
        "text": reply.text,
        "choices": [{"id": i, "label": label} for i, label in reply.choices],
        "direction": "rtl" if reply.rtl else "ltr",
    }


def routes(simulator: Simulator, max_text_chars: int) -> list[web.RouteDef]:
    async def post_message(request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "the body must be JSON")
        try:
            message = parse(body, max_text_chars)
        except BadRequest as exc:
            return _error(422, str(exc))
        replies = await simulator.exchange(message)
        return web.json_response({"replies": [reply_json(r) for r in replies]}, dumps=_dumps)

    return [web.post("/api/simulator/messages", post_message)]


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)  # readable Cyrillic and Arabic, still UTF-8 JSON


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)
