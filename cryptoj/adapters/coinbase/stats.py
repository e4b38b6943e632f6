"""Latency statistics for the feed (pure): last, EWMA, max and quantiles of recent samples."""

from __future__ import annotations

from collections import deque


class LatencyStats:
    """Summary of a stream of durations in ns (round trips, exchange-to-receive lags)."""

    def __init__(self, reservoir: int = 1024, alpha: float = 0.05) -> None:
        self.samples: deque[int] = deque(maxlen=reservoir)
        self.alpha = alpha
        self.count = 0
        self.last_ns = 0
        self.max_ns = 0
        self.ewma_ns = 0.0

    def add(self, ns: int) -> None:
        """Record one duration (negative values, from clock skew, are kept as they are)."""
        self.count += 1
        self.last_ns = ns
        if ns > self.max_ns:
            self.max_ns = ns
        self.ewma_ns = ns if self.count == 1 else self.ewma_ns + self.alpha * (ns - self.ewma_ns)
        self.samples.append(ns)

    def quantile(self, q: float) -> int | None:
        """The ``q`` quantile (0..1) of the recent samples, None when there are none."""
        if not self.samples:
            return None
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def as_dict(self) -> dict[str, float | int | None]:
        """Seconds, for the status output and the metrics."""
        p50, p99 = self.quantile(0.5), self.quantile(0.99)
        return {
            "count": self.count,
            "last_s": self.last_ns / 1e9 if self.count else None,
            "ewma_s": self.ewma_ns / 1e9 if self.count else None,
            "max_s": self.max_ns / 1e9 if self.count else None,
            "p50_s": p50 / 1e9 if p50 is not None else None,
            "p99_s": p99 / 1e9 if p99 is not None else None,
        }
