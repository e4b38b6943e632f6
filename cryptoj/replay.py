"""``cryptoj replay``: the whole actor system over recorded data, finishing by itself."""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import msgspec
from rich.console import Console

from cryptoj.actors.portfolio import PortfolioActor
from cryptoj.config import Config
from cryptoj.journal import Journal
from cryptoj.journal_batch import shared_connections
from cryptoj.marketdata.loader import DataError
from cryptoj.marketdata.ticks import Batch, load_market_data
from cryptoj.models.system import EXIT_ERROR
from cryptoj.progress import Bar, day
from cryptoj.runtime.assemble import System, assemble
from cryptoj.runtime.common import ChaosPlan, RuntimeStats
from cryptoj.runtime.deterministic import DeterministicRuntime
from cryptoj.runtime.threaded import ScaledClock, ThreadedRuntime, run_until_stopped
from cryptoj.strategies.history import MarketHistory
from cryptoj.strategies.loader import history_kinds, load_strategies
from cryptoj.summary import (
    books_summary,
    check_invariants,
    market_data_problems,
    market_path,
    risk_figures,
)
from cryptoj.supervision.tree import WORKERS
from cryptoj.trace.recorder import TraceWriter
from cryptoj.trace.records import rotated_files
from cryptoj.unwind.report import unwind_figures


@dataclass(frozen=True)
class ReplayOptions:
    """Command-line options of ``replay``."""

    data: str
    start: dt.date | None = None
    end: dt.date | None = None
    journal: str = "var/replay/journal.sqlite"
    trace: str | None = "var/replay/trace.jsonl"
    runtime: str = "deterministic"
    seed: int = 7
    chaos: int = 0
    chaos_storm: bool = False
    progress: bool = False
    unwind: str | None = None  # "gradual" or "immediate": overrides shutdown.unwind.mode
    # False: a threaded replay runs as the live daemon does (quotes conflated, timers not held
    # for the actors): not a risk-valid replay, and its summary says so. For measurements.
    risk_valid: bool = True
    catalog: str = "data"  # the local catalog, for catalog:… and recorded:… data


def with_unwind_mode(cfg: Config, mode: str | None) -> Config:
    """``cfg`` with ``shutdown.unwind.mode`` set to ``mode`` (unchanged for None)."""
    if mode is None:
        return cfg
    sd = cfg.shutdown
    unwind = msgspec.structs.replace(sd.unwind, mode=mode)
    return msgspec.structs.replace(cfg, shutdown=msgspec.structs.replace(sd, unwind=unwind))


@dataclass
class RunOutcome:
    """What a runtime hands back after a run."""

    exit_code: int
    exit_reason: str
    stats: RuntimeStats
    portfolio: PortfolioActor | None


def preceding_history(
    cfg: Config,
    data: str,
    products: list[str] | None,
    start: dt.date | None,
    before: list[Batch] | None = None,
) -> MarketHistory | None:
    """The strategies' warm-up history for a replay from ``start``: the data set's events
    before that day (as many as :class:`MarketHistory` keeps); None without ``--from`` or
    when nothing precedes it. ``before``: those events already in memory (a sweep's workers
    hold them), instead of reading the data set again."""
    if start is None:
        return None
    if before is None:
        try:
            before = load_market_data(data, products=products, end=start - dt.timedelta(days=1))
        except DataError:
            return None
    if not before:
        return None
    history = MarketHistory(history_kinds(load_strategies(cfg)))
    history.extend(e for batch in before for e in batch)
    return history


def run_replay(
    cfg: Config,
    opts: ReplayOptions,
    batches: list[Batch] | None = None,
    before: list[Batch] | None = None,
) -> tuple[dict[str, Any], int]:
    """Run one replay; return the summary and the process exit code.

    ``batches``: market data already loaded (and cut to ``opts.start``..``opts.end``), as a
    parameter sweep's workers hold it; by default it is loaded from ``opts.data``. ``before``:
    likewise the data preceding ``opts.start`` (the strategies' warm-up)."""
    cfg = with_unwind_mode(cfg, opts.unwind)
    products = list(cfg.feed.products) or None
    if batches is None:
        with _loading(opts.data, opts.progress):
            batches = load_market_data(
                opts.data, products=products, start=opts.start, end=opts.end, catalog=opts.catalog
            )
    system = assemble(
        cfg,
        batches,
        opts.journal,
        fresh_journal=True,
        run_tag=f"s{opts.seed}",
        data_name=opts.data,
        history=preceding_history(cfg, opts.data, products, opts.start, before),
    )
    trace = (
        TraceWriter(
            opts.trace, max_bytes=cfg.trace.max_bytes, max_files=cfg.trace.max_files, fresh=True
        )
        if opts.trace and cfg.trace.enabled
        else None
    )
    chaos = None
    if opts.chaos or opts.chaos_storm:
        chaos = ChaosPlan.seeded(
            opts.seed, opts.chaos, list(WORKERS), system.source.first_ts, system.source.last_ts
        )
        if opts.chaos_storm:
            chaos.storm = "portfolio"
            chaos.storm_after_ns = (
                system.source.first_ts + (system.source.last_ts - system.source.first_ts) // 4
            )
    t0 = time.perf_counter()
    try:
        if opts.runtime == "threaded":
            outcome = _run_threaded(
                system,
                trace=trace,
                seed=opts.seed,
                speed=0.0,
                valid=opts.risk_valid,
                progress=opts.progress,
            )
        else:
            outcome = _run_deterministic(system, trace, opts.seed, chaos, opts.progress)
    finally:
        if trace is not None:
            trace.close()
    wall = time.perf_counter() - t0
    summary = _summarise(system, outcome, wall, chaos, trace)
    summary["runtime"] = opts.runtime
    summary["seed"] = opts.seed
    summary["data"] = opts.data
    summary["journal"] = opts.journal
    summary["trace"] = opts.trace if trace is not None else None
    summary["trace_files"] = (
        [str(f) for f in rotated_files(opts.trace)] if trace is not None and opts.trace else []
    )
    summary["unwind_mode"] = cfg.shutdown.unwind.mode
    return summary, outcome.exit_code


def _run_deterministic(
    system: System, trace: TraceWriter | None, seed: int, chaos: ChaosPlan | None, progress: bool
) -> RunOutcome:
    # the actors share one journal connection: one transaction per group of market instants
    with shared_connections():
        return _run_deterministic_shared(system, trace, seed, chaos, progress)


def _run_deterministic_shared(
    system: System, trace: TraceWriter | None, seed: int, chaos: ChaosPlan | None, progress: bool
) -> RunOutcome:
    show = _Progress(system) if progress else None
    rt = DeterministicRuntime(
        seed=seed,
        start_ns=system.start_ns,
        registry=system.registry,
        trace=trace,
        chaos=chaos,
        on_step=show.tick if show else None,
    )
    system.venue.set_listener(lambda event: rt.tell("execution", event, sender="venue"))
    rt.start_root("shutdown")
    rt.start_root("root")
    with show or contextlib.nullcontext():
        rt.run()
    portfolio = rt.actor("portfolio")
    rt.stop_all()
    exit_code = rt.exit_code if rt.exit_code is not None else EXIT_ERROR
    reason = rt.exit_reason or "the run ended without a shutdown decision"
    if not rt.is_alive("shutdown") and rt.exit_code is None:
        reason = "the ShutdownActor died"
    return RunOutcome(
        exit_code, reason, rt.stats, portfolio if isinstance(portfolio, PortfolioActor) else None
    )


def _run_threaded(
    system: System,
    *,
    trace: TraceWriter | None,
    seed: int,
    speed: float,
    valid: bool = True,
    progress: bool = False,
) -> RunOutcome:
    # A risk-valid replay: every quote and bar handled (no conflation), and market time held
    # until everything an instant caused has been handled (lockstep).
    rt = ThreadedRuntime(
        seed=seed,
        clock=ScaledClock(system.start_ns, speed),
        registry=system.registry,
        trace=trace,
        conflate_quotes=not valid,
        lockstep=valid,
    )
    system.venue.set_listener(lambda event: rt.tell("execution", event, sender="venue"))
    show = _Progress(system) if progress else None

    def wait() -> None:
        if show is None:
            rt.exit_event.wait()
            return
        with show:
            while not rt.exit_event.wait(0.125):
                show.update()

    run_until_stopped(rt, wait, quiesce=list(WORKERS))
    portfolio = rt.last_behaviours.get("portfolio")
    code = rt.exit_code if rt.exit_code is not None else EXIT_ERROR
    return RunOutcome(
        code, rt.exit_reason, rt.stats, portfolio if isinstance(portfolio, PortfolioActor) else None
    )


class _Progress:
    """The replay's progress bar (terminals only): timestamps replayed, market day reached."""

    def __init__(self, system: System) -> None:
        self.source = system.source
        self.bar = Bar("replay", len(system.source.batches))
        self.steps = 0

    def __enter__(self) -> _Progress:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.update()
        self.bar.__exit__(None, None, None)

    def tick(self) -> None:
        """One runtime step (called very often: redraws every 2,000th)."""
        self.steps += 1
        if self.steps % 2000 == 0:
            self.update()

    def update(self) -> None:
        """Show where the source's cursor is."""
        cursor = self.source.cursor
        last = self.source.batches[cursor - 1][-1].ts if cursor else None
        self.bar.update(cursor, day(last))


@contextlib.contextmanager
def _loading(data: str, progress: bool) -> Iterator[None]:
    """A spinner while the market data loads (terminals only)."""
    if not progress:
        yield
        return
    with Console(stderr=True).status(f"loading {data} …"):
        yield


def _summarise(
    system: System,
    outcome: RunOutcome,
    wall: float,
    chaos: ChaosPlan | None,
    trace: TraceWriter | None,
) -> dict[str, Any]:
    journal = Journal(system.journal_path)
    try:
        start_cash = Decimal(journal.get_meta("starting_cash") or "0")
        path = market_path(system.source.batches[: system.source.cursor])
        books = books_summary(journal, start_cash, path[-1][1] if path else {})
        figures = risk_figures(journal, start_cash, path)
        problems = check_invariants(journal, system.paper, outcome.portfolio, start_cash)
        emergencies = journal.events("emergency")
        unwinding = unwind_figures(journal)
    finally:
        journal.close()
    events = system.source.emitted
    stats = outcome.stats
    problems += market_data_problems(
        stats.market_sent, stats.market_delivered, stats.conflated, stats.market_dead, stats.crashes
    )
    if stats.lockstep_stalls:
        problems.append(f"lockstep: {stats.lockstep_stalls} timer waits gave up (miscount)")
    return {
        "events": events,
        **books,
        **figures,
        "open_orders": len(system.venue.open_orders()),
        "restarts": stats.restarts,
        "crashes": stats.crashes,
        "escalations": stats.escalations,
        "emergency": emergencies[-1]["detail"] if emergencies else None,
        "dead_letters": stats.dead_letters,
        "messages": stats.delivered,
        "market_messages": stats.market_sent,
        "market_dropped": stats.market_sent - stats.market_delivered,
        "conflated": stats.conflated,
        "chaos_injected": chaos.injected if chaos else 0,
        "invariants_ok": not problems,
        "invariant_problems": problems,
        "exit_code": outcome.exit_code,
        "exit_reason": outcome.exit_reason,
        "trace_records": trace.records if trace else 0,
        "wall_seconds": round(wall, 3),
        "events_per_second": round(events / wall, 1) if wall > 0 else None,
        **unwinding,
    }
