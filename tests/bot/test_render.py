"""How replies are drawn per channel: numbers in right-to-left text, SMS-friendly punctuation,
choices offered only on SMS."""

from __future__ import annotations

from bot.channels.render import LRM, RLM, render_sms, render_telegram
from flows.text import sms_segments
from storage.records import OutgoingReply


def test_phone_numbers_keep_their_order_in_right_to_left_text() -> None:
    reply = OutgoingReply(text="اتصل على 1-888-373-7888 أو 22 628 01 20 خلال 5 سنوات", rtl=True)
    text = render_telegram(reply).text
    assert text.startswith(RLM)
    assert f"{LRM}1-888-373-7888{LRM}" in text and f"{LRM}22 628 01 20{LRM}" in text
    assert f"{LRM}5" not in text  # a lone number needs nothing
    # Left-to-right text and SMS get no marks (old handsets show them as boxes).
    assert LRM not in render_telegram(OutgoingReply(text="call 1-888-373-7888")).text
    assert LRM not in render_sms(reply).text


def test_sms_sends_typographic_punctuation_as_gsm_look_alikes() -> None:
    reply = OutgoingReply(text="Call 112 — it’s free • “now”")
    text = render_sms(reply).text
    assert text == "Call 112 - it's free - \"now\""
    assert sms_segments(text) == 1


def test_sms_only_choices_appear_in_sms_alone() -> None:
    reply = OutgoingReply(text="Full", short="Short", options=(("topic", "Another topic"),),
                          short_options=(("full", "Full text (3 SMS)"), ("topic", "Another topic")))
    assert render_sms(reply).text == "Short\n\n1. Full text (3 SMS)\n2. Another topic"
    assert render_telegram(reply).choices == (("topic", "Another topic"),)
    assert OutgoingReply.from_json(reply.to_json()) == reply  # as the outbox stores it
