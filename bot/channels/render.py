"""Rendering a channel-neutral reply the way a channel shows it."""

from __future__ import annotations

from dataclasses import dataclass

from storage.records import OutgoingReply

RLM = "\u200f"  # RIGHT-TO-LEFT MARK


@dataclass(frozen=True)
class Rendered:
    text: str
    choices: tuple[tuple[str, str], ...]  # buttons: (id, label)
    rtl: bool


def render_sms(reply: OutgoingReply) -> Rendered:
    """Plain text with numbered choices: any handset shows it. No direction marks: Arabic
    phones lay out Arabic text by themselves, and old handsets show the marks as boxes."""
    lines = [reply.text]
    if reply.options:
        lines.append("\n".join(f"{i}. {label}" for i, (_, label) in enumerate(reply.options, 1)))
    return Rendered("\n\n".join(lines), (), reply.rtl)


def render_telegram(reply: OutgoingReply) -> Rendered:
    """Text with buttons. A right-to-left reply starts each line with a right-to-left mark so
    that a line opening with a number or a Latin word still lays out right to left."""
    text = reply.text
    if reply.rtl:
        text = "\n".join(RLM + line if line else line for line in text.split("\n"))
    return Rendered(text, reply.options, reply.rtl)


RENDERERS = {"sms": render_sms, "telegram": render_telegram}
