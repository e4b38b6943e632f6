"""Replays are risk-valid or say they are not (issue 15, item 7).

* The threaded runtime in lockstep holds market time until every message an instant caused has
  been handled, and a threaded replay delivers every quote and bar (no conflation).
* ``invariants_ok`` includes "no market data was dropped": a run whose mailboxes conflated
  quotes fails it with a named problem.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from cryptoj.config import Config
from cryptoj.contract import Actor, Context
from cryptoj.models.market import Bar, Quote
from cryptoj.models.system import Tick
from cryptoj.replay import ReplayOptions, run_replay
from cryptoj.runtime.common import Registered
from cryptoj.runtime.threaded import ScaledClock, ThreadedRuntime
from cryptoj.summary import market_data_problems
from tests.stubs import bar, quote

DEFAULT_DATA = "coinbase-1m-2018-04"


class Ticker(Actor):
    """On start, sets timers at 1, 2, 3 ns; on each, sends a bar to ``slow``."""

    def on_start(self, ctx: Context) -> None:
        for t in (1, 2, 3):
            ctx.schedule(t, Tick(kind="t"))

    def _handle_tick(self, msg: Tick, ctx: Context) -> None:
        for _ in range(20):
            ctx.send("slow", bar())


class Slow(Actor):
    """Records the clock when each bar is handled; the first one waits for the gate."""

    def __init__(self, seen: list[int], gate: threading.Event, done: threading.Event) -> None:
        self.seen = seen
        self.gate = gate
        self.done = done

    def _handle_bar(self, msg: Bar, ctx: Context) -> None:
        if not self.seen:
            self.gate.wait(0.5)  # gives a free-running timer thread every chance to run ahead
        self.seen.append(ctx.now())
        if len(self.seen) == 60:
            self.done.set()


def test_lockstep_holds_the_clock_until_every_message_of_an_instant_is_handled() -> None:
    seen: list[int] = []
    gate, done = threading.Event(), threading.Event()
    registry = {
        "slow": Registered("slow", "main", lambda: Slow(seen, gate, done)),
        "ticker": Registered("ticker", "main", Ticker),
    }
    rt = ThreadedRuntime(
        seed=1, clock=ScaledClock(0, 0.0), registry=registry, conflate_quotes=False, lockstep=True
    )
    try:
        rt.start("slow")
        rt.start("ticker")
        assert done.wait(10), f"only {len(seen)} bars handled"
        rt.quiesce(["ticker", "slow"])
    finally:
        rt.shutdown()
    assert seen == [1] * 20 + [2] * 20 + [3] * 20
    assert rt.stats.market_sent == rt.stats.market_delivered == 60
    assert rt.stats.lockstep_stalls == 0


class Gated(Actor):
    """Blocks on its first bar until the gate opens, then handles quotes."""

    def __init__(self, gate: threading.Event) -> None:
        self.gate = gate

    def _handle_bar(self, msg: Bar, ctx: Context) -> None:
        assert self.gate.wait(10), "test gate never opened"

    def _handle_quote(self, msg: Quote, ctx: Context) -> None:
        pass


def test_conflated_quotes_fail_the_market_data_invariant_with_a_named_problem() -> None:
    gate = threading.Event()
    registry = {"gated": Registered("gated", "main", lambda: Gated(gate))}
    rt = ThreadedRuntime(seed=1, clock=ScaledClock(0, 0.0), registry=registry)  # live: conflates
    try:
        rt.start("gated")
        rt.tell("gated", bar(), sender="feed")  # holds the actor while quotes queue up
        for i in range(10):
            rt.tell("gated", quote(bid=str(100 + i), ask=str(101 + i)), sender="feed")
        gate.set()
        rt.quiesce(["gated"])
    finally:
        rt.shutdown()
    s = rt.stats
    assert (s.market_sent, s.market_delivered, s.conflated) == (11, 2, 9)
    problems = market_data_problems(s.market_sent, s.market_delivered, s.conflated, s.market_dead)
    assert problems == [
        "market data dropped: 9 of 11 market messages were not handled "
        "(9 conflated in mailboxes, 0 dead letters, 0 crashes)"
    ]


def test_only_dead_letters_of_a_crash_are_excused() -> None:
    assert market_data_problems(100, 100, 0, 0) == []
    assert market_data_problems(100, 97, 0, 3, crashes=2) == []  # lost while actors were down
    assert market_data_problems(100, 97, 0, 3)  # no crash: a runtime fault
    assert market_data_problems(100, 96, 0, 3, crashes=2)  # one unaccounted for


def _replay(tmp: str, runtime: str, *, valid: bool = True) -> dict[str, Any]:
    opts = ReplayOptions(
        data=DEFAULT_DATA, journal=f"{tmp}/j.sqlite", trace=None, runtime=runtime, risk_valid=valid
    )
    summary, code = run_replay(Config(), opts)
    assert code == 0, summary["exit_reason"]
    return summary


def test_a_threaded_replay_handles_every_quote_and_bar(tmp_path: Path) -> None:
    threaded = _replay(str(tmp_path), "threaded")
    assert threaded["invariants_ok"], threaded["invariant_problems"]
    assert threaded["market_dropped"] == 0 and threaded["conflated"] == 0
    det = _replay(str(tmp_path), "deterministic")
    assert det["market_dropped"] == 0
    assert threaded["market_messages"] == det["market_messages"] > threaded["events"]
    print("threaded", threaded["final_equity"], "deterministic", det["final_equity"])


def test_a_free_running_conflating_replay_reports_what_it_dropped(tmp_path: Path) -> None:
    s = _replay(str(tmp_path), "threaded", valid=False)
    dropped = s["market_dropped"]
    print("free-running threaded replay dropped", dropped, "of", s["market_messages"])
    assert dropped == s["conflated"]
    named = [p for p in s["invariant_problems"] if p.startswith("market data dropped")]
    assert bool(named) == (dropped != 0)
    if dropped:
        assert not s["invariants_ok"]
