"""``cryptoj run``: the daemon in the threaded runtime, stopped by SIGINT/SIGTERM.

The main thread only waits: for the ShutdownActor to end the run (exit code 3 after an
escalation) or for a signal, which it turns into a ``ShutdownRequested`` message. It then stops
every actor in reverse start order (their ``on_stop`` flushes the journal) and returns the exit
code; pykka threads are non-daemon, so nothing is left behind. If the actors do not finish
within the grace period the shutdown proceeds anyway.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from types import FrameType

from loguru import logger

from cryptoj.config import Config
from cryptoj.marketdata.loader import load_events
from cryptoj.models.system import ShutdownRequested
from cryptoj.runtime.assemble import assemble
from cryptoj.runtime.common import EXIT_ERROR, EXIT_OK
from cryptoj.runtime.threaded import ScaledClock, ThreadedRuntime, run_until_stopped
from cryptoj.trace.recorder import TraceWriter

GRACE_S = 3.0


class _InterceptHandler(logging.Handler):
    """Route the standard logging module (pykka's logger) into loguru."""

    def emit(self, record: logging.LogRecord) -> None:
        logger.opt(exception=record.exc_info).log(record.levelname, record.getMessage())


def setup_logging(cfg: Config, log_json: bool) -> None:
    """loguru to stderr (human or JSON lines) and optionally to a rotated file."""
    logger.remove()
    serialize = log_json or cfg.logging.json
    logger.add(sys.stderr, level=cfg.logging.level, serialize=serialize)
    if cfg.logging.file:
        logger.add(
            cfg.logging.file,
            level=cfg.logging.level,
            serialize=serialize,
            rotation="10 MB",
            retention=5,
        )
    logging.basicConfig(handlers=[_InterceptHandler()], level=logging.INFO, force=True)


def run_daemon(cfg: Config, *, log_json: bool = False) -> int:
    """Run until a signal or an emergency; return the process exit code."""
    setup_logging(cfg, log_json)
    run_tag = f"d{time.time_ns() // 1_000_000:x}"
    batches = load_events(cfg.feed.data, products=list(cfg.feed.products) or None)
    system = assemble(
        cfg, batches, cfg.journal.path, fresh_journal=False, stop_on_feed_end=False, run_tag=run_tag
    )
    trace = (
        TraceWriter(cfg.trace.path, max_bytes=cfg.trace.max_bytes, max_files=cfg.trace.max_files)
        if cfg.trace.enabled
        else None
    )
    rt = ThreadedRuntime(
        seed=cfg.seed,
        clock=ScaledClock(system.start_ns, cfg.feed.speed),
        registry=system.registry,
        trace=trace,
        run_tag=run_tag,
    )
    system.venue.set_listener(lambda event: rt.tell("execution", event, sender="venue"))
    signalled = threading.Event()
    received: list[str] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        # Only set a flag: locks (logging, mailboxes, trace) are not re-entrant in a handler.
        received.append(signal.Signals(signum).name)
        signalled.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}

    def wait() -> None:
        logger.info(
            "cryptoj running: mode {}, data {}, journal {}, speed {}x",
            cfg.mode,
            cfg.feed.data,
            cfg.journal.path,
            cfg.feed.speed,
        )
        while not rt.exit_event.wait(0.2):
            if signalled.is_set():
                logger.info("received {}: stopping", received[0])
                reason = received[0]
                rt.tell("shutdown", ShutdownRequested(ts=rt.clock.now(), reason=reason))
                if not rt.exit_event.wait(GRACE_S):
                    logger.warning("actors did not stop within {}s; stopping anyway", GRACE_S)
                break

    try:
        run_until_stopped(rt, wait)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if trace is not None:
            trace.close()
    code = (
        rt.exit_code
        if rt.exit_code is not None
        else (EXIT_OK if signalled.is_set() else EXIT_ERROR)
    )
    logger.info("cryptoj stopped: exit code {} ({})", code, rt.exit_reason or "signal")
    return code
