"""Telegram through aiogram 3: updates in (webhook or long polling), replies out.

Inbound handlers are thin: they turn an update into an `Inbound` and hand it to the engine,
which commits before the handler returns, so Telegram is acknowledged only after the commit (a
webhook delivery that fails is redelivered and de-duplicated by its message id).
"""

from __future__ import annotations

import html
import logging
from collections.abc import Awaitable, Callable
from functools import lru_cache
from typing import Any

from aiogram import Bot, Dispatcher, F, Router
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.filters import CommandObject, CommandStart
from aiogram.methods.base import Response
from aiogram.types import (
    CallbackQuery,
    ChatMemberUpdated,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    Update,
)
from aiogram.types.update import UpdateTypeLookupError

from bot.channels.base import Failed, Result, Retry, Sent
from bot.channels.render import render_telegram, split_text
from flows.engine import Engine, Inbound
from flows.i18n import N_, negotiate, translator
from storage.outbox import Claimed, Sender
from storage.ratelimits import recipient_scope
from storage.records import OutgoingReply

CHANNEL = "telegram"
MAX_TEXT = 4096  # characters of one message's text, after entity parsing
GLOBAL_SCOPE = "telegram"
log = logging.getLogger(__name__)
# aiogram parses every answer as Response[<type>], a generic pydantic model that pydantic caches
# only weakly: without a strong reference each garbage collection throws it away and the next
# send rebuilds it (about 8 ms each, some 8% of the sender's time when profiled).
_KEEP_RESPONSE_TYPES = (Response[Message], Response[bool])


def make_bot(token: str, api_base: str | None = None) -> Bot:
    """aiogram's Bot, pointed at `api_base` when a Bot API server other than Telegram's is
    used (a self-hosted one, or a fake in tests)."""
    session = (
        AiohttpSession(api=TelegramAPIServer.from_base(api_base))
        if api_base else AiohttpSession()
    )
    return Bot(token, session=session, default=DefaultBotProperties(parse_mode="HTML"))


@lru_cache(maxsize=256)
def _keyboard(choices: tuple[tuple[str, str], ...]) -> InlineKeyboardMarkup:
    """One button a row. The same menus go to many people: build each keyboard once (aiogram
    only reads it)."""
    return InlineKeyboardMarkup(inline_keyboard=[
        [InlineKeyboardButton(text=label, callback_data=choice_id[:64])]
        for choice_id, label in choices
    ])


def _accepted_id(exc: ClientDecodeError) -> tuple[bool, str | None]:
    """Whether an answer aiogram could not read still said ok (a proxy, an older self-hosted
    Bot API server), and the message's id if it carries one. If it did, the message went:
    sending it again would send it twice."""
    data = exc.data
    if not (isinstance(data, dict) and data.get("ok") is True):
        return False, None
    result = data.get("result")
    message_id = result.get("message_id") if isinstance(result, dict) else None
    return True, str(message_id) if message_id is not None else None


class TelegramClient:
    """Sends outbox rows with aiogram's Bot and maps Telegram's answers to sender results."""

    channel = CHANNEL

    def __init__(self, bot: Bot, *, per_second: float = 30.0, per_chat_per_second: float = 1.0):
        self.bot = bot
        self._global_interval = 1.0 / per_second
        self._chat_interval = 1.0 / per_chat_per_second

    def scopes(self, item: Claimed) -> list[tuple[str, float]]:
        return [(GLOBAL_SCOPE, self._global_interval),
                (recipient_scope(CHANNEL, item.address_hash), self._chat_interval)]

    @staticmethod
    def parts(item: Claimed) -> tuple[list[str], tuple[tuple[str, str], ...]]:
        """The messages one reply goes as, as sent (direction marks included), and its
        buttons: the one place both its cost and its send are computed from."""
        rendered = render_telegram(item.reply)
        return split_text(rendered.text, MAX_TEXT), rendered.choices

    def cost(self, item: Claimed) -> float:
        return float(max(0, len(self.parts(item)[0]) - item.parts_sent))

    async def send(self, item: Claimed) -> Result:
        parts, choices = self.parts(item)
        keyboard = _keyboard(choices) if choices else None
        done = item.parts_sent  # a retry sends only what Telegram has not accepted yet
        provider_id = None
        try:
            for index in range(done, len(parts)):
                try:
                    sent = await self.bot.send_message(
                        chat_id=int(item.address),
                        text=html.escape(parts[index], quote=False),
                        reply_markup=keyboard if index == len(parts) - 1 else None,
                    )
                    provider_id = str(sent.message_id)
                except ClientDecodeError as exc:
                    accepted, provider_id = _accepted_id(exc)
                    if not accepted:
                        return Retry("an answer that is not the Bot API's", parts_sent=done)
                    log.warning("telegram accepted a message but its answer could not be read")
                done = index + 1
        except TelegramRetryAfter as exc:
            return Retry("429 too many requests", pause=float(exc.retry_after),
                         scope=GLOBAL_SCOPE, parts_sent=done)
        except TelegramForbiddenError:
            return Failed("403: the person blocked the bot", stop_contact=True)
        except TelegramUnauthorizedError:  # an operator must fix the token
            return Retry("401: the bot token was refused", parts_sent=done)
        except TelegramBadRequest as exc:
            return Failed(f"400: {exc.message}"[:200])
        except (TelegramServerError, TelegramNetworkError) as exc:
            return Retry(f"{type(exc).__name__}: {exc.message}"[:200], parts_sent=done)
        return Sent(provider_id=provider_id)

    async def close(self) -> None:
        await self.bot.session.close()


def _addressed_to_bot(message: Message, bot: Bot) -> bool:
    """A command, or a reply to one of the bot's messages: what a group member means for us."""
    text = message.text or ""
    replied = message.reply_to_message
    return text.startswith("/") or (
        replied is not None and replied.from_user is not None and replied.from_user.id == bot.id)


GroupReply = Callable[[str, OutgoingReply], Awaitable[object]]


def telegram_dispatcher(engine: Engine, outbox: Sender, hash_address: Any,
                        group_reply: GroupReply | None = None) -> Dispatcher:
    """A dispatcher whose handlers feed the engine; it answers nothing itself. `group_reply`
    queues the one answer a group gets (through the outbox, so a 429 is waited out like any
    other; the row is deleted once sent)."""
    router = Router(name="hotline")

    def inbound(message: Message, **fields: Any) -> Inbound:
        user = message.from_user
        return Inbound(
            channel=CHANNEL,
            address=str(message.chat.id),
            locale_hint=user.language_code if user else None,
            **fields,
        )

    # A helpline conversation belongs in a private chat: in a group everyone would read it.
    # Someone who adds the bot to a group and writes to it there is told to write privately;
    # nothing of the group is stored.
    @router.message(F.chat.type != "private")
    @router.edited_message(F.chat.type != "private")
    @router.callback_query(F.message.chat.type != "private")
    async def not_private(event: Message | CallbackQuery, bot: Bot) -> None:
        if group_reply is None:
            return
        if isinstance(event, Message):
            if not _addressed_to_bot(event, bot):
                return  # the group's own conversation (when the bot can see it): not ours
            chat = event.chat
        elif event.message is not None:
            chat = event.message.chat
        else:
            return
        user = event.from_user
        t = translator(negotiate(None, user.language_code if user else None, None))
        await group_reply(str(chat.id), OutgoingReply(t(N_(
            "I only talk in private chats, where nobody else can read what you write. Open a "
            "chat with me and write there.")), rtl=t.rtl))

    @router.message(CommandStart())
    async def start(message: Message, command: CommandObject) -> None:
        await engine.handle(inbound(message, text="/start", start_payload=command.args,
                                    message_id=f"m{message.message_id}"))

    @router.message(F.text)
    async def text(message: Message) -> None:
        await engine.handle(inbound(message, text=message.text,
                                    message_id=f"m{message.message_id}"))

    @router.message()
    async def not_text(message: Message) -> None:  # photos, stickers, voice notes, ...
        await engine.handle(inbound(message, unsupported=True,
                                    message_id=f"m{message.message_id}"))

    @router.edited_message()
    async def edited(message: Message) -> None:
        await engine.handle(inbound(message, unsupported=True,
                                    message_id=f"e{message.message_id}:{message.edit_date}"))

    @router.callback_query()
    async def pressed(query: CallbackQuery) -> Any:
        if query.message is not None and query.data:
            user = query.from_user
            await engine.handle(Inbound(
                channel=CHANNEL, address=str(query.message.chat.id), choice=query.data,
                message_id=f"c{query.id}", locale_hint=user.language_code if user else None,
            ))
        return query.answer()  # stops the button's spinner (sent as the webhook's answer)

    @router.my_chat_member()
    async def membership(update: ChatMemberUpdated) -> None:
        if update.new_chat_member.status == "kicked":  # the person blocked the bot
            await outbox.stop_address(CHANNEL, hash_address(CHANNEL, str(update.chat.id)))

    dispatcher = Dispatcher()
    dispatcher.include_router(router)
    return dispatcher


ALLOWED_UPDATES = ["message", "edited_message", "callback_query", "my_chat_member"]


def has_event(update: Update) -> bool:
    """Whether the update carries an event aiogram knows. Fed one it does not know (a type newer
    than aiogram), aiogram warns with the whole update in the message, so it is not fed."""
    try:
        _ = update.event_type
    except UpdateTypeLookupError:
        return False
    return True
