"""Rendering a channel-neutral reply the way a channel shows it."""

from __future__ import annotations

import re
from dataclasses import dataclass

from flows.text import sms_text
from storage.records import OutgoingReply

RLM = "\u200f"  # RIGHT-TO-LEFT MARK
LRM = "\u200e"  # LEFT-TO-RIGHT MARK
# A phone number's groups ("1-888-373-7888", "22 628 01 20", "+7 925 115 50 47"): inside
# right-to-left text the bidi algorithm lays the groups out right to left unless the number is
# held between left-to-right marks.
_NUMBER = re.compile(r"(?<![\w+])\+?\d+(?:[ \-]\d+)+(?!\w)")


@dataclass(frozen=True)
class Rendered:
    text: str
    choices: tuple[tuple[str, str], ...]  # buttons: (id, label)
    rtl: bool


def render_sms(reply: OutgoingReply) -> Rendered:
    """Plain text with numbered choices: any handset shows it. Long content goes in its short
    version. No direction marks: Arabic phones lay out Arabic text by themselves, and old
    handsets show the marks as boxes."""
    lines = [reply.short if reply.short is not None else reply.text]
    options = reply.short_options if reply.short_options is not None else reply.options
    if options:
        lines.append("\n".join(f"{i}. {label}" for i, (_, label) in enumerate(options, 1)))
    return Rendered(sms_text("\n\n".join(lines)), (), reply.rtl)


def render_telegram(reply: OutgoingReply) -> Rendered:
    """Text with buttons. A right-to-left reply starts each line with a right-to-left mark so
    that a line opening with a number or a Latin word still lays out right to left, and holds
    each phone number between left-to-right marks so that its groups keep their order."""
    text = reply.text
    if reply.rtl:
        text = _NUMBER.sub(lambda m: f"{LRM}{m.group(0)}{LRM}", text)
        text = "\n".join(RLM + line if line else line for line in text.split("\n"))
    return Rendered(text, reply.options, reply.rtl)


def split_text(text: str, limit: int) -> list[str]:
    """Split a text too long for one message at the last paragraph break, else line break,
    else space, that leaves the part at least half full; a run with none of them is cut hard."""
    parts: list[str] = []
    rest = text
    while len(rest) > limit:
        window = rest[:limit]
        cut = next((at for at in (window.rfind(sep) for sep in ("\n\n", "\n", " "))
                    if at >= limit // 2), limit)
        parts.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip("\n ")
    parts.append(rest)
    return [p for p in parts if p] or [""]


RENDERERS = {"sms": render_sms, "telegram": render_telegram}
