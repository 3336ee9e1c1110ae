"""A loopback fake of the Telegram Bot API that answers like the real one: its JSON envelope,
its error shapes (400, 401, 403 for a blocked user, 429 with parameters.retry_after, 5xx), long
polling getUpdates, and its rate limits: about 30 messages a second per bot (a token bucket
holding one second's worth, as Telegram tolerates short bursts) and at most two messages to one
chat in any second. It counts 429s given and any request made inside a pause it announced."""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class SentMessage:
    chat_id: int
    text: str
    reply_markup: dict[str, Any] | None
    at: float


@dataclass
class FakeTelegram:
    token: str = "123456:TEST-TOKEN"
    per_second: float = 30.0
    per_chat_per_second: float = 1.0
    enforce_limits: bool = True
    retry_after: int = 1
    delay: float = 0.0  # a slow server
    # Refuse every Nth sendMessage with a 429 whatever the rate, as Telegram's flood control
    # does when it lowers a bot's limit: a pause our schedule could not foresee.
    throttle_every: int = 0
    # Telegram's documented limit is per second, not on average: with `window_limit` set, the
    # bot may have at most that many messages accepted in any one-second window (sliding), and
    # the next is refused with a 429 (instead of the token bucket above).
    window_limit: int = 0
    sent: list[SentMessage] = field(default_factory=list)
    blocked: set[int] = field(default_factory=set)
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    violations: int = 0  # requests inside an announced pause
    rate_limited: int = 0  # 429 answers given
    webhook: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._failures: dict[str, deque[tuple[int, str]]] = defaultdict(deque)
        self._raw: dict[str, deque[tuple[int, str]]] = defaultdict(deque)
        self._recent_chat: dict[int, deque[float]] = defaultdict(deque)
        self._paused_until = 0.0
        self._chat_paused_until: dict[int, float] = {}
        self._updates: list[dict[str, Any]] = []
        self._update_id = 0
        self._new_update = asyncio.Event()
        self._message_id = 0
        self._send_count = 0
        self._tokens = self.per_second
        self._bucket_at = time.monotonic()
        self._window: deque[float] = deque()

    # --- scripting ----------------------------------------------------------------------------

    def answer_next(self, method: str, status: int, body: str) -> None:
        """Answer the next call of `method` with this raw body (a proxy's error page, or a
        Bot API server's answer in a shape aiogram does not expect); it is not carried out."""
        self._raw[method].append((status, body))

    def fail_next(self, method: str, status: int, description: str, times: int = 1) -> None:
        for _ in range(times):
            self._failures[method].append((status, description))

    def push_update(self, kind: str, payload: dict[str, Any]) -> int:
        """Queue an update for getUpdates; returns its update_id."""
        self._update_id += 1
        self._updates.append({"update_id": self._update_id, kind: payload})
        self._new_update.set()
        return self._update_id

    # --- the server ---------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._dispatch)
        return app

    async def _dispatch(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return _error(401, "Unauthorized")
        method = request.match_info["method"]
        params = await _params(request)
        self.requests.append((method, params))
        if self.delay:
            await asyncio.sleep(self.delay)
        if method == "sendMessage":
            if time.monotonic() < self._paused_until:
                self.violations += 1  # counted here whatever announced the pause
            self._send_count += 1
            if self.throttle_every and self._send_count % self.throttle_every == 0:
                self.fail_next(method, 429, f"Too Many Requests: retry after {self.retry_after}")
        if self._raw[method]:
            status, body = self._raw[method].popleft()
            return web.Response(status=status, text=body, content_type="application/json")
        if self._failures[method]:
            status, description = self._failures[method].popleft()
            extra = None
            if status == 429:
                extra = {"retry_after": self.retry_after}
                self._paused_until = time.monotonic() + self.retry_after
                self.rate_limited += 1
            return _error(status, description, extra)
        handler = getattr(self, f"_m_{method.lower()}", None)
        if handler is None:
            return _error(404, "Not Found: method not found")
        return await handler(params)

    async def _m_getme(self, params: dict[str, Any]) -> web.Response:
        return _ok({"id": 123456, "is_bot": True, "first_name": "Hotline",
                    "username": "hotline_test_bot"})

    async def _m_setwebhook(self, params: dict[str, Any]) -> web.Response:
        self.webhook = params
        return _ok(True)

    async def _m_deletewebhook(self, params: dict[str, Any]) -> web.Response:
        self.webhook = {}
        return _ok(True)

    async def _m_answercallbackquery(self, params: dict[str, Any]) -> web.Response:
        return _ok(True)

    async def _m_getupdates(self, params: dict[str, Any]) -> web.Response:
        offset = int(params.get("offset", 0) or 0)
        self._updates = [u for u in self._updates if u["update_id"] >= offset]
        timeout = float(params.get("timeout", 0) or 0)
        if not self._updates and timeout:
            self._new_update.clear()
            try:
                await asyncio.wait_for(self._new_update.wait(), min(timeout, 1.0))
            except TimeoutError:
                pass
        return _ok(self._updates[:100])

    async def _m_sendmessage(self, params: dict[str, Any]) -> web.Response:
        now = time.monotonic()
        try:
            chat_id = int(params["chat_id"])
        except (KeyError, ValueError):
            return _error(400, "Bad Request: chat not found")
        text = str(params.get("text", ""))
        if self.enforce_limits:
            if now < self._chat_paused_until.get(chat_id, 0.0):
                self.violations += 1
            limited = self._over_limit(now, chat_id)
            if limited is not None:
                self.rate_limited += 1
                if limited == "chat":
                    self._chat_paused_until[chat_id] = now + self.retry_after
                else:
                    self._paused_until = now + self.retry_after
                return _error(429, f"Too Many Requests: retry after {self.retry_after}",
                              {"retry_after": self.retry_after})
        if chat_id in self.blocked:
            return _error(403, "Forbidden: bot was blocked by the user")
        if not text.strip():
            return _error(400, "Bad Request: message text is empty")
        if len(text) > 4096 + text.count("&") * 4:  # entities are counted after parsing
            return _error(400, "Bad Request: message is too long")
        markup = params.get("reply_markup")
        markup = json.loads(markup) if isinstance(markup, str) else markup
        self.sent.append(SentMessage(chat_id, text, markup, now))
        self._message_id += 1
        return _ok({"message_id": self._message_id, "date": int(time.time()),
                    "chat": {"id": chat_id, "type": "private"}, "text": text})

    def _over_limit(self, now: float, chat_id: int) -> str | None:
        """Telegram allows short bursts: the bot's limit is a token bucket holding one
        second's worth; a chat may have at most two messages in any second."""
        chat = self._recent_chat[chat_id]
        while chat and chat[0] <= now - 1.0:
            chat.popleft()
        if len(chat) >= self.per_chat_per_second + 1:
            return "chat"
        if self.window_limit:
            while self._window and self._window[0] <= now - 1.0:
                self._window.popleft()
            if len(self._window) >= self.window_limit:
                return "bot"
            self._window.append(now)
            chat.append(now)
            return None
        elapsed = now - self._bucket_at
        self._tokens = min(self.per_second, self._tokens + elapsed * self.per_second)
        self._bucket_at = now
        if self._tokens < 1:
            return "bot"
        self._tokens -= 1
        chat.append(now)
        return None

    # --- reading what happened ---------------------------------------------------------------

    def texts(self, chat_id: int) -> list[str]:
        return [m.text for m in self.sent if m.chat_id == chat_id]

    def buttons(self, chat_id: int) -> list[list[str]]:
        last = [m for m in self.sent if m.chat_id == chat_id][-1]
        rows = (last.reply_markup or {}).get("inline_keyboard", [])
        return [[b["callback_data"] for b in row] for row in rows]


def message_update(chat_id: int, message_id: int, text: str | None = None, *,
                   language_code: str = "en", **extra: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "message_id": message_id, "date": int(time.time()),
        "chat": {"id": chat_id, "type": "private", "first_name": "A"},
        "from": {"id": chat_id, "is_bot": False, "first_name": "A",
                 "language_code": language_code},
    }
    if text is not None:
        payload["text"] = text
        if text.startswith("/"):
            payload["entities"] = [{"type": "bot_command", "offset": 0,
                                    "length": len(text.split()[0])}]
    payload.update(extra)
    return payload


def callback_update(chat_id: int, query_id: str, data: str) -> dict[str, Any]:
    return {
        "id": query_id, "chat_instance": "1", "data": data,
        "from": {"id": chat_id, "is_bot": False, "first_name": "A", "language_code": "en"},
        "message": {"message_id": 1, "date": int(time.time()),
                    "chat": {"id": chat_id, "type": "private"}, "text": "..."},
    }


async def _params(request: web.Request) -> dict[str, Any]:
    if request.content_type == "application/json":
        return dict(await request.json())
    form = await request.post()
    return {k: v for k, v in form.items()}


def _ok(result: Any) -> web.Response:
    return web.json_response({"ok": True, "result": result})


def _error(status: int, description: str, parameters: dict[str, Any] | None = None
           ) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return web.json_response(body, status=status)
