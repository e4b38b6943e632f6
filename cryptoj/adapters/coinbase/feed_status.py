"""The parts of :meth:`CoinbaseFeed.status <.manager.CoinbaseFeed.status>` built from plain
data (one connection's row, the circuits, the frame buffer, the worst latencies) and the flat
:meth:`~.manager.CoinbaseFeed.metrics` derived from a status (pure: no threads, no locks)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from cryptoj.adapters.coinbase.actions import COUNTERS
from cryptoj.adapters.coinbase.buffer import RawFrameBuffer
from cryptoj.adapters.coinbase.circuit import OPEN, CircuitBreaker
from cryptoj.adapters.coinbase.connection import FeedConnection

#: The session counters summed over the connections in ``status()["totals"]``.
TOTALS = (*COUNTERS, "reordered", "dropped_old")


def connection_row(
    c: FeedConnection,
    snap: dict[str, Any],
    fresh: bool,
    *,
    primary: str,
    current: dict[str, Any] | None,
    degraded: bool,
) -> dict[str, Any]:
    """One connection's entry in ``status()["connections"]``: its thread and reconnect policy,
    its state history entry ``current`` and its session ``snap`` (taken on its own thread when
    ``fresh``, else the last one it published)."""
    return {
        "name": c.session.name,
        "products": list(c.session.products),
        "url": c.url,
        "live_url": c.live_url,
        "on_failover_host": c.live_url is not None and c.live_url != primary,
        "attempts": c.policy.attempts,
        "consecutive_failures": c.policy.failures,
        "connections_live": c.lives,
        "thread_alive": c.is_alive(),
        "thread_crashes": c.crashes,
        "degraded": degraded,
        "current": current,
        "snapshot_current": fresh,
        **snap,
    }


def circuit_rows(breakers: Mapping[str, CircuitBreaker]) -> dict[str, dict[str, Any]]:
    """Each websocket host's circuit breaker (call under the lock that guards them)."""
    return {
        url: {
            "state": b.state,
            "failures": b.failures,
            "times_opened": b.times_opened,
            "retry_at": b.retry_at() if b.state == OPEN else None,
        }
        for url, b in breakers.items()
    }


def buffer_row(buffer: RawFrameBuffer | None) -> dict[str, Any] | None:
    """The raw frame buffer's directory and size (None without one)."""
    if buffer is None:
        return None
    return {"dir": str(buffer.directory), "frames": buffer.frames, "bytes": buffer.bytes}


def sum_dicts(dicts: Iterable[dict[str, Any]]) -> dict[str, int]:
    """The values of each key added up over ``dicts``."""
    out: dict[str, int] = {}
    for d in dicts:
        for k, v in d.items():
            out[k] = out.get(k, 0) + int(v)
    return out


def worst_latency(conns: list[dict[str, Any]], kind: str) -> dict[str, float | int | None]:
    """The worst connection's value of each latency figure, and the sample count of all."""
    out: dict[str, float | int | None] = {"count": sum(int(c[kind]["count"]) for c in conns)}
    for stat in ("last_s", "ewma_s", "p50_s", "p99_s", "max_s"):
        values = [float(c[kind][stat]) for c in conns if c[kind][stat] is not None]
        out[stat] = max(values) if values else None
    return out


def flat_metrics(st: dict[str, Any]) -> dict[str, float]:
    """Flat numbers (``cryptoj_feed_<name>``) from a feed status."""
    out: dict[str, float] = {f"{k}_total": float(v) for k, v in st["totals"].items()}
    out["up"] = 1.0 if st["connected"] else 0.0
    out["reconnects_total"] = float(st["reconnects"])
    out["degraded_connections"] = float(len(st["degraded"]))
    out["circuits_open"] = float(sum(1 for c in st["circuits"].values() if c["state"] == OPEN))
    for key in (
        "conflated",
        "merged_trades",
        "delivered",
        "callback_errors",
        "rest_polls",
        "rest_failures",
        "backfilled",
        "pending",
    ):
        out[f"delivery_{key}"] = float(st["delivery"][key])
    for kind, worst in st["latency"].items():
        for stat in ("last_s", "p50_s", "p99_s", "max_s"):
            if worst[stat] is not None:
                out[f"{kind}_{stat[:-2]}_seconds"] = float(worst[stat])
    return out
