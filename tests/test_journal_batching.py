"""Group commit of the journal (issue 19): one transaction per group of market instants.

* A batched replay writes the same journal, row by row and table by table, as one that commits
  every statement on its own, with or without the actors sharing one connection.
* A replay killed with SIGKILL in the middle of a step (after a handler wrote a row, before
  the next commit at the end of an instant) leaves exactly the journal the uncrashed run had after
  the steps committed last: nothing committed is lost, nothing uncommitted is kept, nothing is
  reordered. Every state of the batched journal is therefore a state the unbatched run also
  passes through, so journal-first (an intent before its order, a decision before its effects)
  holds in it whenever it holds in the unbatched run. The killed journal then resumes (the
  paper daemon's restart path) and the run ends with every invariant holding.
* :func:`~cryptoj.journal_batch.step_batch` itself: a failed transaction inside a batch rolls back
  alone, an exception still commits what was written, two connections of one thread commit
  in the order they wrote, and a read on one sees what the other wrote;
  :func:`~cryptoj.journal_batch.shared_connections` gives the journals of one file one
  connection, closed with the last of them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import sqlite3
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from cryptoj.actors.portfolio import PortfolioActor
from cryptoj.config import parse_config
from cryptoj.journal import Journal
from cryptoj.journal_batch import Connection, shared_connections, step_batch
from cryptoj.marketdata.ticks import load_market_data
from cryptoj.runtime.assemble import System, assemble
from cryptoj.runtime.common import ChaosPlan
from cryptoj.runtime.deterministic import DeterministicRuntime
from cryptoj.summary import check_invariants
from cryptoj.supervision.tree import WORKERS

ROOT = Path(__file__).resolve().parents[1]
DATA = "coinbase-1m-2018-04"
DAY = dt.date(2018, 4, 4)
CONFIG = {
    "strategy": {"fast_period": 3, "slow_period": 8, "entry_band": 0.0005},
    "risk": {"volatility_halflife_bars": 5, "max_daily_turnover": 5},
    "trace": {"enabled": False},
}
# (the n-th journal statement written by a handler, instants per commit)
KILL_POINTS = ((25, 1), (400, 64))


def _system(journal: str, *, resume: bool = False) -> System:
    batches = load_market_data(DATA, start=DAY, end=DAY)
    return assemble(
        parse_config(CONFIG),
        batches,
        journal,
        fresh_journal=not resume,
        resume=resume,
        run_tag="s7-resumed" if resume else "s7",  # a restart's venue ids are new ones
        data_name=DATA,
    )


def _started(
    system: System, *, batch: bool = True, crashes: int = 0, instants: int = 64
) -> DeterministicRuntime:
    chaos = None
    if crashes:
        first, last = system.source.first_ts, system.source.last_ts
        chaos = ChaosPlan.seeded(7, crashes, list(WORKERS), first, last)
    rt = DeterministicRuntime(
        seed=7,
        start_ns=system.start_ns,
        registry=system.registry,
        chaos=chaos,
        batch_journal=batch,
        instants_per_commit=instants,
    )
    system.venue.set_listener(lambda event: rt.tell("execution", event, sender="venue"))
    rt.start_root("shutdown")
    rt.start_root("root")
    return rt


def _dump(path: str | Path) -> dict[str, list[tuple[object, ...]]]:
    """Every table of the journal, every row in the order it was inserted."""
    db = sqlite3.connect(path)
    try:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: db.execute(f"SELECT * FROM {t} ORDER BY rowid").fetchall() for t in tables}
    finally:
        db.close()


def _kill_mid_step(journal: str, kill_at: int, instants: int) -> None:
    """(Run in a child process.) Replay, and SIGKILL the process right after the
    ``kill_at``-th statement written by a handler; print how many steps had been handled at
    the last commit and how many had begun when it was killed."""
    shared = shared_connections()
    shared.__enter__()  # as in a replay; the process is killed inside
    rt = _started(_system(journal), instants=instants)
    steps = committed = writes = 0
    in_step = False
    deliver, write, end_batch = rt._deliver, Journal._write, Connection._end

    def counting_step(cell: Any, entry: Any) -> None:  # a step: one message delivered
        nonlocal steps, in_step
        steps += 1
        in_step = True
        deliver(cell, entry)
        in_step = False

    def counting_commit(self: Connection) -> None:
        nonlocal committed
        end_batch(self)
        # inside a step: another connection is about to write, before which this one's rows
        # (of the earlier steps) are committed
        committed = steps - 1 if in_step else steps

    def killing_write(self: Journal, sql: str, args: object = ()) -> sqlite3.Cursor:
        nonlocal writes
        cur = write(self, sql, args)
        writes += 1
        if writes == kill_at:
            print(committed, steps, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        return cur

    rt._deliver = counting_step  # type: ignore[method-assign]
    Connection._end = counting_commit  # type: ignore[method-assign]
    Journal._write = killing_write  # type: ignore[method-assign]
    rt.run()  # the actors' start-up writes are behind: count only the handlers' writes
    raise AssertionError(f"the run ended after {writes} writes, before write {kill_at}")


def _replay_steps(
    journal: str,
    steps: int | None,
    *,
    batch: bool = True,
    share: bool = True,
    crashes: int = 0,
) -> int:
    """Replay ``steps`` steps (all: None); the number of actor crashes."""
    with shared_connections() if share else contextlib.nullcontext():
        rt = _started(_system(journal), batch=batch, crashes=crashes)
        rt.run(max_steps=steps)
        rt.stop_all()
    return rt.stats.crashes


@pytest.mark.parametrize("crashes", [0, 16])
def test_a_batched_replay_writes_the_same_journal_as_an_unbatched_one(
    tmp_path: Path, crashes: int
) -> None:
    """Also with injected crashes (before and after handlers ran, in restarts and stops)."""
    assert _replay_steps(str(tmp_path / "batched.sqlite"), None, crashes=crashes) >= crashes
    _replay_steps(str(tmp_path / "unshared.sqlite"), None, share=False, crashes=crashes)
    _replay_steps(
        str(tmp_path / "unbatched.sqlite"), None, batch=False, share=False, crashes=crashes
    )
    batched = _dump(tmp_path / "batched.sqlite")
    assert batched == _dump(tmp_path / "unbatched.sqlite")
    assert batched == _dump(tmp_path / "unshared.sqlite")
    assert len(batched["fills"]) > 0 and len(batched["intents"]) > 0


@pytest.mark.parametrize(("kill_at", "instants"), KILL_POINTS)
def test_a_kill_mid_step_leaves_the_journal_of_the_last_finished_step(
    tmp_path: Path, kill_at: int, instants: int
) -> None:
    crashed = tmp_path / "crashed.sqlite"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    code = "from tests.test_journal_batching import _kill_mid_step as kill\n"
    code += f"kill({str(crashed)!r}, {kill_at}, {instants})"
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    committed, begun = map(int, proc.stdout.split())
    assert 0 < committed < begun

    before, after = tmp_path / "before.sqlite", tmp_path / "after.sqlite"
    _replay_steps(str(before), committed)
    _replay_steps(str(after), begun)
    # the steps after the last commit had written something, and none of it survived; all
    # before it did, in the same order
    assert _dump(after) != _dump(before)
    assert _dump(crashed) == _dump(before)

    # the paper daemon's restart path resumes from the killed journal; the books reconcile
    with shared_connections():
        system = _system(str(crashed), resume=True)
        rt = _started(system)
        rt.run()
        portfolio = rt.actor("portfolio")
        rt.stop_all()
    journal = Journal(crashed)
    try:
        start_cash = Decimal(journal.get_meta("starting_cash") or "0")
        assert isinstance(portfolio, PortfolioActor)
        assert check_invariants(journal, system.paper, portfolio, start_cash) == []
    finally:
        journal.close()


def test_step_batch_commits_in_write_order_and_on_errors(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    a, b = Journal(path), Journal(path)
    try:
        with pytest.raises(RuntimeError, match="handler failed"), step_batch():
            a.record_event(1, "a", "k", "first")
            assert [e["detail"] for e in b.events()] == ["first"]  # commits a's first
            b.record_event(2, "b", "k", "second")
            a.record_event(3, "a", "k", "third")
            with pytest.raises(sqlite3.IntegrityError), a.transaction() as db:
                db.execute("INSERT INTO events (ts, actor, kind, detail) VALUES (4, 'a', 'k', 'x')")
                db.execute("INSERT INTO meta VALUES ('k', NULL)")  # NOT NULL: fails
            raise RuntimeError("handler failed")
        # everything but the failed transaction, committed, in the order written
        reader = Journal(path)
        try:
            assert [e["detail"] for e in reader.events()] == ["first", "second", "third"]
        finally:
            reader.close()
    finally:
        a.close()
        b.close()


def test_shared_connections_share_one_connection_per_file_until_the_last_close(
    tmp_path: Path,
) -> None:
    with shared_connections():
        a, b = Journal(tmp_path / "j.sqlite"), Journal(tmp_path / "j.sqlite")
        other, mem = Journal(tmp_path / "other.sqlite"), Journal(":memory:")
        assert a._conn is b._conn and other._conn is not a._conn and mem._conn.key is None
        with step_batch():
            a.record_event(1, "a", "k", "one")
            assert [e["detail"] for e in b.events()] == ["one"]  # the same transaction
            a.close()
            b.record_event(2, "b", "k", "two")  # still open: b uses it
        for j in (b, other, mem):
            j.close()
    after = Journal(tmp_path / "j.sqlite")  # outside the block: a connection of its own
    try:
        assert after._conn is not a._conn
        assert [e["detail"] for e in after.events()] == ["one", "two"]
    finally:
        after.close()
