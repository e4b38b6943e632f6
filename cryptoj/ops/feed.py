"""The market-data feed in the operations output: ``/status``, ``/health`` and ``/metrics``.

The replay feed is described by what the runtime's tap saw (the FeedActor's lifecycle and the
``FeedStatus`` messages). A live feed (:class:`~cryptoj.adapters.coinbase.CoinbaseFeed`) also
reports its own figures through ``status()``, which is safe to call from any thread (each
connection's figures are read on that connection's thread): connection-state history,
reconnects, gaps, resyncs, stale products, circuit breakers, the host each connection uses,
REST-polling failover, heartbeat age and the round-trip and exchange-to-receive latencies.
:func:`live_view` merges the two into the ``feed`` section of ``/status``;
:func:`live_families` turns it into Prometheus families (``docs/operations.md`` lists them).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Protocol

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

#: Every state ``status()["feed"]["state"]`` can take (replay and live).
FEED_STATES = (
    "healthy",
    "stale",
    "degraded",
    "connecting",
    "restarting",
    "finished",
    "stopped",
    "down",
)
#: Connection states of a live feed's history (``docs/coinbase-feed.md``).
CONNECTION_STATES = (
    "connecting",
    "subscribing",
    "live",
    "disconnected",
    "failed",
    "backoff",
    "circuit_open",
    "degraded",
    "gave_up",
    "crashed",
    "stopped",
)
CIRCUIT_STATES = ("closed", "open", "half_open")
HISTORY_KEPT = 200


class LiveFeed(Protocol):
    """What the ops layer reads from a live feed (any thread)."""

    def status(self, timeout_s: float = 0.5) -> dict[str, Any]:
        """The feed's whole status as plain data."""
        ...

    def state(self, timeout_s: float = 0.5) -> str:
        """``healthy``, ``stale``, ``degraded``, ``connecting`` or ``stopped``."""
        ...


def merged_history(
    tap: Iterable[dict[str, Any]], connections: Iterable[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The FeedActor's events and the connections' state changes, oldest first.

    Every entry has ``wall`` (epoch seconds), ``event`` and ``detail``; a connection's entry
    also ``connection``, ``state``, ``reason`` and ``ts`` (ns).
    """
    out = [{**e, "source": "actor"} for e in tap]
    for h in connections:
        out.append(
            {
                "wall": h["ts"] / 1e9,
                "ts": h["ts"],
                "event": h["state"],
                "detail": f"{h['connection']}: {h['reason']}".rstrip(": "),
                "source": "connection",
                "connection": h["connection"],
                "state": h["state"],
                "reason": h["reason"],
            }
        )
    out.sort(key=lambda e: e["wall"])
    return out[-HISTORY_KEPT:]


def live_view(base: dict[str, Any], st: dict[str, Any], actor_alive: bool) -> dict[str, Any]:
    """The ``feed`` section of ``/status`` for a live feed.

    ``base`` is the tap-derived section (source, last event, the FeedActor's history); ``st``
    the feed's ``status()``. The full feed status (per connection counters, latencies with
    histogram buckets, delivery, buffer) is kept under ``detail``, without its history (that
    is merged into ``history``).
    """
    lag = st["latency"]["lag"]
    return {
        **base,
        "state": st["state"] if actor_alive else "down",
        "connected": st["connected"],
        "messages": st["delivery"]["delivered"],
        "frames": st["messages"],
        "reconnects": st["reconnects"],
        "gaps": st["gaps"],
        "missing": st["totals"]["missing"],
        "resyncs": st["resyncs"],
        "stale_products": st["stale_products"],
        "dropped": st["dropped"],
        "thread_crashes": st["thread_crashes"],
        "restarting": st["restarting"],
        "heartbeat_age_s": st["heartbeat_age_s"],
        "latency_s": lag["p50_s"] if lag["p50_s"] is not None else 0.0,
        "latency": st["latency"],
        "circuits": st["circuits"],
        "hosts": [
            {
                "connection": c["name"],
                "url": c["url"],
                "live": c["live"],
                "on_failover_host": c["on_failover_host"],
                "degraded": c["degraded"],
                "state": None if c["current"] is None else c["current"]["state"],
            }
            for c in st["connections"]
        ],
        "rest_polling": st["rest_polling"],
        "degraded": st["degraded"],
        "history": merged_history(base["history"], st["history"]),
        "detail": {k: v for k, v in st.items() if k != "history"},
    }


def _gauge(name: str, doc: str, labels: Iterable[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=list(labels))


def _counter(name: str, doc: str, labels: Iterable[str]) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, labels=list(labels))


def live_families(feed: dict[str, Any]) -> Iterator[Metric]:
    """Prometheus families of a live feed (``feed`` is :func:`live_view`'s output).

    The families every feed has (``cryptoj_feed_up``, ``_state``, ``_messages``,
    ``_reconnects``, ``_gaps``, ``_latency_seconds``) are built by the daemon collector.
    """
    st = feed["detail"]
    lbl = [feed["source"]]
    totals, delivery = st["totals"], st["delivery"]
    for name, doc, value in (
        ("cryptoj_feed_frames", "Websocket frames received", totals["frames"]),
        ("cryptoj_feed_received_bytes", "Websocket payload bytes received", totals["bytes"]),
        ("cryptoj_feed_resyncs", "Resubscriptions for a fresh snapshot (gap, silence, bad frame)",
         totals["resyncs"]),
        ("cryptoj_feed_missing_messages", "Sequence numbers lost in gaps", totals["missing"]),
        ("cryptoj_feed_heartbeat_timeouts", "Connections closed for heartbeat silence",
         totals["heartbeat_timeouts"]),
        ("cryptoj_feed_stale_events", "Times products went stale", totals["stale_events"]),
        ("cryptoj_feed_recoveries", "Times stale products recovered (fresh snapshot)",
         totals["recoveries"]),
        ("cryptoj_feed_frames_malformed", "Frames that failed to parse", totals["malformed"]),
        ("cryptoj_feed_error_frames", "Error frames sent by the exchange", totals["errors"]),
        ("cryptoj_feed_reordered", "Frames put back in sequence order", totals["reordered"]),
        ("cryptoj_feed_dropped_old", "Duplicate or late frames dropped", totals["dropped_old"]),
        ("cryptoj_feed_events_delivered", "Quotes, trades and statuses handed to the daemon",
         delivery["delivered"]),
        ("cryptoj_feed_quotes_conflated", "Quotes replaced by a newer one before delivery",
         delivery["conflated"]),
        ("cryptoj_feed_callback_errors", "Events whose delivery callback raised",
         delivery["callback_errors"]),
        ("cryptoj_feed_rest_polls", "Best bid/ask polls over REST while degraded",
         delivery["rest_polls"]),
        ("cryptoj_feed_rest_failures", "Failed REST polls", delivery["rest_failures"]),
        ("cryptoj_feed_trades_backfilled", "Missed trades fetched over REST",
         delivery["backfilled"]),
        ("cryptoj_feed_thread_crashes", "Connection threads that raised and were restarted",
         st["thread_crashes"]),
    ):  # fmt: skip
        c = _counter(name, doc, ["feed"])
        c.add_metric(lbl, value)
        yield c
    dropped = _counter(
        "cryptoj_feed_frames_dropped",
        "Frames (or one product's part of one) dropped at the boundary, by reason",
        ["feed", "reason"],
    )
    for reason, n in sorted(st["dropped"].items()):
        dropped.add_metric([*lbl, reason], n)
    yield dropped
    for name, doc, value in (
        ("cryptoj_feed_stale_products", "Products currently stale (no new entries)",
         len(feed["stale_products"])),
        ("cryptoj_feed_degraded_connections", "Connections with no websocket host: their "
         "products are polled over REST", len(feed["degraded"])),
        ("cryptoj_feed_rest_polling", "1 while some products are polled over REST (failover)",
         1 if feed["rest_polling"] else 0),
        ("cryptoj_feed_delivery_pending", "Events waiting for the delivery thread",
         delivery["pending"]),
    ):  # fmt: skip
        g = _gauge(name, doc, ["feed"])
        g.add_metric(lbl, value)
        yield g
    yield from _connections(lbl, st)
    yield from _circuits(lbl, st)
    yield from _latency(lbl, st)


def _connections(lbl: list[str], st: dict[str, Any]) -> Iterator[Metric]:
    cstate = _gauge(
        "cryptoj_feed_connection_state",
        "1 for each connection's current state (connection-state history)",
        ["feed", "connection", "state"],
    )
    host = _gauge(
        "cryptoj_feed_connection_host",
        "1 for the websocket host each connection uses or last tried",
        ["feed", "connection", "host"],
    )
    failover = _gauge(
        "cryptoj_feed_connection_on_failover_host",
        "1 when the connection is live on a host other than the primary",
        ["feed", "connection"],
    )
    attempts = _counter(
        "cryptoj_feed_connection_attempts", "Connection attempts", ["feed", "connection"]
    )
    lives = _counter(
        "cryptoj_feed_connection_established",
        "Connections that got every subscription acknowledged",
        ["feed", "connection"],
    )
    age = _gauge(
        "cryptoj_feed_heartbeat_age_seconds",
        "Seconds since the last heartbeat of a live connection",
        ["feed", "connection"],
    )
    for c in st["connections"]:
        name = [*lbl, c["name"]]
        now = None if c["current"] is None else c["current"]["state"]
        for s in CONNECTION_STATES:
            cstate.add_metric([*name, s], 1 if s == now else 0)
        if c["url"] is not None:
            host.add_metric([*name, c["url"]], 1)
        failover.add_metric(name, 1 if c["on_failover_host"] else 0)
        attempts.add_metric(name, c["attempts"])
        lives.add_metric(name, c["connections_live"])
        if c["heartbeat_age_s"] is not None:
            age.add_metric(name, c["heartbeat_age_s"])
    changes = _counter(
        "cryptoj_feed_state_changes",
        "Connection state changes by the state entered (connection-state history)",
        ["feed", "state"],
    )
    for s in CONNECTION_STATES:
        changes.add_metric([*lbl, s], st["state_counts"].get(s, 0))
    yield from (cstate, host, failover, attempts, lives, age, changes)


def _circuits(lbl: list[str], st: dict[str, Any]) -> Iterator[Metric]:
    state = _gauge(
        "cryptoj_feed_circuit_state",
        "1 for each websocket host's circuit breaker state",
        ["feed", "host", "state"],
    )
    opened = _counter(
        "cryptoj_feed_circuit_opened", "Times a host's circuit breaker opened", ["feed", "host"]
    )
    failures = _gauge(
        "cryptoj_feed_circuit_failures",
        "Consecutive failed attempts counted by a host's circuit breaker",
        ["feed", "host"],
    )
    for url, c in st["circuits"].items():
        for s in CIRCUIT_STATES:
            state.add_metric([*lbl, url, s], 1 if c["state"] == s else 0)
        opened.add_metric([*lbl, url], c["times_opened"])
        failures.add_metric([*lbl, url], c["failures"])
    yield from (state, opened, failures)


LATENCY = {
    "rtt": "Websocket ping round trip",
    "lag": "Exchange timestamp to receive time of each frame (includes clock offset)",
}


def _latency(lbl: list[str], st: dict[str, Any]) -> Iterator[Metric]:
    for kind, what in LATENCY.items():
        hist = HistogramMetricFamily(
            f"cryptoj_feed_{kind}_seconds", f"{what}, seconds", labels=["feed", "connection"]
        )
        recent = _gauge(
            f"cryptoj_feed_{kind}_recent_seconds",
            f"{what} over the last samples (up to 1,024 per connection): stat p50, p99, max "
            "(since start) and last",
            ["feed", "connection", "stat"],
        )
        for c in st["connections"]:
            figures = c[kind]
            name = [*lbl, c["name"]]
            hist.add_metric(name, list(figures["buckets"].items()), figures["sum_s"])
            for stat in ("p50", "p99", "max", "last"):
                value = figures[f"{stat}_s"]
                if value is not None:
                    recent.add_metric([*name, stat], value)
        yield from (hist, recent)


__all__ = [
    "CONNECTION_STATES",
    "FEED_STATES",
    "LiveFeed",
    "live_families",
    "live_view",
    "merged_history",
]
