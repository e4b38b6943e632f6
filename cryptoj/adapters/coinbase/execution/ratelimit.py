"""Client-side rate limit of the private REST calls: a token bucket on an injected clock (pure).

Coinbase publishes 30 requests per second per key for the private endpoints (protocol notes
§3.3, "may tighten during high volatility"). The client keeps under a configurable rate
(default 25/s, burst 10) so that our own traffic never causes the 429s we have to back off from.

:class:`TokenBucket` does no sleeping: :meth:`TokenBucket.reserve` takes a token and returns how
long the caller must wait before using it (0 when one was available). The caller passes that to
its injected sleeper. :meth:`TokenBucket.pause_until` stops everything until a time the server
named (``x-ratelimit-remaining: 0`` with ``x-ratelimit-reset``, or a 429's ``Retry-After``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from cryptoj.adapters.coinbase.execution.errors import retry_after_s

NS = 1_000_000_000


class TokenBucket:
    """``rate_per_s`` tokens per second, at most ``burst`` saved up; thread-safe."""

    def __init__(self, rate_per_s: float, burst: int, clock: Callable[[], int]) -> None:
        """``clock`` returns monotonic nanoseconds."""
        if rate_per_s <= 0:
            raise ValueError(f"rate_per_s: expected > 0, got {rate_per_s}")
        if burst < 1:
            raise ValueError(f"burst: expected >= 1, got {burst}")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.clock = clock
        self._lock = threading.Lock()
        self._tokens = float(burst)
        self._last = clock()
        self._paused_until = 0
        self.waited_ns = 0  # total wait handed out
        self.throttled = 0  # reservations that had to wait

    def _refill(self, now: int) -> None:
        if now > self._last:
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate_per_s / NS)
            self._last = now

    def reserve(self) -> int:
        """Take one token; return the ns to wait before sending (0 = now)."""
        with self._lock:
            now = self.clock()
            self._refill(now)
            self._tokens -= 1.0
            wait = 0
            if self._tokens < 0:
                wait = int(-self._tokens * NS / self.rate_per_s) + 1
            wait = max(wait, self._paused_until - now)
            if wait > 0:
                self.throttled += 1
                self.waited_ns += wait
            return max(0, wait)

    def pause_until(self, when_ns: int) -> None:
        """Hand out no token before ``when_ns`` (a server-side limit was reached)."""
        with self._lock:
            self._paused_until = max(self._paused_until, when_ns)

    def observe_headers(self, headers: Mapping[str, Any] | None, wall_s: float) -> bool:
        """Pause until the reset time when the headers say no request is left; True if paused.

        Reads ``x-ratelimit-remaining`` and ``x-ratelimit-reset`` (case-insensitive; the reset is
        seconds to wait when small, else a Unix time in seconds or milliseconds, placed with
        ``wall_s``, the current Unix time).
        """
        if not headers:
            return False
        lower = {str(k).lower(): v for k, v in headers.items() if v is not None}
        remaining = lower.get("x-ratelimit-remaining")
        try:
            left = float(str(remaining)) if remaining is not None else None
        except ValueError:
            left = None
        if left is None or left > 0:
            return False
        wait_s = retry_after_s({"x-ratelimit-reset": lower.get("x-ratelimit-reset", "1")}, wall_s)
        if wait_s is None:
            wait_s = 1.0
        self.pause_until(self.clock() + int(min(wait_s, 60.0) * NS))
        return True


__all__ = ["TokenBucket"]
