"""Timers and the clock of the threaded runtime (:mod:`cryptoj.runtime.threaded`).

:class:`ScaledClock` is the injected market time; :class:`TimerThread` fires scheduled messages
on it, one thread for every actor's timers.
"""

from __future__ import annotations

import heapq
import threading
import time
from typing import TYPE_CHECKING

from cryptoj.runtime.common import Envelope
from cryptoj.supervision.guard import ThreadGuard

if TYPE_CHECKING:
    from cryptoj.runtime.threaded import ThreadedRuntime

STALL_S = 30.0  # the timer thread is reported stalled after this long without progress


class ScaledClock:
    """Market time for the threaded runtime.

    ``speed > 0``: time runs ``speed`` times faster than the wall clock from ``origin_ns``
    (``speed=1`` with ``origin_ns=time.time_ns()`` is the wall clock). ``speed == 0``: time only
    moves when the timer thread fires a timer (as fast as possible, for replays).
    """

    def __init__(self, origin_ns: int, speed: float) -> None:
        self.origin_ns = origin_ns
        self.speed = speed
        self._t0 = time.monotonic_ns()
        self._virtual = origin_ns

    def now(self) -> int:
        """Current time in ns since the epoch."""
        if self.speed == 0:
            return self._virtual
        return self.origin_ns + int((time.monotonic_ns() - self._t0) * self.speed)

    def wall_delay_s(self, due_ns: int) -> float:
        """Seconds of wall time until ``due_ns``."""
        if self.speed == 0:
            return 0.0
        return max(0.0, (due_ns - self.now()) / self.speed / 1e9)

    def advance_to(self, due_ns: int) -> None:
        """Move virtual time forward (``speed == 0`` only)."""
        if self.speed == 0 and due_ns > self._virtual:
            self._virtual = due_ns


class TimerThread(threading.Thread):
    """Fires scheduled messages on the injected clock, under a
    :class:`~cryptoj.supervision.guard.ThreadGuard`: if its loop raises, the crash is logged
    and counted, the timer being fired is dead-lettered, and the loop restarts (the other
    timers stay in the heap)."""

    IDLE_S = 0.5  # the loop wakes at least this often (a beat for the guard)

    def __init__(self, rt: ThreadedRuntime) -> None:
        super().__init__(name="cryptoj-timers", daemon=True)
        self.rt = rt
        self.cond = threading.Condition()
        self.heap: list[tuple[int, int, str, int, Envelope]] = []
        self.seq = 0
        self.stopped = False
        self._stop_event = threading.Event()
        self._firing: tuple[str, Envelope] | None = None
        self.guard = ThreadGuard(
            "cryptoj-timers",
            "runtime",
            board=rt.threads,
            on_crash=self._crashed,
            stall_after_s=None if rt.lockstep else STALL_S,  # lockstep: waits for the actors
        )

    def add(self, due: int, owner: str, generation: int, env: Envelope) -> None:
        """Schedule ``env``; the loop is woken only when it becomes the earliest timer (it
        sleeps until the earliest one anyway): an order's leg timeout, due in seconds, does
        not wake the timer thread to compete for the GIL on the order path."""
        with self.cond:
            self.seq += 1
            entry = (due, self.seq, owner, generation, env)
            heapq.heappush(self.heap, entry)
            if self.heap[0] is entry:
                self.cond.notify()

    def run(self) -> None:
        self.guard.run(self._loop, self._stop_event)

    def _wait_s(self) -> float:
        """Wall seconds until the next timer is due (``IDLE_S`` with none); under ``cond``."""
        return self.rt.clock.wall_delay_s(self.heap[0][0]) if self.heap else self.IDLE_S

    def _loop(self) -> None:
        clock, beat = self.rt.clock, self.guard.beat
        while True:
            with self.cond:
                while not self.stopped and (wait := self._wait_s()) > 0:
                    self.cond.wait(min(wait, self.IDLE_S))
                    beat()
                if self.stopped:
                    return
            beat()
            if self.rt.lockstep and not self.rt.wait_idle():
                return
            with self.cond:
                if not self.heap or self._wait_s() > 0:
                    continue
                due, _, owner, generation, env = heapq.heappop(self.heap)
            self._firing = (owner, env)
            clock.advance_to(due)
            if self.rt.generations.get(owner) != generation:
                # Timers die with the instance that set them (a restart sets its own).
                self.rt.dead_letter("timer", owner, env, "timer owner restarted")
            else:
                self.rt.post(owner, env)
            self._firing = None

    def _crashed(self, error: BaseException) -> None:
        """The loop raised: the timer it was firing is a dead letter (it may be the cause)."""
        firing, self._firing = self._firing, None
        if firing is not None:
            owner, env = firing
            self.rt.dead_letter("timer", owner, env, f"timer thread crashed: {error!r}"[:200])

    def stop(self) -> None:
        with self.cond:
            self.stopped = True
            self._stop_event.set()
            self.cond.notify()


__all__ = ["STALL_S", "ScaledClock", "TimerThread"]
