"""Per-connection ``sequence_num`` tracking with a small reorder window (pure, injected time).

Coinbase numbers every server message on a connection (all channels, acks and heartbeats
included) with ``sequence_num``, +1 each (protocol notes §4.2). :class:`SequenceTracker`
releases frames in sequence order:

* the expected number → released at once (the common case: one comparison);
* a number ahead of the expected one → held, up to ``window`` frames or ``hold_ns``, waiting for
  the missing ones (out-of-order frames inside the window are reordered);
* a hole that does not fill in time → a :class:`Gap` marker is released *before* the frames
  after it, so the caller learns about the loss before it applies anything that follows it;
* a number already released or already held → dropped and counted (duplicates, or late frames
  from beyond the window).

The first number seen on a connection is the baseline (real connections start at 0 or 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Gap:
    """Sequence numbers ``first..last`` (inclusive) never arrived."""

    first: int
    last: int

    @property
    def missing(self) -> int:
        """How many frames were lost."""
        return self.last - self.first + 1


class SequenceTracker(Generic[T]):
    """Orders frames by sequence number; see the module docstring."""

    def __init__(self, window: int = 8, hold_ns: int = 100_000_000) -> None:
        if window < 0 or hold_ns < 0:
            raise ValueError("window and hold_ns must be >= 0")
        self.window = window
        self.hold_ns = hold_ns
        self.expected: int | None = None
        self.pending: dict[int, T] = {}
        self._held_since = 0
        self.gaps = 0
        self.missing = 0
        self.reordered = 0
        self.dropped = 0

    def reset(self) -> None:
        """A new connection: forget the baseline and anything held (counters are kept)."""
        self.expected = None
        self.pending.clear()

    def push(self, seq: int, item: T, now_ns: int) -> list[T | Gap]:
        """Offer one frame; return what is released now, in order (gaps as :class:`Gap`)."""
        expected = self.expected
        if expected is None or (seq == expected and not self.pending):
            self.expected = seq + 1
            return [item]
        if seq == expected:
            self.expected = seq + 1
            out: list[T | Gap] = [item]
            self.reordered += self._drain(out)
            if self.pending:
                self._held_since = now_ns
            return out
        if seq < expected or seq in self.pending:
            self.dropped += 1
            return []
        if not self.pending:
            self._held_since = now_ns
        self.pending[seq] = item
        if len(self.pending) > self.window:
            return self._force(now_ns)
        return []

    def expire(self, now_ns: int) -> list[T | Gap]:
        """Give up on a hole held longer than ``hold_ns``; call this periodically."""
        if self.pending and now_ns - self._held_since >= self.hold_ns:
            return self._force(now_ns)
        return []

    def _force(self, now_ns: int) -> list[T | Gap]:
        out: list[T | Gap] = []
        while self.pending and (
            len(self.pending) > self.window or now_ns - self._held_since >= self.hold_ns
        ):
            assert self.expected is not None
            first = min(self.pending)
            gap = Gap(self.expected, first - 1)
            self.gaps += 1
            self.missing += gap.missing
            out.append(gap)
            self.expected = first
            self._drain(out)
            self._held_since = now_ns
            if len(self.pending) <= self.window:
                break
        return out

    def _drain(self, out: list[T | Gap]) -> int:
        n = 0
        pending = self.pending
        assert self.expected is not None
        while self.expected in pending:
            out.append(pending.pop(self.expected))
            self.expected += 1
            n += 1
        return n
