"""Reconnection policy, connection-rate limit and connection-state history (pure).

* :class:`ReconnectPolicy`: exponential backoff with jitter (the supervision
  :class:`~cryptoj.supervision.spec.Backoff` formula ``min(cap, min·2^n)·(1 ± jitter)``), a
  maximum number of consecutive failed attempts, and a reset once a connection stayed up for
  ``reset_after_ns`` or delivered market data.
* :class:`RateLimiter`: a token bucket shared by all connections of one process, so reconnect
  storms stay under Coinbase's connection limit (8 per second per IP; protocol notes §4.1).
* :class:`StateHistory`: the bounded (state, time, reason) history that the status output and
  the metrics expose.

All take the time as an argument (ns); randomness is passed in as a number in [0, 1).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from cryptoj.supervision.spec import Backoff


class ReconnectPolicy:
    """When to try again after a failed or lost connection; None means give up."""

    def __init__(
        self,
        backoff: Backoff,
        *,
        max_retries: int = 0,
        reset_after_ns: int = 30_000_000_000,
    ) -> None:
        if max_retries < 0:
            raise ValueError(f"max_retries: expected >= 0, got {max_retries}")
        self.backoff = backoff
        self.max_retries = max_retries
        self.reset_after_ns = reset_after_ns
        self.failures = 0  # consecutive failures since the last stable connection
        self.attempts = 0  # every attempt ever made
        self._up_since: int | None = None

    def attempt(self) -> None:
        """An attempt to connect starts."""
        self.attempts += 1

    def up(self, now_ns: int) -> None:
        """The connection is live (subscribed)."""
        self._up_since = now_ns

    def delivered(self) -> None:
        """The connection delivered market data: the next failure starts at the smallest delay
        again (a link that flaps every few seconds but works in between does not climb to the
        cap). The shared connection-rate limit still paces every attempt."""
        self.failures = 0

    def down(self, now_ns: int, unit_random: float) -> int | None:
        """The attempt failed or the connection was lost: delay before the next attempt (ns).

        A connection that had been live for ``reset_after_ns`` starts again at the smallest
        delay. Returns None when ``max_retries`` consecutive attempts have failed.
        """
        if self._up_since is not None and now_ns - self._up_since >= self.reset_after_ns:
            self.failures = 0
        self._up_since = None
        delay = self.backoff.delay_ns(self.failures, unit_random)
        self.failures += 1
        if self.max_retries and self.failures > self.max_retries:
            return None
        return delay

    def bound_ns(self, failures: int) -> int:
        """The longest delay before attempt number ``failures`` (jitter at its maximum)."""
        b = self.backoff
        base = min(b.max_ns, b.min_ns * (2 ** min(failures, 62)))
        return int(base * (1 + b.jitter))


class RateLimiter:
    """Token bucket: at most ``rate`` acquisitions per second, bursts up to ``burst``."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        if rate <= 0:
            raise ValueError(f"rate: expected > 0, got {rate}")
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self._tokens = self.burst
        self._last: int | None = None

    def reserve(self, now_ns: int) -> int:
        """Take one token; return how long (ns) the caller must wait before using it."""
        if self._last is not None:
            self._tokens = min(self.burst, self._tokens + (now_ns - self._last) * self.rate / 1e9)
        self._last = now_ns
        self._tokens -= 1
        if self._tokens >= 0:
            return 0
        return int(-self._tokens / self.rate * 1e9)


@dataclass(frozen=True, slots=True)
class StateChange:
    """One entry of the connection-state history."""

    ts: int  # ns since the epoch
    connection: str
    state: str
    reason: str = ""

    def as_dict(self) -> dict[str, object]:
        """Plain data for the status output."""
        return {
            "ts": self.ts,
            "connection": self.connection,
            "state": self.state,
            "reason": self.reason,
        }


class StateHistory:
    """The last ``maxlen`` state changes of every connection, plus each one's current state."""

    def __init__(self, maxlen: int = 200) -> None:
        self.entries: deque[StateChange] = deque(maxlen=maxlen)
        self.current: dict[str, StateChange] = {}
        self.counts: dict[str, int] = {}

    def record(self, ts: int, connection: str, state: str, reason: str = "") -> bool:
        """Record a state; False (nothing recorded) when it repeats the current state and reason."""
        now = self.current.get(connection)
        if now is not None and now.state == state and now.reason == reason:
            return False
        change = StateChange(ts, connection, state, reason)
        self.entries.append(change)
        self.current[connection] = change
        self.counts[state] = self.counts.get(state, 0) + 1
        return True

    def as_list(self) -> list[dict[str, object]]:
        """The history, oldest first, as plain data."""
        return [c.as_dict() for c in self.entries]
