"""One trial: a deterministic replay of one parameter set over one window, scored.

This runs inside a worker (a pool process or a Ray actor). The market data comes once per
worker in a :class:`Payload`; each trial slices its window out of it, builds its config, runs
:func:`cryptoj.replay.run_replay` with its own journal in the worker's temporary folder, reads
the equity curve back from that journal and deletes it. Whatever goes wrong (an invalid config,
an exception in the replay, broken end-of-run invariants) comes back as a failed result with
its error; nothing is raised to the sweep.
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptoj.config import ConfigError, parse_config
from cryptoj.journal import Journal
from cryptoj.marketdata.loader import DataError
from cryptoj.marketdata.ticks import Batch, load_market_data
from cryptoj.models.market import Bar
from cryptoj.research.metrics import (
    annualisation,
    calmar,
    max_drawdown,
    sample_equity,
    sharpe,
    simple_returns,
)
from cryptoj.research.space import trial_raw

DAY_NS = 86400 * 10**9


@dataclass(frozen=True)
class Payload:
    """What every worker gets once: the market data and the trials' common settings."""

    data: str
    batches: list[Batch]
    before: list[Batch]  # the data set's batches before ``batches``: the strategies' warm-up
    base: dict[str, Any]
    seed: int
    period_s: float


@dataclass(frozen=True)
class Task:
    """One replay to run: a parameter set over the days ``start``..``end`` (inclusive)."""

    fold: int
    number: int
    phase: str  # "train" or "test"
    params: dict[str, Any]
    start: dt.date
    end: dt.date


@dataclass
class Result:
    """A trial's outcome: figures when it ran, the error when it failed."""

    task: Task
    ok: bool
    error: str = ""
    figures: dict[str, Any] = field(default_factory=dict)
    equity: list[float] = field(default_factory=list)  # one value per objective period
    wall_seconds: float = 0.0


def day_ns(day: dt.date) -> int:
    """00:00 UTC of ``day`` in ns."""
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()) * 10**9


def open_offset(batches: list[Batch]) -> int:
    """ns from a batch's open to its stamp: the bar interval for bar data, 0 for ticks."""
    return next((e.interval_s * 10**9 for b in batches for e in b if isinstance(e, Bar)), 0)


def load_payload_data(
    data: str, products: list[str] | None, start: dt.date | None, end: dt.date | None
) -> tuple[list[Batch], list[Batch]]:
    """The batches of ``start``..``end`` and, with a ``start``, the batches before it (every
    trial's warm-up comes from memory, not from reading the data set again per trial)."""
    batches = load_market_data(data, products=products, start=start, end=end)
    before: list[Batch] = []
    if start is not None:
        try:
            before = load_market_data(data, products=products, end=start - dt.timedelta(days=1))
        except DataError:
            before = []  # nothing precedes the sweep's first day
    return before, batches


def preceding(payload: Payload, start: dt.date) -> list[Batch]:
    """The batches before the day ``start``: what ``replay --from start`` warms up on."""
    cut = day_ns(start) + open_offset(payload.batches)
    return payload.before + [b for b in payload.batches if b[0].ts < cut]


def slice_days(batches: list[Batch], start: dt.date, end: dt.date) -> list[Batch]:
    """The batches of the days ``start``..``end``, as ``replay --from --to`` loads them: bar
    data by the bars' open times (a batch is stamped with its bars' close), trade ticks by
    their own times."""
    offset = open_offset(batches)
    lo, hi = day_ns(start), day_ns(end) + DAY_NS
    return [b for b in batches if lo <= b[0].ts - offset < hi]


def run_trial(payload: Payload, task: Task, workdir: Path) -> Result:
    """Run and score one trial; never raises."""
    t0 = time.perf_counter()
    journal = workdir / f"trial-f{task.fold}-{task.phase}-{task.number}.sqlite"
    try:
        return _run(payload, task, journal, t0)
    except ConfigError as e:
        return Result(task, False, "invalid config: " + "; ".join(e.problems))
    except Exception as e:  # a crashed replay is a failed trial, recorded with its error
        where = traceback.extract_tb(e.__traceback__)[-1]
        error = f"{type(e).__name__}: {e} (at {Path(where.filename).name}:{where.lineno})"
        return Result(task, False, error, wall_seconds=time.perf_counter() - t0)
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{journal}{suffix}").unlink(missing_ok=True)


def _run(payload: Payload, task: Task, journal: Path, t0: float) -> Result:
    from cryptoj.replay import ReplayOptions, run_replay

    cfg = parse_config(trial_raw(payload.base, task.params), f"trial {task.number}")
    batches = slice_days(payload.batches, task.start, task.end)
    if not batches:
        raise ValueError(f"no market data between {task.start} and {task.end}")
    opts = ReplayOptions(
        data=payload.data,
        start=task.start,
        end=task.end,
        journal=str(journal),
        trace=None,
        seed=payload.seed,
    )
    summary, code = run_replay(cfg, opts, batches=batches, before=preceding(payload, task.start))
    j = Journal(str(journal))
    try:
        curve = [(ts, float(eq)) for ts, eq in j.equity_curve()]
    finally:
        j.close()
    if not summary["invariants_ok"]:
        problems = "; ".join(summary["invariant_problems"])
        return Result(task, False, f"replay broke its invariants: {problems}")
    curve.append((batches[-1][-1].ts, float(summary["final_equity"])))
    equity = sample_equity(curve, int(payload.period_s * 10**9))
    rets = simple_returns(equity)
    years = ((task.end - task.start).days + 1) / 365.0
    figures = {
        "final_equity": summary["final_equity"],
        "total_return": summary["final_equity"] / summary["start_equity"] - 1.0,
        "sharpe": sharpe(rets, annualisation(payload.period_s)),
        "calmar": calmar(equity, years),
        "max_drawdown": max(max_drawdown(equity), float(summary["max_drawdown"])),
        "fees_paid": summary["fees_paid"],
        "turnover": summary["turnover"],
        "orders": summary["orders"],
        "fills": summary["fills"],
        "exit_code": code,
    }
    return Result(task, True, figures=figures, equity=equity, wall_seconds=time.perf_counter() - t0)


# -- the worker side of a process pool: the payload arrives once, in the initializer --------

_WORKER: dict[str, Any] = {}


def init_worker(payload: Payload, root: str | None = None) -> None:
    """Pool initializer: keep the payload and make this worker's journal folder (in ``root``,
    default the system's temporary folder), removed when the worker exits."""
    from multiprocessing.util import Finalize

    _WORKER["payload"] = payload
    _WORKER["dir"] = Path(tempfile.mkdtemp(prefix="cryptoj-sweep-", dir=root))
    Finalize(None, shutil.rmtree, args=(_WORKER["dir"], True), exitpriority=10)


def worker_run(task: Task) -> Result:
    """Run a task in a pool worker set up by :func:`init_worker`."""
    return run_trial(_WORKER["payload"], task, _WORKER["dir"])


__all__ = ["Payload", "Result", "Task", "init_worker", "run_trial", "slice_days", "worker_run"]
