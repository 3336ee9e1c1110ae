"""What `/metrics` shows, in Prometheus' text format: counters the engine and the sender feed as
they work, and gauges of the outbox read from the database when Prometheus scrapes.

Labels are coarse kinds (a channel, a status, a scope kind), never a chat id, an address or a
hash of one: each label value is a time series of its own and would also leak who wrote."""

from __future__ import annotations

from collections.abc import Iterator

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from storage.stats import OutboxStats

# What generate_latest writes; prometheus_client's own CONTENT_TYPE_LATEST now names 1.0.0.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# From a turn on an idle SQLite (about a millisecond) to one queued behind a busy database.
TURN_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# Counters would each carry a `_created` series too: noise for an operator, twice the lines.
prometheus_client.disable_created_metrics()


class Metrics:
    """One per process (a test builds several: each has its own registry, never the global
    one)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._inbound = Counter("hotline_inbound_messages", "Inbound messages handed to the "
                                "engine, duplicates included", ["channel"], registry=r)
        self._turns = Counter("hotline_turns", "Turns the engine ran, by outcome (ok, "
                              "step_error)", ["channel", "outcome"], registry=r)
        self._turn_seconds = Histogram("hotline_turn_seconds", "Time to handle one inbound "
                                       "message, duplicates excluded", ["channel"],
                                       buckets=TURN_BUCKETS, registry=r)
        self._sends = Counter("hotline_sends", "Send attempts by result (sent, retry, failed, "
                              "cancelled)", ["channel", "result"], registry=r)
        self._rate_limited = Counter("hotline_rate_limited", "429 answers from a provider",
                                     ["channel"], registry=r)
        self._pauses = Counter("hotline_pauses", "Pauses of a rate-limit scope ordered by a "
                               "provider", ["scope"], registry=r)
        self._resends = Counter("hotline_resends", "Messages sent again after a lease ran out "
                                "(each may have reached the person twice)", ["channel"],
                                registry=r)

    def turn(self, channel: str, seconds: float, outcome: str) -> None:
        self._inbound.labels(channel).inc()
        if outcome == "duplicate":
            return
        self._turns.labels(channel, outcome).inc()
        self._turn_seconds.labels(channel).observe(seconds)

    def send(self, channel: str, result: str) -> None:
        self._sends.labels(channel, result).inc()

    def rate_limited(self, channel: str) -> None:
        self._rate_limited.labels(channel).inc()

    def pause(self, scope_kind: str) -> None:
        self._pauses.labels(scope_kind).inc()

    def resend(self, channel: str, count: int = 1) -> None:
        self._resends.labels(channel).inc(count)

    def render(self, stats: OutboxStats | None) -> bytes:
        """The exposition; without `stats` (the database did not answer) the outbox gauges are
        left out rather than shown as zero."""
        text = generate_latest(self.registry)
        if stats is None:
            return text
        scrape = CollectorRegistry(auto_describe=False)
        scrape.register(_OutboxCollector(stats))
        return text + generate_latest(scrape)


class _OutboxCollector(Collector):
    def __init__(self, stats: OutboxStats) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily("hotline_outbox_messages", "Outbox rows queued, being sent "
                                  "or failed, by channel", labels=["channel", "status"])
        for (channel, status), rows in sorted(self._stats.rows.items()):
            depth.add_metric([channel, status], rows)
        yield depth
        oldest = GaugeMetricFamily("hotline_outbox_oldest_queued_seconds", "Age of the oldest "
                                   "queued outbox row (0 when none is queued)",
                                   labels=["channel"])
        for channel, seconds in sorted(self._stats.oldest_queued_seconds.items()):
            oldest.add_metric([channel], seconds)
        yield oldest
