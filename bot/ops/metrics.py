"""Prometheus metrics of a running daemon, in a private registry served at ``/metrics``.

Nothing here runs on the decision path. The gauges and counters are read at scrape time from
what the engine already holds in memory (the account's equity, each lane's position and book,
the engine's counters, the store's latest order statuses, the exchange clients' error counts);
the decision-latency histogram is fed once a second from the tick-to-decision times the daemon
appended to a list.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from bot.engine.observer import DaemonView

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# tick-to-decision is tens of microseconds to a few milliseconds (benchmarks/bench_latency.py)
LATENCY_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


def exchange_errors(view: "DaemonView") -> dict[str, int]:
    """Failed exchange calls by kind (exception class), and answers that failed validation."""
    out: Counter[str] = Counter()
    seen: set[int] = set()
    for lane in view.lanes:
        if id(lane.client) not in seen:
            seen.add(id(lane.client))
            out.update(getattr(lane.client, "errors", {}))
        faults = int(getattr(lane.venue, "faults", 0) or 0)
        if faults:
            out["invalid_answer"] += faults
    return dict(out)


def order_statuses(view: "DaemonView") -> dict[str, int]:
    """This run's orders by their latest status, as recorded (in memory) by the store."""
    counts = getattr(view.engine.lanes[0].store, "order_counts", None)
    return counts.of(view.run_id) if counts is not None else {}


class DaemonCollector(Collector):
    """Reads the daemon's in-memory state when Prometheus scrapes."""

    def __init__(self, view: "DaemonView"):
        self.view = view

    def collect(self) -> Any:
        view = self.view
        engine = view.engine
        now = time.time_ns()
        equity = engine.account.equity()
        g = GaugeMetricFamily("bot_equity", "account equity in the settle currency (positions at the last mid)")
        g.add_metric([], equity)
        yield g
        g = GaugeMetricFamily("bot_pnl", "equity minus this run's initial equity")
        g.add_metric([], equity - view.initial_equity)
        yield g
        pos = GaugeMetricFamily("bot_position", "position per instrument (base units, contracts on derivatives)", labels=["instrument"])
        age = GaugeMetricFamily("bot_book_age_seconds", "seconds since the last book update", labels=["instrument"])
        mid = GaugeMetricFamily("bot_mid_price", "last mid price", labels=["instrument"])
        sound = GaugeMetricFamily("bot_book_sound", "1 when the book is sound (tradable)", labels=["instrument"])
        score = GaugeMetricFamily("bot_signal_score", "the signal score in [-1, 1] of the last book update", labels=["instrument"])
        open_orders = GaugeMetricFamily("bot_open_orders", "orders in flight or resting", labels=["instrument"])
        fills = CounterMetricFamily("bot_fills", "fills booked this run", labels=["instrument"])
        decisions = CounterMetricFamily("bot_decisions", "decisions taken this run", labels=["instrument"])
        for lane in view.lanes:
            e = lane.engine
            if e is None:
                continue
            sym = lane.symbol
            pos.add_metric([sym], float(e.portfolio.qty))
            book = e.book
            age.add_metric([sym], book.age_ns(now) / 1e9 if book.last_update_ts else float("nan"))
            mid.add_metric([sym], e.last_mid)
            sound.add_metric([sym], 1.0 if book.is_sound else 0.0)
            score.add_metric([sym], float(getattr(e.signals.state, "score", float("nan"))))
            open_orders.add_metric([sym], len(getattr(lane.venue, "_inflight", {}) or {}))
            fills.add_metric([sym], e.stats.fills)
            decisions.add_metric([sym], e.stats.decisions)
        yield from (pos, age, mid, sound, score, open_orders, fills, decisions)
        orders = CounterMetricFamily("bot_orders", "this run's orders by latest status; rejected_by_risk never reached the venue", labels=["status"])
        for status, n in sorted(order_statuses(view).items()):
            orders.add_metric([status], n)
        orders.add_metric(["rejected_by_risk"], sum(e.stats.rejects for e in engine.lanes))
        yield orders
        halt = engine.limits.halt
        h = GaugeMetricFamily("bot_halted", "1 while a halt (or the kill switch) is in force", labels=["rule"])
        h.add_metric([halt.rule if halt is not None else ""], 1.0 if halt is not None else 0.0)
        yield h
        p = GaugeMetricFamily("bot_entries_paused", "1 while the operator has paused entries")
        p.add_metric([], 1.0 if engine.limits.paused else 0.0)
        yield p
        err = CounterMetricFamily("bot_exchange_errors", "failed exchange calls by kind (retried or not)", labels=["kind"])
        for kind, n in sorted(exchange_errors(view).items()):
            err.add_metric([kind], n)
        yield err


class Metrics:
    """The daemon's registry: its collector and the decision-latency histogram."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.latency = Histogram("bot_decision_latency_seconds", "market event received to the engine's decision returned",
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.latencies: list[int] = []
        self._collector: DaemonCollector | None = None

    def attach(self, view: "DaemonView") -> None:
        self._collector = DaemonCollector(view)
        self.registry.register(self._collector)

    def drain(self) -> None:
        """Move the latencies the daemon appended into the histogram (once a second)."""
        batch, self.latencies[:] = self.latencies[:], []
        observe = self.latency.observe
        for ns in batch:
            observe(ns / 1e9)

    def render(self) -> bytes:
        return generate_latest(self.registry)
