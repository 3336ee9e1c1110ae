"""A loopback fake of Twilio's Messages API that answers like the real one: basic auth (20003),
its JSON error shape with a numeric code (21610 for an unsubscribed recipient, 20429 for too
many requests, 5xx), message resources with a SID and num_segments, and a sending rate per
sender counted in segments."""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections import defaultdict, deque
from dataclasses import dataclass, field

from aiohttp import web

from flows.text import sms_segments

ACCOUNT_SID = "AC" + "0" * 31 + "1"
AUTH_TOKEN = "fake-twilio-auth-token"


@dataclass
class SentSms:
    sid: str
    to: str
    sender: str
    body: str
    status_callback: str | None
    at: float


@dataclass
class FakeTwilio:
    account_sid: str = ACCOUNT_SID
    auth_token: str = AUTH_TOKEN
    segments_per_second: float = 1.0
    enforce_limits: bool = False
    delay: float = 0.0
    sent: list[SentSms] = field(default_factory=list)
    unsubscribed: set[str] = field(default_factory=set)
    violations: int = 0
    rate_limited: int = 0

    def __post_init__(self) -> None:
        self._failures: deque[tuple[int, int, str]] = deque()
        self._raw: deque[tuple[int, str]] = deque()
        self._recent: dict[str, deque[tuple[float, int]]] = defaultdict(deque)
        self._paused_until: dict[str, float] = {}

    def answer_next(self, status: int, body: str) -> None:
        """Answer the next request with this raw body; it is not carried out."""
        self._raw.append((status, body))

    def fail_next(self, status: int, code: int, message: str, times: int = 1) -> None:
        self._failures.extend([(status, code, message)] * times)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", self._create)
        return app

    async def _create(self, request: web.Request) -> web.Response:
        sid = request.match_info["sid"]
        expected = "Basic " + base64.b64encode(
            f"{self.account_sid}:{self.auth_token}".encode()).decode()
        if sid != self.account_sid or request.headers.get("Authorization") != expected:
            return _error(401, 20003, "Authenticate")
        form = await request.post()
        if self.delay:
            await asyncio.sleep(self.delay)
        if self._raw:
            status, body = self._raw.popleft()
            return web.Response(status=status, text=body, content_type="application/json")
        if self._failures:
            return _error(*self._failures.popleft())
        to, body = str(form.get("To", "")), str(form.get("Body", ""))
        sender = str(form.get("From") or form.get("MessagingServiceSid") or "")
        if not to or not sender:
            return _error(400, 21604, "A 'To' phone number is required.")
        if not body:
            return _error(400, 21602, "Message body is required.")
        if len(body) > 1600:
            return _error(400, 21617, "The concatenated message body exceeds the 1600 character "
                          "limit.")
        segments = sms_segments(body)
        if self.enforce_limits:
            now = time.monotonic()
            if now < self._paused_until.get(sender, 0.0):
                self.violations += 1
            window = self._recent[sender]
            while window and window[0][0] <= now - 1.0:
                window.popleft()
            if sum(s for _, s in window) + segments > self.segments_per_second + 1:
                self.rate_limited += 1
                self._paused_until[sender] = now + 1.0
                return _error(429, 20429, "Too Many Requests")
            window.append((now, segments))
        if to in self.unsubscribed:
            return _error(400, 21610, "Attempt to send to unsubscribed recipient")
        message_sid = "SM" + uuid.uuid4().hex
        self.sent.append(SentSms(message_sid, to, sender, body,
                                 str(form.get("StatusCallback") or "") or None, time.monotonic()))
        return web.json_response({
            "sid": message_sid, "account_sid": self.account_sid, "to": to, "from": sender,
            "body": body, "status": "queued", "num_segments": str(segments),
            "direction": "outbound-api", "api_version": "2010-04-01",
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{message_sid}.json",
        }, status=201)

    def bodies(self, to: str) -> list[str]:
        return [m.body for m in self.sent if m.to == to]


def _error(status: int, code: int, message: str) -> web.Response:
    return web.json_response({"code": code, "message": message, "status": status,
                              "more_info": f"https://www.twilio.com/docs/errors/{code}"},
                             status=status)
