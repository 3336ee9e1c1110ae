"""`/metrics`: the counters the engine and the sender feed, and the outbox read at scrape time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select, update

from bot.metrics import Metrics
from bot.services import Services
from flows.engine import Inbound
from storage.models import OutboxItem
from storage.stats import OutboxStats, outbox_stats
from tests.conftest import Phone


def samples(exposition: bytes | str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample by (name, sorted labels); parsing it is what Prometheus would do."""
    text = exposition.decode() if isinstance(exposition, bytes) else exposition
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_turns_count_inbound_messages_and_time_only_real_turns() -> None:
    metrics = Metrics()
    metrics.turn("sms", 0.004, "ok")
    metrics.turn("sms", 0.0001, "duplicate")
    metrics.turn("sms", 3.0, "step_error")
    metrics.turn("telegram", 0.02, "ok")
    seen = samples(metrics.render(None))
    assert seen[("hotline_inbound_messages_total", (("channel", "sms"),))] == 3
    assert seen[("hotline_turns_total", (("channel", "sms"), ("outcome", "ok")))] == 1
    assert seen[("hotline_turns_total", (("channel", "sms"), ("outcome", "step_error")))] == 1
    assert ("hotline_turns_total", (("channel", "sms"), ("outcome", "duplicate"))) not in seen
    assert seen[("hotline_turn_seconds_count", (("channel", "sms"),))] == 2  # not the duplicate
    assert seen[("hotline_turn_seconds_bucket", (("channel", "sms"), ("le", "0.005")))] == 1
    assert seen[("hotline_turn_seconds_bucket", (("channel", "sms"), ("le", "2.5")))] == 1
    assert seen[("hotline_turn_seconds_bucket", (("channel", "sms"), ("le", "5.0")))] == 2
    assert seen[("hotline_turn_seconds_count", (("channel", "telegram"),))] == 1


def test_sends_rate_limits_pauses_and_resends() -> None:
    metrics = Metrics()
    for result in ("sent", "sent", "retry", "failed", "cancelled"):
        metrics.send("telegram", result)
    metrics.rate_limited("telegram")
    metrics.pause("telegram_chat")
    metrics.pause("telegram_chat")
    metrics.resend("sms", 3)
    metrics.resend("sms")
    seen = samples(metrics.render(None))
    assert seen[("hotline_sends_total", (("channel", "telegram"), ("result", "sent")))] == 2
    for result in ("retry", "failed", "cancelled"):
        assert seen[("hotline_sends_total", (("channel", "telegram"), ("result", result)))] == 1
    assert seen[("hotline_rate_limited_total", (("channel", "telegram"),))] == 1
    assert seen[("hotline_pauses_total", (("scope", "telegram_chat"),))] == 2
    assert seen[("hotline_resends_total", (("channel", "sms"),))] == 4


def test_each_instance_counts_for_itself() -> None:
    """Tests build several Services in one process: the global registry would mix them (and
    refuse the second set of names)."""
    first, second = Metrics(), Metrics()
    first.send("sms", "sent")
    assert ("hotline_sends_total", (("channel", "sms"), ("result", "sent"))) in samples(
        first.render(None))
    assert ("hotline_sends_total", (("channel", "sms"), ("result", "sent"))) not in samples(
        second.render(None))


def test_outbox_gauges_only_with_stats() -> None:
    stats = OutboxStats({("sms", "queued"): 2, ("sms", "failed"): 1}, {"sms": 42.5})
    with_stats = samples(Metrics().render(stats))
    assert with_stats[("hotline_outbox_messages", (("channel", "sms"), ("status", "queued")))] == 2
    assert with_stats[("hotline_outbox_oldest_queued_seconds", (("channel", "sms"),))] == 42.5
    # Without the database the gauges are missing, not a misleading zero.
    assert not any(name.startswith("hotline_outbox") for name, _ in samples(Metrics().render(None)))


async def queue_for_telegram(services: Services, people: int) -> None:
    """No Telegram client here: these replies stay queued."""
    for n in range(people):
        await services.engine.handle(Inbound("telegram", str(100 + n), text="hi",
                                             message_id=f"m{n}"))


async def test_outbox_stats_count_what_is_still_to_do(services: Services, phone: Phone) -> None:
    assert await phone.send("hello") and await phone.send("1")  # delivered at once
    await queue_for_telegram(services, 4)
    async with services.db.begin() as conn:  # one taken by a sender, one given up on
        ids = (await conn.execute(select(OutboxItem.id).order_by(OutboxItem.id.desc())
                                  .limit(2))).scalars().all()
        await conn.execute(update(OutboxItem).where(OutboxItem.id == ids[0])
                           .values(status="sending"))
        await conn.execute(update(OutboxItem).where(OutboxItem.id == ids[1])
                           .values(status="failed"))
    later = datetime.now(UTC) + timedelta(minutes=5)
    stats = await outbox_stats(services.db, later)
    assert stats.rows == {("telegram", "queued"): 2, ("telegram", "sending"): 1,
                          ("telegram", "failed"): 1}  # the simulator's sent rows: history
    assert 300 <= stats.oldest_queued_seconds["telegram"] < 3600
    async with services.db.begin() as conn:
        await conn.execute(update(OutboxItem).where(OutboxItem.status == "queued")
                           .values(status="sent"))
    stats = await outbox_stats(services.db, later)
    assert stats.rows[("telegram", "queued")] == 0  # shown as zero, not left out
    assert stats.oldest_queued_seconds == {"telegram": 0}


async def test_the_metrics_endpoint_shows_the_outbox(services: Services, phone: Phone,
                                                     client: TestClient) -> None:
    await phone.say("hello")
    await queue_for_telegram(services, 1)
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    seen = samples(await response.text())
    assert seen[("hotline_outbox_messages", (("channel", "telegram"), ("status", "queued")))] == 1
    assert seen[("hotline_outbox_messages", (("channel", "telegram"), ("status", "failed")))] == 0
    assert seen[("hotline_outbox_oldest_queued_seconds", (("channel", "telegram"),))] >= 0
    # The simulator delivered its reply in the exchange: nothing of it is waiting.
    assert not any(dict(labels).get("channel") == "simulator"
                   for name, labels in seen if name.startswith("hotline_outbox"))


async def test_the_engine_counts_each_turn_it_runs(phone: Phone, client: TestClient) -> None:
    await phone.send("hello", message_id="a")
    await phone.send("hello", message_id="a")  # redelivered: acknowledged, not run again
    await phone.send("1", message_id="b")
    seen = samples(await (await client.get("/metrics")).text())
    channel = (("channel", "simulator"),)
    assert seen[("hotline_inbound_messages_total", channel)] == 3
    assert seen[("hotline_turns_total", (*channel, ("outcome", "ok")))] == 2
    assert seen[("hotline_turn_seconds_count", channel)] == 2
