"""The simulator page, in the language of whoever opens it."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from string import Template

from aiohttp import web
from babel import negotiate_locale

from flows.i18n import N_, SHIPPED, language_name, shipped_locale, translator

STATIC = Path(__file__).resolve().parent / "static"

PAGE_STRINGS = {
    "title": N_("Hotline simulator"),
    "intro": N_("Chat with the bot as a person texting it would. Nothing here reaches a real "
                "phone."),
    "style": N_("Phone"),
    "sms": N_("SMS: plain text, numbered choices"),
    "telegram": N_("Telegram: buttons"),
    "language": N_("Phone language"),
    "restart": N_("New conversation"),
    "placeholder": N_("Type a message"),
    "send": N_("Send"),
    "failed": N_("The bot could not answer. Please try again."),
    "live": N_("This is a simulator on a live service: what you type here is stored beside "
               "real people's conversations. Use it only to test, never with anyone's real "
               "details."),
}


def page_locale(request: web.Request) -> str:
    asked = shipped_locale(request.query.get("lang"))
    if asked:
        return asked
    accepted = [
        part.split(";", 1)[0].strip().replace("-", "_")
        for part in request.headers.get("Accept-Language", "").split(",")
        if part.strip()
    ]
    return shipped_locale(negotiate_locale(accepted, list(SHIPPED), sep="_")) or "en"


def simulator_page(live: bool) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The page's handler; `live` (a real channel is configured too) adds a warning."""

    async def page(request: web.Request) -> web.Response:
        locale = page_locale(request)
        t = translator(locale)
        strings = {key: t(message) for key, message in PAGE_STRINGS.items()}
        languages = [{"code": code, "name": language_name(code)} for code in SHIPPED]
        html = Template((STATIC / "simulator.html").read_text(encoding="utf-8")).substitute(
            lang=locale,
            dir="rtl" if t.rtl else "ltr",
            title=strings["title"],
            config=json.dumps({"strings": strings, "languages": languages, "locale": locale,
                               "live": live}, ensure_ascii=False).replace("</", "<\\/"),
        )
        return web.Response(text=html, content_type="text/html", charset="utf-8")

    return page
