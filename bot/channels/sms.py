"""SMS through Twilio: inbound messages and delivery reports in (signed webhooks), replies out.

Every webhook request must carry a valid X-Twilio-Signature for PUBLIC_BASE_URL plus its path
(the address Twilio was given, so it holds behind a TLS proxy); anything else gets 403 and
nothing is stored.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import phonenumbers
from aiohttp import ClientError, encode_basic_auth, web
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from bot.channels.base import Failed, Result, Retry, Sent
from bot.channels.render import render_sms, split_text
from flows.engine import Engine, Inbound
from flows.text import sms_segments
from storage.outbox import Claimed, Sender

CHANNEL = "sms"
INBOUND_PATH = "/webhooks/twilio/sms"
STATUS_PATH = "/webhooks/twilio/status"
# Twilio refuses a body over 1,600 characters (error 21617); longer replies go as several SMS.
MAX_BODY = 1600
TWILIO_API = "https://api.twilio.com"
log = logging.getLogger(__name__)
_quiet = logging.getLogger("hotline.twilio")  # twilio logs every request at INFO otherwise
_quiet.setLevel(logging.WARNING)

def normalise_number(raw: str) -> tuple[str, str | None] | None:
    """'+7 (701) 123-45-67' -> ('+77011234567', 'KZ'); None if it is not a valid number."""
    try:
        number = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return e164, phonenumbers.region_code_for_number(number)


def sms_bodies(item: Claimed) -> list[str]:
    """The SMS one reply goes as: its short version, numbered choices, split if over Twilio's
    limit."""
    return split_text(render_sms(item.reply).text, MAX_BODY)


class _TwilioHttp(AsyncTwilioHttpClient):
    """twilio's own async HTTP client, pointed at another API base (a test fake) when set."""

    def __init__(self, api_base: str | None) -> None:
        super().__init__(logger=_quiet, timeout=15)
        self._api_base = api_base

    async def request(self, method: str, url: str, params: Any = None, data: Any = None,
                      headers: dict[str, str] | None = None, auth: tuple[str, str] | None = None,
                      **kwargs: Any) -> Any:
        if self._api_base and url.startswith(TWILIO_API):
            url = self._api_base + url[len(TWILIO_API):]
        if auth is not None:
            # The same Basic credentials as a header: aiohttp deprecates its BasicAuth object,
            # which twilio's client would build from `auth`.
            headers = {**(headers or {}), "Authorization": encode_basic_auth(*auth)}
        return await super().request(method, url, params, data, headers, None, **kwargs)


class TwilioClient:
    """Sends outbox rows with twilio's async client and maps its answers to sender results."""

    channel = CHANNEL

    def __init__(self, account_sid: str, auth_token: str, *, sender: str | None,
                 messaging_service_sid: str | None, status_callback: str,
                 api_base: str | None = None, segments_per_second: float = 1.0) -> None:
        self._http = _TwilioHttp(api_base)
        self._client = Client(account_sid, auth_token, http_client=self._http)
        self._from = sender
        self._service = messaging_service_sid
        self._status_callback = status_callback
        self._interval = 1.0 / segments_per_second
        self._scope = f"twilio:{sender or messaging_service_sid}"

    def scopes(self, item: Claimed) -> list[tuple[str, float]]:
        return [(self._scope, self._interval)]

    def cost(self, item: Claimed) -> float:
        return float(sum(map(sms_segments, sms_bodies(item)[item.parts_sent:])))  # >= 0

    async def send(self, item: Claimed) -> Result:
        sender = {"from_": self._from} if self._from else {
            "messaging_service_sid": self._service}
        bodies = sms_bodies(item)
        done = item.parts_sent  # a retry sends only what Twilio has not accepted yet
        message = None
        try:
            for body in bodies[done:]:
                try:
                    message = await self._client.messages.create_async(
                        to=item.address, body=body, status_callback=self._status_callback,
                        **sender,
                    )
                except json.JSONDecodeError:
                    # twilio raises for any status but 2xx first: this was accepted, with an
                    # answer we cannot read. Sending it again would send it twice.
                    log.warning("twilio accepted a message but its answer could not be read")
                    message = None
                done += 1
        except TwilioRestException as exc:
            reason = f"twilio {exc.status} error {exc.code}"
            if exc.code == 21610:  # the person replied STOP to this sender
                return Failed(f"{reason}: unsubscribed recipient", stop_contact=True)
            if exc.status == 429 or exc.code == 20429:
                return Retry(f"{reason}: too many requests", pause=1.0, scope=self._scope,
                             parts_sent=done)
            if exc.status >= 500:
                return Retry(reason, parts_sent=done)
            return Failed(reason)
        except (ClientError, TimeoutError) as exc:
            return Retry(f"network: {type(exc).__name__}", parts_sent=done)
        return Sent(provider_id=message.sid if message else None)

    async def close(self) -> None:
        if self._http.session is not None:
            await self._http.session.close()


def twilio_routes(engine: Engine, outbox: Sender, hash_address: Any, *, auth_token: str,
                  public_base_url: str) -> list[web.RouteDef]:
    validator = RequestValidator(auth_token)

    async def verified_form(request: web.Request) -> dict[str, str] | None:
        try:
            posted = await request.post()
        except (ValueError, LookupError):  # bytes that are not UTF-8 (or its charset), a bad form
            # Its signature cannot even be checked: refused without a traceback, nothing stored.
            raise web.HTTPBadRequest(text="the form cannot be read") from None
        form = {k: str(v) for k, v in posted.items()}
        url = public_base_url + request.rel_url.path_qs
        signature = request.headers.get("X-Twilio-Signature", "")
        return form if signature and validator.validate(url, form, signature) else None

    async def inbound_sms(request: web.Request) -> web.Response:
        form = await verified_form(request)
        if form is None:
            return web.Response(status=403, text="invalid signature")
        number = normalise_number(form.get("From", ""))
        if number is None:
            return _twiml()  # not a phone we can answer (e.g. an alphanumeric sender)
        address, country = number
        opt_out = form.get("OptOutType", "").upper()
        if opt_out == "STOP":
            # Twilio has opted the number out and answered it; we only stop sending.
            await outbox.stop_address(CHANNEL, hash_address(CHANNEL, address))
            return _twiml()
        # START and HELP (also their other words, "UNSTOP", "INFO") reach us as what they
        # mean. Twilio has answered HELP with the service's one-language text; we answer too,
        # in the person's language, with what they can send.
        body = form.get("Body", "")
        # A picture or voice message (MMS) with no words: answered like Telegram's stickers.
        media_only = not body.strip() and form.get("NumMedia", "0") not in ("", "0")
        inbound = Inbound(
            channel=CHANNEL, address=address, unsupported=media_only,
            text=_OPT_OUT_WORDS.get(opt_out) or body,
            message_id=form.get("MessageSid") or None, country_hint=country,
        )
        # A step that raises is answered by the engine; what raises here is the database.
        # Twilio does not retry a 5xx unless the webhook URL asks it to (connection overrides),
        # so try a few times before giving up (Twilio waits up to 15 s for an answer).
        for delay in (0.5, 1.0, 2.0, None):
            try:
                await engine.handle(inbound)
                break
            except Exception as exc:
                if delay is None:
                    raise
                log.warning("an SMS turn failed (%s); trying again", type(exc).__name__)
                await asyncio.sleep(delay)
        return _twiml()  # acknowledged after the turn committed; replies go via the outbox

    async def status(request: web.Request) -> web.Response:
        form = await verified_form(request)
        if form is None:
            return web.Response(status=403, text="invalid signature")
        sid, state = form.get("MessageSid"), form.get("MessageStatus", "").lower()
        if sid and state:
            await outbox.record_delivery(sid, state, form.get("ErrorCode"))
        return web.Response(status=204)

    return [web.post(INBOUND_PATH, inbound_sms), web.post(STATUS_PATH, status)]


_OPT_OUT_WORDS = {"START": "start", "HELP": "help"}


def _twiml() -> web.Response:
    return web.Response(text="<Response/>", content_type="text/xml")
