"""``cryptoj run``: the daemon in the threaded runtime, stopped by SIGINT/SIGTERM.

The main thread only waits: for the ShutdownActor to end the run (exit code 3 after an
escalation; 0 after ``POST /control/shutdown``) or for a signal, which it turns into a
``ShutdownRequested`` message. It then stops every actor in reverse start order (their
``on_stop`` flushes the journal) and returns the exit code; pykka threads are non-daemon, so
nothing is left behind. If the actors do not finish within the grace period the shutdown
proceeds anyway.

Every long-lived thread runs under a guard (:mod:`cryptoj.supervision.guard`: logged, counted,
reported, restarted with backoff), and while the daemon runs ``threading.excepthook`` sends an
exception that escapes any thread to loguru and the crash counters instead of stderr.

The operations endpoint (:mod:`cryptoj.ops`: health, readiness, metrics, status, flags,
control) is bound before any actor starts, so a port in use ends the start with exit code 2,
and serves on a daemon thread once the supervision tree is up.
"""

from __future__ import annotations

import functools
import logging
import signal
import sys
import threading
import time
from collections.abc import Mapping
from types import FrameType
from typing import TYPE_CHECKING, Any

import msgspec
from loguru import logger
from prometheus_client import CollectorRegistry

from cryptoj.adapters.coinbase import CoinbaseFeed, CredentialsError, build_feed
from cryptoj.adapters.coinbase.book_sampler import BookSampler
from cryptoj.config import Config
from cryptoj.config.ops import (
    FlagError,
    OpsConfig,
    ops_problems,
    parse_flags,
    resolve_token,
)
from cryptoj.marketdata.recording import FeedRecorder
from cryptoj.marketdata.warmup import WarmupReport, load_warmup
from cryptoj.models.system import EXIT_ERROR, EXIT_OK, EXIT_USAGE, ShutdownRequested
from cryptoj.ops.flags import FlagStore
from cryptoj.ops.metrics import build_registry
from cryptoj.ops.narrator import (
    Narrator,
    feed_state,
    heartbeat_line,
    log_line,
    market_time,
    pace_line,
)
from cryptoj.ops.runtime import OpsRuntime
from cryptoj.ops.server import OpsEndpoint
from cryptoj.ops.state import ErrorLog, OpsContext, OpsState
from cryptoj.runtime.assemble import GROUP_COMMIT, System, assemble
from cryptoj.runtime.threaded import ScaledClock, run_until_stopped
from cryptoj.strategies.history import MarketHistory
from cryptoj.strategies.loader import StrategySpec, history_kinds, load_strategies
from cryptoj.supervision.guard import BOARD, ThreadBoard, excepthook
from cryptoj.trace.recorder import TraceWriter

if TYPE_CHECKING:
    from cryptoj.marketdata.loader import Batch

GRACE_S = 3.0
TREE_START_S = 5.0
LOG_MAX_BYTES = 10_000_000
LOG_MAX_FILES = 5


class _InterceptHandler(logging.Handler):
    """Route the standard logging module (pykka's logger) into loguru."""

    def emit(self, record: logging.LogRecord) -> None:
        logger.opt(exception=record.exc_info).log(record.levelname, record.getMessage())


def setup_logging(cfg: Config, log_json: bool) -> None:
    """loguru to stderr (human or JSON lines) and optionally to a size-rotated file.

    The file rotates at ``logging.max_bytes`` (10 MB) and keeps ``logging.max_files`` (5)
    rotated files besides the current one; loguru rotates it itself, so do not point
    logrotate at the same file.
    """
    logger.remove()
    serialize = log_json or cfg.logging.json
    # diagnose=False: tracebacks (thread guards log every crash with one) show the frames but
    # not the values of their variables, which may hold a token or a key
    logger.add(sys.stderr, level=cfg.logging.level, serialize=serialize, diagnose=False)
    if cfg.logging.file:
        logger.add(
            cfg.logging.file,
            level=cfg.logging.level,
            serialize=serialize,
            diagnose=False,
            rotation=int(getattr(cfg.logging, "max_bytes", LOG_MAX_BYTES)),
            retention=int(getattr(cfg.logging, "max_files", LOG_MAX_FILES)),
        )
    logging.basicConfig(handlers=[_InterceptHandler()], level=logging.INFO, force=True)


class Daemon:
    """One run of the daemon; :meth:`run` blocks until it ends and returns the exit code."""

    def __init__(
        self,
        cfg: Config,
        *,
        ops_port: int | None = None,
        ops: OpsConfig | None = None,
        flags: Mapping[str, Any] | None = None,
        live: bool = False,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        """``ops`` and ``flags`` replace the config's sections (tests, embedding); ``live`` is
        ``--live`` (with ``mode: live`` it trades on Coinbase); ``environ`` replaces
        ``os.environ`` for the Coinbase credentials (tests)."""
        self.cfg = cfg
        self.live = live
        self.environ = environ
        self.ops = ops if ops is not None else cfg.ops
        self.flags = flags
        if ops_port is not None:
            self.ops = replace_port(self.ops, ops_port)
        self.ready = threading.Event()  # set once the tree runs and the endpoint serves
        self.system: System | None = None
        self.rt: OpsRuntime | None = None
        self.ctx: OpsContext | None = None
        self.endpoint: OpsEndpoint | None = None
        self.recorder: FeedRecorder | None = None  # feed.record: the live feed's recorder
        self.book_sampler: BookSampler | None = None  # feed.record: its book snapshots
        self.threads = BOARD  # replaced by this run's own board in run()
        self.warmup: WarmupReport | None = None  # live: what the strategies warmed up on
        self._stop = threading.Event()
        self._reasons: list[str] = []

    def request_stop(self, reason: str) -> None:
        """Ask for an orderly stop (safe in a signal handler: sets a flag only)."""
        self._reasons.append(reason)
        self._stop.set()

    def run(self) -> int:
        """Assemble, serve, run until stopped; return the process exit code."""
        cfg, ops = self.cfg, self.ops
        try:
            token = resolve_token(ops)
        except (OSError, ValueError) as e:
            logger.error("ops token: {}", e)
            return EXIT_USAGE
        problems = ops_problems(ops, token)
        for p in problems:
            logger.error("{}", p)
        if problems:
            return EXIT_USAGE
        try:
            flag_values = parse_flags(cfg.flags if self.flags is None else self.flags)
        except FlagError as e:
            logger.error("{}", e)
            return EXIT_USAGE
        run_tag = f"d{time.time_ns() // 1_000_000:x}"
        live = cfg.feed.source == "coinbase"
        batches = [] if live else self._market_data()
        # live: the strategies' warm-up history, filled below before any actor starts
        specs = load_strategies(cfg) if live else []
        history = MarketHistory(history_kinds(specs)) if live else None
        system = self.system = assemble(
            cfg,
            batches,
            cfg.journal.path,
            fresh_journal=False,
            stop_on_feed_end=False,
            run_tag=run_tag,
            data_name=cfg.feed.data,
            live=self.live,
            environ=self.environ,
            resume=not live,
            history=history,
        )
        if history is not None:
            self.warmup = self._warm_up(specs, history)
        # this run's daemon threads (several daemons may run in one process, as in the tests)
        board = self.threads = ThreadBoard()
        self._say_pace()  # before any actor runs: the end of the data may come at once
        trace = (
            TraceWriter(
                cfg.trace.path,
                max_bytes=cfg.trace.max_bytes,
                max_files=cfg.trace.max_files,
                board=board,
            )
            if cfg.trace.enabled
            else None
        )
        metrics = CollectorRegistry(auto_describe=False)
        rt = self.rt = OpsRuntime(
            metrics_registry=metrics,
            seed=cfg.seed,
            clock=ScaledClock(time.time_ns(), 1.0)
            if live
            else ScaledClock(system.start_ns, cfg.feed.speed),
            registry=system.registry,
            trace=trace,
            run_tag=run_tag,
            journal_path=system.journal_path,  # its WAL is checkpointed off the actors' threads
            threads=board,
            conflate_quotes=cfg.feed.conflate_mailboxes,
            group_commit=GROUP_COMMIT if cfg.journal.group_commit else (),
        )
        rt.narrator = Narrator(log_line)
        system.venue.set_listener(lambda event: rt.tell("execution", event, sender="venue"))
        flags = FlagStore(
            flag_values,
            journal_path=system.journal_path,
            clock=rt.clock.now,
            on_change=rt.broadcast,
        )
        rt.on_started = lambda name: flags.message() if flags.version else None
        errors = ErrorLog()
        self.ctx = OpsContext(
            rt=rt,
            ops=ops,
            venue=system.venue,
            journal_path=system.journal_path,
            flags=flags,
            feed_name=cfg.feed.source,
            mode=cfg.mode,
            strategy_kind=cfg.strategy.kind,
            products=tuple(cfg.feed.products),
            errors=errors,
            threads=board,
            warmup=None if self.warmup is None else self.warmup.status(),
        )
        user_channel = getattr(system.venue, "user_channel", None)
        if user_channel is not None:  # the Coinbase venue's user channel reports here too
            user_channel.guard.board = board
        state = OpsState(self.ctx)
        try:
            self.endpoint = (
                OpsEndpoint(
                    state,
                    build_registry(state, metrics),
                    host=ops.host,
                    port=ops.port,
                    token=token,
                    control_remote=ops.control_remote,
                    on_shutdown=lambda reason: rt.tell(
                        "shutdown", ShutdownRequested(ts=rt.clock.now(), reason=reason)
                    ),
                    board=board,
                )
                if ops.enabled
                else None
            )
        except OSError as e:
            logger.error(
                "ops endpoint: cannot listen on {}:{}: {}; set ops.port (0 = any free port) "
                "or ops.enabled: false",
                ops.host,
                ops.port,
                e.strerror or e,
            )
            rt.shutdown()
            if trace is not None:
                trace.close()
            return EXIT_USAGE
        flags.journal_loaded()
        sink = logger.add(errors.sink, level="WARNING", format="{message}")
        previous_hook = threading.excepthook
        # an exception that escapes any thread goes to loguru and the crash counters
        threading.excepthook = functools.partial(excepthook, board=board)
        try:
            run_until_stopped(rt, self._wait)
        finally:
            threading.excepthook = previous_hook
            venue_stop = getattr(system.venue, "stop", None)
            if venue_stop is not None:
                venue_stop()  # the Coinbase user channel (idempotent)
            if self.endpoint is not None:
                self.endpoint.close()
            logger.remove(sink)
            if trace is not None:
                trace.close()
        signalled = bool(self._reasons)
        code = rt.exit_code if rt.exit_code is not None else (EXIT_OK if signalled else EXIT_ERROR)
        logger.info("cryptoj stopped: exit code {} ({})", code, rt.exit_reason or "signal")
        return code

    def _market_data(self) -> list[Batch]:
        """The recorded data a replay-fed daemon plays (imported here: a live start reads
        none, and skips loading the loaders)."""
        from cryptoj.marketdata.ticks import load_market_data

        cfg = self.cfg
        return load_market_data(
            cfg.feed.data, products=list(cfg.feed.products) or None, catalog=cfg.feed.catalog
        )

    def _warm_up(self, specs: list[StrategySpec], history: MarketHistory) -> WarmupReport:
        """Load the bars the strategies declare into ``history`` (before the tree starts;
        bounded by ``feed.warmup_timeout_s``); a failure is one log line, the run goes on."""
        bars, report = load_warmup(self.cfg, specs)
        history.extend(bars)
        if report.needed == 0:
            return report
        if report.state not in ("warm", "off"):
            logger.warning(report.line())
        else:
            logger.info(report.line())
        return report

    def _wait(self) -> None:
        rt, cfg = self.rt, self.cfg
        assert rt is not None
        deadline = time.monotonic() + TREE_START_S  # the supervisors start their children
        while not all(rt.is_alive(n) for n in rt.registry) and time.monotonic() < deadline:
            if rt.exit_event.wait(0.01):
                break
        if self.endpoint is not None:
            self.endpoint.start()
            logger.info("ops endpoint on {}", self.endpoint.url)
        logger.info(
            "cryptoj running: mode {}, data {}, journal {}, speed {}x",
            cfg.mode,
            cfg.feed.data,
            cfg.journal.path,
            cfg.feed.speed,
        )
        venue_start = getattr(self.system.venue, "start", None) if self.system else None
        if venue_start is not None:
            venue_start()  # the Coinbase user channel, once the execution actor runs
        feed = self._start_coinbase_feed() if cfg.feed.source == "coinbase" else None
        self.ready.set()
        try:
            self._serve()
        finally:
            if self.book_sampler is not None:
                self.book_sampler.stop()
            if feed is not None:
                feed.stop()
            if self.recorder is not None:
                self.recorder.stop()
                logger.info("feed recorder: {}", self.recorder.stats())

    def _say_pace(self) -> None:
        """Where a paper replay resumes and how long the paced replay will take."""
        system, cfg = self.system, self.cfg
        if system is None or cfg.feed.source == "coinbase":
            return
        if system.resumed_after_ns is not None:
            logger.info(
                "resuming after the journal's last market time {} UTC: {} timestamps already "
                "traded are not replayed",
                market_time(system.resumed_after_ns),
                system.skipped_batches,
            )
        src = system.source
        logger.info(pace_line(src.first_ts, src.last_ts, len(src.batches), cfg.feed.speed))

    def _heartbeat(self) -> None:
        rt = self.rt
        assert rt is not None
        live = self.cfg.feed.source == "coinbase"
        view = rt.tap.view()
        counts = dict(rt.narrator.counts) if rt.narrator is not None else None
        speed = self.cfg.feed.speed
        logger.info(
            heartbeat_line(view, feed_state=feed_state(view, live), speed=speed, counts=counts)
        )

    def _start_coinbase_feed(self) -> CoinbaseFeed | None:
        """Connect the live Coinbase feed; its events go to the FeedActor's mailbox."""
        rt, cfg = self.rt, self.cfg
        assert rt is not None

        def deliver(event: Any) -> None:
            rt.tell("feed", event, sender="coinbase")

        if cfg.feed.record:  # feed.record: a copy of each event to the recorder's queue
            recorder = self.recorder = FeedRecorder(
                cfg.feed.catalog,
                queue_size=cfg.feed.record_queue,
                l2_interval_s=cfg.feed.record_l2_interval_s,
            ).start()

            def deliver_and_record(event: Any) -> None:
                rt.tell("feed", event, sender="coinbase")
                recorder.offer(event)

        try:
            feed = build_feed(
                cfg.feed.coinbase,
                cfg.coinbase,
                cfg.feed.products,
                deliver_and_record if cfg.feed.record else deliver,
                seed=cfg.seed,
                board=self.threads,
            )
        except CredentialsError as e:
            logger.error("coinbase credentials: {}", e)
            rt.request_stop(EXIT_USAGE, f"coinbase credentials: {e}")
            return None
        feed.start()
        if self.recorder is not None:  # level2 book snapshots at a bounded rate
            self.book_sampler = BookSampler(
                feed,
                self.recorder.offer_book,
                interval_s=cfg.feed.record_l2_interval_s,
                depth=cfg.feed.record_l2_depth,
            ).start()
        if self.ctx is not None:
            self.ctx.live_feed = feed  # /status, /health, /ready and /metrics read its status()
        return feed

    def _serve(self) -> None:
        """Wait for the end of the run, or turn a signal into an orderly stop."""
        rt = self.rt
        assert rt is not None
        every = self.cfg.logging.heartbeat_s
        next_beat = time.monotonic() + every
        while not rt.exit_event.wait(0.2):
            if every > 0 and time.monotonic() >= next_beat:
                next_beat = time.monotonic() + every
                self._heartbeat()
            if self._stop.is_set():
                reason = self._reasons[0]
                logger.info("received {}: stopping", reason)
                rt.tell("shutdown", ShutdownRequested(ts=rt.clock.now(), reason=reason))
                # the ShutdownActor drains the orders in flight for up to stop_wait_s first
                grace = self.cfg.shutdown.stop_wait_s + GRACE_S
                if not rt.exit_event.wait(grace):
                    logger.warning("actors did not stop within {}s; stopping anyway", grace)
                break


def replace_port(ops: OpsConfig, port: int) -> OpsConfig:
    """``ops`` with another port (msgspec Structs are frozen)."""
    return msgspec.structs.replace(ops, port=port)


def run_daemon(
    cfg: Config, *, log_json: bool = False, ops_port: int | None = None, live: bool = False
) -> int:
    """Run until a signal, a control shutdown or an emergency; return the process exit code.

    ``live`` is the command line's ``--live``: with ``mode: live`` (and
    ``live_trading_confirmed``) the daemon trades on Coinbase; any mismatch raises
    :class:`~cryptoj.runtime.assemble.LiveTradingUnavailable` before any actor starts.
    """
    setup_logging(cfg, log_json)
    daemon = Daemon(cfg, ops_port=ops_port, live=live)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        # Only set a flag: locks (logging, mailboxes, trace) are not re-entrant in a handler.
        daemon.request_stop(signal.Signals(signum).name)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return daemon.run()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


__all__ = ["Daemon", "run_daemon", "setup_logging"]
