"""Latency statistics for the feed (pure): last, EWMA, max, quantiles of recent samples and
cumulative histogram buckets (for Prometheus)."""

from __future__ import annotations

from bisect import bisect_left
from collections import deque

#: Upper bounds (seconds) of the latency histogram buckets; a last ``+Inf`` bucket is implied.
BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BUCKETS_NS = tuple(int(b * 1e9) for b in BUCKETS_S)
_LE = (*(repr(b) for b in BUCKETS_S), "+Inf")


class LatencyStats:
    """Summary of a stream of durations in ns (round trips, exchange-to-receive lags)."""

    def __init__(self, reservoir: int = 1024, alpha: float = 0.05) -> None:
        self.samples: deque[int] = deque(maxlen=reservoir)
        self.alpha = alpha
        self.count = 0
        self.last_ns = 0
        self.max_ns = 0
        self.sum_ns = 0
        self.ewma_ns = 0.0
        self.bucket_counts = [0] * (len(_BUCKETS_NS) + 1)  # per bucket, not cumulative

    def add(self, ns: int) -> None:
        """Record one duration (negative values, from clock skew, are kept as they are)."""
        self.count += 1
        self.last_ns = ns
        self.sum_ns += ns
        if ns > self.max_ns:
            self.max_ns = ns
        self.ewma_ns = ns if self.count == 1 else self.ewma_ns + self.alpha * (ns - self.ewma_ns)
        self.samples.append(ns)
        self.bucket_counts[bisect_left(_BUCKETS_NS, ns)] += 1

    def quantile(self, q: float) -> int | None:
        """The ``q`` quantile (0..1) of the recent samples, None when there are none."""
        if not self.samples:
            return None
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def buckets(self) -> dict[str, int]:
        """Cumulative counts over every sample by upper bound in s (``"+Inf"`` last), the
        Prometheus ``le`` labels."""
        out, total = {}, 0
        for bound, n in zip(_LE, self.bucket_counts, strict=True):
            total += n
            out[bound] = total
        return out

    def as_dict(self) -> dict[str, object]:
        """Seconds, for the status output and the metrics."""
        p50, p99 = self.quantile(0.5), self.quantile(0.99)
        return {
            "count": self.count,
            "last_s": self.last_ns / 1e9 if self.count else None,
            "ewma_s": self.ewma_ns / 1e9 if self.count else None,
            "max_s": self.max_ns / 1e9 if self.count else None,
            "p50_s": p50 / 1e9 if p50 is not None else None,
            "p99_s": p99 / 1e9 if p99 is not None else None,
            "recent": len(self.samples),
            "sum_s": self.sum_ns / 1e9,
            "buckets": self.buckets(),
        }
