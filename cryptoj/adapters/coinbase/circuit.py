"""A circuit breaker around one websocket host (pure, injected time).

States:

* ``closed``: attempts allowed; ``failure_threshold`` consecutive failures open it.
* ``open``: no attempts for ``open_ns``; then the next :meth:`CircuitBreaker.allow` turns it
  ``half_open`` and lets exactly one probe through.
* ``half_open``: the probe is in flight; its success closes the circuit (and resets the open
  time), its failure re-opens it with the open time doubled, up to ``open_max_ns``.

"Success" is a connection that got all its subscriptions acknowledged; "failure" is any attempt
that did not (refused, TLS or handshake error, subscribe timeout, error frame) and a live
connection lost before it was stable is reported as one too by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class Transition:
    """One state change of a breaker."""

    ts: int
    state: str
    reason: str


class CircuitBreaker:
    """See the module docstring."""

    def __init__(
        self, failure_threshold: int, open_ns: int, open_max_ns: int | None = None
    ) -> None:
        if failure_threshold < 1 or open_ns <= 0:
            raise ValueError("failure_threshold must be >= 1 and open_ns > 0")
        self.failure_threshold = failure_threshold
        self.base_open_ns = open_ns
        self.open_max_ns = max(open_ns, open_max_ns or open_ns)
        self.state = CLOSED
        self.failures = 0
        self.open_ns = open_ns
        self.opened_at = 0
        self.probe_in_flight = False
        self.transitions: list[Transition] = []
        self.times_opened = 0

    def retry_at(self) -> int:
        """When an open circuit lets a probe through (meaningful while ``open``)."""
        return self.opened_at + self.open_ns

    def would_allow(self, now_ns: int) -> bool:
        """Whether :meth:`allow` would return True now (does not change the state)."""
        if self.state == CLOSED:
            return True
        if self.state == OPEN:
            return now_ns >= self.retry_at()
        return not self.probe_in_flight

    def allow(self, now_ns: int) -> bool:
        """May an attempt start now? In ``open`` past its time this starts the half-open probe."""
        if self.state == CLOSED:
            return True
        if self.state == OPEN:
            if now_ns < self.retry_at():
                return False
            self._to(now_ns, HALF_OPEN, "open time elapsed: probing")
            self.probe_in_flight = True
            return True
        if self.probe_in_flight:
            return False
        self.probe_in_flight = True
        return True

    def success(self, now_ns: int) -> None:
        """An attempt succeeded: close the circuit."""
        self.failures = 0
        self.probe_in_flight = False
        self.open_ns = self.base_open_ns
        if self.state != CLOSED:
            self._to(now_ns, CLOSED, "probe succeeded")

    def failure(self, now_ns: int, reason: str = "") -> None:
        """An attempt failed: count it, open the circuit at the threshold or after a probe."""
        self.failures += 1
        self.probe_in_flight = False
        if self.state == HALF_OPEN:
            self.open_ns = min(self.open_max_ns, self.open_ns * 2)
            self._open(now_ns, f"probe failed: {reason}")
        elif self.state == CLOSED and self.failures >= self.failure_threshold:
            self._open(now_ns, f"{self.failures} consecutive failures, last: {reason}")

    def _open(self, now_ns: int, reason: str) -> None:
        self.opened_at = now_ns
        self.times_opened += 1
        self._to(now_ns, OPEN, reason)

    def _to(self, now_ns: int, state: str, reason: str) -> None:
        self.state = state
        self.transitions.append(Transition(now_ns, state, reason))
        del self.transitions[:-100]
