"""Restart intensity: OTP's sliding window of restart times, on an injected clock."""

from __future__ import annotations

from collections import deque


class RestartIntensity:
    """Allows at most ``max_restarts`` restarts within any ``period_ns`` window."""

    def __init__(self, max_restarts: int, period_ns: int) -> None:
        self.max_restarts = max_restarts
        self.period_ns = period_ns
        self._stamps: deque[int] = deque()

    def add(self, now_ns: int) -> bool:
        """Record a restart at ``now_ns``; False when the intensity is exceeded."""
        self._stamps.append(now_ns)
        while self._stamps and self._stamps[0] <= now_ns - self.period_ns:
            self._stamps.popleft()
        return len(self._stamps) <= self.max_restarts

    @property
    def recent(self) -> int:
        """Restarts currently inside the window."""
        return len(self._stamps)
