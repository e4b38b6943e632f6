"""Guarded daemon threads: no thread the daemon owns dies silently.

Every long-lived thread of the daemon (the timer thread, the journal checkpointer, the ops
HTTP server, the trace flusher, the Coinbase user channel, the market-data feed's REST and
delivery workers) runs its loop through :meth:`ThreadGuard.run`. When the loop raises, the
guard, in this order:

1. marks the thread ``restarting`` on its :class:`ThreadBoard` (``/health``, ``/ready`` and
   ``/status`` read the board on each request, so they see it at once),
2. counts the crash per thread name (``cryptoj_thread_crashes_total{thread}``),
3. logs the exception with its traceback through loguru (not raw stderr),
4. calls the owner's ``on_crash`` hook (close a socket, dead-letter what was in hand),
5. waits a backoff on the owner's stop event (``min_delay_s·2^n``, at most ``max_delay_s``,
   ±20 % jitter; ``n`` counts the crashes less than ``reset_after_s`` apart) and calls the loop
   again.

The loop calls :meth:`ThreadGuard.beat` once per iteration; the first beat after a restart marks
the thread ``running`` again (one INFO line). With ``stall_after_s``, a thread that has not
beaten for that long (blocked, not crashed) reads as ``stalled`` (one WARNING line when a
reader first sees it) until its next beat. A loop that returns ends the thread normally
(``stopped``, taken off the board). Anything that is not an ``Exception`` (``SystemExit``) marks
it ``dead`` and stays on the board, so ``/health`` fails.

Each daemon run reports on a board of its own (handed to every component that starts a thread;
several daemons can run in one process, as in the tests); a component given none uses the
process-wide :data:`BOARD`. :func:`excepthook` is the daemon's ``threading.excepthook``: an
exception that escapes any thread (guarded or not) goes to loguru and the counters instead of
stderr.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from loguru import logger

#: Thread states; ``restarting``, ``stalled`` and ``dead`` are unhealthy.
STATES = ("starting", "running", "restarting", "stalled", "stopped", "dead")
UNHEALTHY = ("restarting", "stalled", "dead")
_ANON = re.compile(r"^Thread-\d+")
_TOKEN = re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]*")


def clean_text(text: str, limit: int = 300) -> str:
    """Text fit for a log line or ``/status``: bounded, anything shaped like a JWT replaced."""
    return _TOKEN.sub("<token>", text)[:limit]


def thread_label(name: str) -> str:
    """A thread name as a metric label (anonymous ``Thread-N (fn)`` threads share one)."""
    return _ANON.sub("Thread", name)[:80]


class ThreadBoard:
    """The guarded threads of a process and the crash count per thread name (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._guards: dict[int, ThreadGuard] = {}
        self._crashes: dict[str, int] = {}

    def add(self, guard: ThreadGuard) -> None:
        """List ``guard`` (its thread started)."""
        with self._lock:
            self._guards[id(guard)] = guard

    def remove(self, guard: ThreadGuard) -> None:
        """Take ``guard`` off (its thread ended normally)."""
        with self._lock:
            self._guards.pop(id(guard), None)

    def count(self, name: str) -> int:
        """Count one crash of thread ``name``; return its total."""
        label = thread_label(name)
        with self._lock:
            n = self._crashes[label] = self._crashes.get(label, 0) + 1
        return n

    def crashes(self) -> dict[str, int]:
        """Crashes per thread name since the process started (or the board was made)."""
        with self._lock:
            return dict(self._crashes)

    def threads(self) -> list[dict[str, Any]]:
        """Every listed thread: name, component, state, crashes, last error, ages (s)."""
        with self._lock:
            guards = list(self._guards.values())
        return sorted((g.describe() for g in guards), key=lambda d: (d["component"], d["name"]))

    def unhealthy(self) -> list[dict[str, Any]]:
        """The listed threads that are restarting or dead."""
        return [t for t in self.threads() if t["state"] in UNHEALTHY]


#: The daemon's board.
BOARD = ThreadBoard()


class ThreadGuard:
    """Runs one thread's loop: log, count, mark unhealthy and restart it when it raises."""

    def __init__(
        self,
        name: str,
        component: str,
        *,
        board: ThreadBoard | None = None,
        min_delay_s: float = 0.1,
        max_delay_s: float = 30.0,
        reset_after_s: float = 60.0,
        jitter: float = 0.2,
        on_crash: Callable[[BaseException], object] | None = None,
        rng: random.Random | None = None,
        stall_after_s: float | None = None,
    ) -> None:
        if not 0 < min_delay_s <= max_delay_s:
            raise ValueError(
                f"thread guard {name}: expected 0 < min_delay_s <= max_delay_s, "
                f"got {min_delay_s}, {max_delay_s}"
            )
        if not 0 <= jitter < 1:
            raise ValueError(f"thread guard {name}: expected jitter in [0, 1), got {jitter}")
        self.name = name
        self.component = component
        self.board = board if board is not None else BOARD
        self.min_delay_s = min_delay_s
        self.max_delay_s = max_delay_s
        self.reset_after_s = reset_after_s
        self.jitter = jitter
        self.on_crash = on_crash
        self.stall_after_s = stall_after_s
        self._stall_logged = False
        self.rng = rng or random.Random()
        self.state = "starting"
        self.crashes = 0  # crashes of this guard's thread
        self.restarts = 0  # times the loop was called again after a crash
        self.streak = 0  # crashes less than reset_after_s apart (sets the backoff)
        self.last_error = ""
        self.last_crash: float | None = None  # monotonic
        self.last_beat: float | None = None  # monotonic
        self.since = time.monotonic()  # when the state last changed
        self.thread: threading.Thread | None = None

    # -- the loop side -------------------------------------------------------------------------

    def run(self, body: Callable[[], object], stopping: threading.Event) -> None:
        """Call ``body`` until it returns or ``stopping`` is set; restart it when it raises."""
        self.thread = threading.current_thread()
        self.board.add(self)
        try:
            while not stopping.is_set():
                try:
                    body()
                except Exception as e:
                    if stopping.wait(self._crashed(e)):
                        break
                    self.restarts += 1
                    logger.info(
                        "thread {} ({}): restarting (restart {})",
                        self.name,
                        self.component,
                        self.restarts,
                    )
                    continue
                break
        except BaseException as e:  # SystemExit and the like: the thread ends for good
            self._set("dead")
            self.last_error = clean_text(describe_error(e))
            self.board.count(self.name)
            logger.opt(exception=e).critical(
                "thread {} ({}) ended by {}: not restarted",
                self.name,
                self.component,
                self.last_error,
            )
            return  # logged and counted here: not again by the excepthook
        self._set("stopped")
        self.board.remove(self)

    def beat(self) -> None:
        """One healthy iteration of the loop (marks the thread ``running`` after a restart)."""
        self.last_beat = time.monotonic()
        self._stall_logged = False
        if self.state != "running":
            recovered = self.state == "restarting"
            self._set("running")
            if recovered:
                logger.info(
                    "thread {} ({}): running again after {} crash(es)",
                    self.name,
                    self.component,
                    self.crashes,
                )

    def _crashed(self, error: Exception) -> float:
        """Mark, count, log, run the hook; the backoff delay (s) before the next call."""
        now = time.monotonic()
        self._set("restarting")
        if self.last_crash is None or now - self.last_crash > self.reset_after_s:
            self.streak = 0
        self.streak += 1
        self.crashes += 1
        self.last_crash = now
        self.last_error = clean_text(describe_error(error))
        total = self.board.count(self.name)
        delay = self.delay_s(self.streak - 1, self.rng.random())
        logger.opt(exception=error).error(
            "thread {} ({}) crashed ({} so far), restarting in {:.2f}s: {}",
            self.name,
            self.component,
            total,
            delay,
            self.last_error,
        )
        if self.on_crash is not None:
            try:
                self.on_crash(error)
            except Exception as again:
                logger.opt(exception=again).error(
                    "thread {} ({}): cleaning up after the crash failed", self.name, self.component
                )
        return delay

    def delay_s(self, attempt: int, unit_random: float) -> float:
        """The backoff before restart number ``attempt`` (0-based); ``unit_random`` in [0, 1)."""
        base = min(self.max_delay_s, self.min_delay_s * float(2 ** min(attempt, 30)))
        return float(base * (1 + self.jitter * (2 * unit_random - 1)))

    def _set(self, state: str) -> None:
        self.state = state
        self.since = time.monotonic()

    # -- the reading side ------------------------------------------------------------------------

    def effective_state(self) -> str:
        """The state; ``dead`` when the thread ended without saying so, ``stalled`` when it
        runs but has not beaten for ``stall_after_s``."""
        t, state = self.thread, self.state
        if state not in ("stopped", "dead") and t is not None and not t.is_alive():
            return "dead"
        if self.stall_after_s is not None and state in ("starting", "running"):
            last = self.last_beat if self.last_beat is not None else self.since
            quiet = time.monotonic() - last
            if quiet > self.stall_after_s:
                if not self._stall_logged:
                    self._stall_logged = True
                    logger.warning(
                        "thread {} ({}) stalled: no progress for {:.1f}s",
                        self.name,
                        self.component,
                        quiet,
                    )
                return "stalled"
        return state

    def describe(self) -> dict[str, Any]:
        """Plain data for ``/status``."""
        now = time.monotonic()
        crash, beat = self.last_crash, self.last_beat
        return {
            "name": self.name,
            "component": self.component,
            "state": self.effective_state(),
            "for_s": round(now - self.since, 3),
            "crashes": self.crashes,
            "restarts": self.restarts,
            "last_error": self.last_error or None,
            "last_crash_age_s": None if crash is None else round(now - crash, 3),
            "last_beat_age_s": None if beat is None else round(now - beat, 3),
        }


def excepthook(args: threading.ExceptHookArgs, board: ThreadBoard | None = None) -> None:
    """``threading.excepthook`` for the daemon: log through loguru (with the traceback) and
    count the crash per thread name; ``SystemExit`` stays silent as by default."""
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "unknown"
    (board if board is not None else BOARD).count(name)
    logger.opt(exception=(args.exc_type, args.exc_value, args.exc_traceback)).error(
        "thread {} ended by an uncaught {}", name, args.exc_type.__name__
    )


def describe_error(e: BaseException) -> str:
    """``e`` as one line that names its type (``"ValueError: bad"``; the message alone when it
    already names it)."""
    text = str(e).strip() or type(e).__name__
    return text if type(e).__name__ in text else f"{type(e).__name__}: {text}"


__all__ = [
    "BOARD",
    "STATES",
    "UNHEALTHY",
    "ThreadBoard",
    "ThreadGuard",
    "clean_text",
    "describe_error",
    "excepthook",
    "thread_label",
]
