"""Supervision tree and deterministic runtime: restart strategies, intensity, backoff, exit reports.

Small test actors (a recording ``Worker`` that crashes on ``Boom``, a ``Sink`` standing in for the
ShutdownActor) run under :class:`DeterministicRuntime` with a registry built by ``flatten_tree``.
Observations come from three places: the actors' shared ``Book`` (starts, stops, messages seen),
the runtime (generations, ``stats``) and the JSONL trace (exit reports and dead letters).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cryptoj.contract import Actor, Context
from cryptoj.models.base import Message
from cryptoj.models.system import ChildExited, RestartChild
from cryptoj.runtime.common import Registered, flatten_tree
from cryptoj.runtime.deterministic import DeterministicRuntime
from cryptoj.supervision.intensity import RestartIntensity
from cryptoj.supervision.spec import Backoff, ChildSpec, Restart, Strategy, SupervisorSpec
from cryptoj.supervision.supervisor import Supervisor
from cryptoj.trace.recorder import TraceWriter

S = 1_000_000_000
T0 = 1_700_000_000 * S


# -- messages and actors ---------------------------------------------------------------------


class Note(Message, frozen=True, kw_only=True):
    """A payload the worker records."""

    text: str = ""


class Boom(Message, frozen=True, kw_only=True):
    """The worker raises in its handler."""


class Wait(Message, frozen=True, kw_only=True):
    """The worker schedules ``Note(text=then)`` to itself after ``delay_ns``."""

    delay_ns: int
    then: str = "woke"


class Shout(Message, frozen=True, kw_only=True):
    """The worker sends ``count`` Notes to ``to``."""

    to: str
    count: int


@dataclass
class Book:
    """What the test actors saw, shared by every instance (instances come and go)."""

    events: list[tuple[str, str, int, int]] = field(default_factory=list)  # what, name, inst, now
    instances: Counter[str] = field(default_factory=Counter)
    received: list[tuple[str, int, str]] = field(default_factory=list)  # name, instance, text
    fail_start: Counter[str] = field(default_factory=Counter)  # upcoming on_start failures
    fail_stop: set[str] = field(default_factory=set)
    sink: list[ChildExited] = field(default_factory=list)

    def lifecycle(self, since: int = 0) -> list[tuple[str, str]]:
        """(start|stop, name) events from index ``since`` on."""
        return [(what, name) for what, name, _, _ in self.events[since:]]

    def starts(self, name: str) -> list[int]:
        """Virtual times at which ``name`` was started."""
        return [now for what, n, _, now in self.events if what == "start" and n == name]


class Worker(Actor):
    """Records everything; raises on Boom, and in on_start / on_stop when the book says so."""

    kind = "worker"

    def __init__(self, name: str, book: Book) -> None:
        self.name = name
        self.book = book
        book.instances[name] += 1
        self.instance = book.instances[name]

    def on_start(self, ctx: Context) -> None:
        self.book.events.append(("start", self.name, self.instance, ctx.now()))
        if self.book.fail_start[self.name] > 0:
            self.book.fail_start[self.name] -= 1
            raise RuntimeError(f"{self.name} cannot start")

    def on_stop(self, ctx: Context) -> None:
        self.book.events.append(("stop", self.name, self.instance, ctx.now()))
        if self.name in self.book.fail_stop:
            raise RuntimeError(f"{self.name} cannot stop cleanly")

    def _handle_note(self, msg: Note, ctx: Context) -> None:
        self.book.received.append((self.name, self.instance, msg.text))

    def _handle_boom(self, msg: Boom, ctx: Context) -> None:
        raise RuntimeError(f"{self.name}: boom")

    def _handle_wait(self, msg: Wait, ctx: Context) -> None:
        ctx.schedule(msg.delay_ns, Note(text=msg.then))

    def _handle_shout(self, msg: Shout, ctx: Context) -> None:
        for i in range(msg.count):
            ctx.send(msg.to, Note(text=f"{self.name}:{i}"))


class Sink(Actor):
    """Stands where the ShutdownActor stands: the root's parent, receiving its escalation."""

    kind = "sink"

    def __init__(self, book: Book) -> None:
        self.book = book

    def _handle_child_exited(self, msg: ChildExited, ctx: Context) -> None:
        self.book.sink.append(msg)


# -- building trees --------------------------------------------------------------------------


def worker(name: str, book: Book, **kw: Any) -> ChildSpec:
    return ChildSpec(name, lambda: Worker(name, book), **kw)


def sup(
    name: str,
    strategy: Strategy,
    *children: ChildSpec | SupervisorSpec,
    max_restarts: int = 10,
    period_s: float = 60.0,
) -> SupervisorSpec:
    return SupervisorSpec(
        name=name,
        strategy=strategy,
        max_restarts=max_restarts,
        period_ns=int(period_s * S),
        children=children,
    )


class Rig:
    """A started tree under a DeterministicRuntime, with a sink as the root's parent and a trace."""

    def __init__(self, spec: SupervisorSpec, book: Book, tmp_path: Path, *, seed: int = 0) -> None:
        self.book = book
        registry = flatten_tree(spec, parent="sink")
        registry["sink"] = Registered("sink", "main", lambda: Sink(book))
        self.trace_path = tmp_path / f"trace-{spec.name}-{seed}.jsonl"
        self.trace = TraceWriter(self.trace_path, fresh=True)
        self.rt = DeterministicRuntime(seed=seed, start_ns=T0, registry=registry, trace=self.trace)
        self.rt.start_root("sink")
        self.rt.start_root(spec.name)
        self.rt.run()

    def tell(self, to: str, *msgs: Message) -> None:
        for m in msgs:
            self.rt.tell(to, m)

    def crash(self, name: str) -> None:
        """Crash ``name`` in its handler and run until idle."""
        self.tell(name, Boom())
        self.rt.run()

    def gen(self, name: str) -> int:
        return self.rt.cells[name].generation

    def supervisor(self, name: str) -> Supervisor:
        actor = self.rt.actor(name)
        assert isinstance(actor, Supervisor), f"{name} is not running"
        return actor

    def records(self) -> list[dict[str, Any]]:
        self.trace.flush()
        return [json.loads(line) for line in self.trace_path.read_bytes().splitlines()]

    def reports(self, child: str) -> list[dict[str, Any]]:
        """ChildExited reports about ``child`` sent to its parent: delivered or dead-lettered."""
        parent = self.rt.registry[child].parent
        return [
            r
            for r in self.records()
            if r["type"] == "ChildExited"
            and r["kind"] in ("deliver", "dead")
            and r["dst"] == parent
            and r["msg"]["name"] == child
        ]

    def dead(self) -> list[dict[str, Any]]:
        return [r for r in self.records() if r["kind"] == "dead"]

    def assert_stats_agree(self) -> None:
        """stats.crashes == abnormal exit reports sent; stats.restarts == Σ (generation − 1)."""
        abnormal = [
            r
            for r in self.records()
            if r["type"] == "ChildExited"
            and r["kind"] in ("deliver", "dead")
            and r["msg"]["abnormal"]
        ]
        assert self.rt.stats.crashes == len(abnormal), (self.rt.stats, abnormal)
        assert self.rt.stats.restarts == sum(c.generation - 1 for c in self.rt.cells.values())


class Prefer:
    """A scheduler that serves the ready mailbox listed first in ``order`` (replaces ``_sched``)."""

    def __init__(self, rt: DeterministicRuntime, order: list[str]) -> None:
        self.rt = rt
        self.order = order

    def randrange(self, n: int) -> int:
        ready = self.rt._ready
        rank = {name: i for i, name in enumerate(self.order)}
        return min(range(n), key=lambda i: (rank.get(ready[i], len(rank)), i))


# -- RestartIntensity ------------------------------------------------------------------------


def test_intensity_allows_max_restarts_then_refuses() -> None:
    ri = RestartIntensity(3, 10 * S)
    assert [ri.add(t * S) for t in (0, 1, 2)] == [True, True, True]
    assert ri.add(3 * S) is False
    assert ri.recent == 4


def test_intensity_window_slides() -> None:
    ri = RestartIntensity(2, 10 * S)
    assert ri.add(0)
    assert ri.add(5 * S)
    assert ri.add(10 * S)  # the restart at 0 is exactly one period old: out of the window
    assert not ri.add(14 * S)  # 5, 10, 14: three within 10 s
    assert ri.add(25 * S)  # everything before 15 s has left the window
    assert ri.recent == 1


def test_intensity_zero_allows_no_restart() -> None:
    assert RestartIntensity(0, S).add(0) is False


@settings(max_examples=300, deadline=None)
@given(
    max_restarts=st.integers(0, 5),
    period=st.integers(1, 50),
    gaps=st.lists(st.integers(0, 30), min_size=1, max_size=40),
)
def test_intensity_matches_naive_model(max_restarts: int, period: int, gaps: list[int]) -> None:
    """add(t) is False iff more than max_restarts restarts (this one too) lie in (t - period, t]."""
    ri = RestartIntensity(max_restarts, period)
    now, history = 0, []
    for gap in gaps:
        now += gap
        history.append(now)
        in_window = sum(1 for t in history if now - period < t <= now)
        assert ri.add(now) == (in_window <= max_restarts), (history, max_restarts, period)
        assert ri.recent == in_window


# -- Backoff (pure) --------------------------------------------------------------------------


@given(
    attempt=st.integers(0, 80),
    u=st.floats(0, 1, exclude_max=True),
    jitter=st.floats(0, 0.9),
    min_s=st.integers(1, 10),
    factor=st.integers(1, 100),
)
def test_backoff_delay_within_jitter_bounds(
    attempt: int, u: float, jitter: float, min_s: int, factor: int
) -> None:
    b = Backoff(min_s * S, min_s * factor * S, jitter)
    base = min(b.max_ns, b.min_ns * 2**attempt)
    d = b.delay_ns(attempt, u)
    assert base * (1 - jitter) - 1 <= d <= base * (1 + jitter) + 1
    assert b.delay_ns(attempt + 1, u) >= d  # never shrinks with the attempt number


# -- strategies ------------------------------------------------------------------------------


def test_one_for_one_restarts_only_the_crashed_child(tmp_path: Path) -> None:
    book = Book()
    spec = sup("sup", Strategy.ONE_FOR_ONE, *(worker(n, book) for n in "abc"))
    rig = Rig(spec, book, tmp_path)
    assert book.lifecycle() == [("start", "a"), ("start", "b"), ("start", "c")]
    mark = len(book.events)
    rig.crash("b")
    assert book.lifecycle(mark) == [("start", "b")]
    assert (rig.gen("a"), rig.gen("b"), rig.gen("c")) == (1, 2, 1)
    assert rig.supervisor("sup").generations == {"a": 1, "b": 2, "c": 1}
    rig.assert_stats_agree()
    assert rig.rt.stats.restarts == 1


def test_one_for_all_restarts_all_in_start_order_after_stopping_in_reverse(
    tmp_path: Path,
) -> None:
    book = Book()
    spec = sup("sup", Strategy.ONE_FOR_ALL, *(worker(n, book) for n in "abcd"))
    rig = Rig(spec, book, tmp_path)
    mark = len(book.events)
    rig.crash("b")
    assert book.lifecycle(mark) == [
        ("stop", "d"),
        ("stop", "c"),
        ("stop", "a"),
        ("start", "a"),
        ("start", "b"),
        ("start", "c"),
        ("start", "d"),
    ]
    assert [rig.gen(n) for n in "abcd"] == [2, 2, 2, 2]
    rig.assert_stats_agree()
    assert rig.rt.stats.restarts == 4
    assert rig.supervisor("sup").intensity.recent == 1  # one restart decision, not four


def test_rest_for_one_restarts_the_crashed_child_and_those_after_it(tmp_path: Path) -> None:
    book = Book()
    spec = sup("sup", Strategy.REST_FOR_ONE, *(worker(n, book) for n in "abcd"))
    rig = Rig(spec, book, tmp_path)
    mark = len(book.events)
    rig.crash("b")
    assert book.lifecycle(mark) == [
        ("stop", "d"),
        ("stop", "c"),
        ("start", "b"),
        ("start", "c"),
        ("start", "d"),
    ]
    assert [rig.gen(n) for n in "abcd"] == [1, 2, 2, 2]
    mark = len(book.events)
    rig.crash("d")  # the last child restarts alone
    assert book.lifecycle(mark) == [("start", "d")]
    rig.assert_stats_agree()


def test_an_operator_restart_stops_the_running_child_and_restarts_by_strategy(
    tmp_path: Path,
) -> None:
    book = Book()
    spec = sup("sup", Strategy.REST_FOR_ONE, *(worker(n, book) for n in "abcd"))
    rig = Rig(spec, book, tmp_path)
    mark = len(book.events)
    rig.tell("sup", RestartChild(name="b", reason="wedged"))
    rig.rt.run()
    assert book.lifecycle(mark) == [
        ("stop", "b"),  # still running: stopped first (it did not fail)
        ("stop", "d"),
        ("stop", "c"),
        ("start", "b"),
        ("start", "c"),
        ("start", "d"),
    ]
    assert [rig.gen(n) for n in "abcd"] == [1, 2, 2, 2]
    assert rig.supervisor("sup").intensity.recent == 1  # counts like any restart
    mark = len(book.events)
    rig.tell("sup", RestartChild(name="zz", reason="no such child"))
    rig.rt.run()
    assert book.lifecycle(mark) == []


# -- restart types ---------------------------------------------------------------------------


def test_transient_child_restarted_after_crash_not_after_normal_stop(tmp_path: Path) -> None:
    book = Book()
    spec = sup("sup", Strategy.ONE_FOR_ONE, worker("t", book, restart=Restart.TRANSIENT))
    rig = Rig(spec, book, tmp_path)
    rig.crash("t")
    assert rig.rt.is_alive("t") and rig.gen("t") == 2
    # A normal exit reported to the supervisor. No actor API stops itself normally, so this uses
    # the runtime's own stop path with reporting on (what a self-stop would do).
    rig.rt.stop("t", report=True)
    rig.rt.run()
    reports = rig.reports("t")
    assert [(r["msg"]["generation"], r["msg"]["abnormal"]) for r in reports] == [
        (1, True),
        (2, False),
    ]
    assert reports[-1]["kind"] == "deliver"
    assert not rig.rt.is_alive("t")
    assert rig.gen("t") == 2
    assert "t" not in rig.supervisor("sup").generations
    assert book.sink == []


def test_temporary_child_is_never_restarted(tmp_path: Path) -> None:
    book = Book()
    spec = sup(
        "sup",
        Strategy.ONE_FOR_ALL,
        worker("a", book),
        worker("tmp", book, restart=Restart.TEMPORARY),
    )
    rig = Rig(spec, book, tmp_path)
    mark = len(book.events)
    rig.crash("tmp")
    assert book.lifecycle(mark) == []  # one_for_all does not fire for a temporary child either
    assert not rig.rt.is_alive("tmp") and rig.gen("tmp") == 1
    assert rig.rt.stats.restarts == 0
    rig.tell("tmp", Note(text="anyone?"))
    rig.rt.run()
    assert [(r["dst"], r["type"], r["note"]) for r in rig.dead()] == [
        ("tmp", "Note", "receiver not running")
    ]
    rig.assert_stats_agree()


# -- stale reports ---------------------------------------------------------------------------


def test_stale_child_exited_is_ignored(tmp_path: Path) -> None:
    """Two children crash before the supervisor hears of either: one restart round, not two."""
    book = Book()
    spec = sup("sup", Strategy.ONE_FOR_ALL, *(worker(n, book) for n in "abc"))
    rig = Rig(spec, book, tmp_path)
    rig.rt._sched = Prefer(rig.rt, ["a", "b", "c"])  # workers before the supervisor
    rig.tell("a", Boom())
    rig.tell("b", Boom())
    rig.rt.run()
    # a's report restarted everyone (b included); b's report carries generation 1 → ignored.
    assert [rig.gen(n) for n in "abc"] == [2, 2, 2]
    assert book.instances == Counter({"a": 2, "b": 2, "c": 2})
    assert rig.supervisor("sup").intensity.recent == 1
    delivered = [r["msg"]["generation"] for r in rig.reports("b") if r["kind"] == "deliver"]
    assert delivered == [1]
    # A late report forged for an instance long gone changes nothing either.
    rig.tell("sup", ChildExited(ts=T0, name="c", generation=1, abnormal=True, reason="late"))
    rig.rt.run()
    assert [rig.gen(n) for n in "abc"] == [2, 2, 2]
    assert rig.supervisor("sup").intensity.recent == 1


# -- intensity and escalation -----------------------------------------------------------------


def test_exceeding_intensity_stops_children_in_reverse_and_escalates(tmp_path: Path) -> None:
    book = Book()
    spec = sup("sup", Strategy.ONE_FOR_ONE, *(worker(n, book) for n in "abc"), max_restarts=1)
    rig = Rig(spec, book, tmp_path)
    rig.crash("b")  # restart 1 of 1
    assert rig.gen("b") == 2 and book.sink == []
    mark = len(book.events)
    rig.crash("b")  # restart 2: too many
    assert book.lifecycle(mark) == [("stop", "c"), ("stop", "a")]
    assert not any(rig.rt.is_alive(n) for n in ("sup", "a", "b", "c"))
    assert len(book.sink) == 1
    exit_ = book.sink[0]
    assert (exit_.name, exit_.generation, exit_.abnormal) == ("sup", 1, True)
    assert "RestartIntensityExceeded" in exit_.reason
    assert rig.rt.stats.escalations == 1
    assert len(rig.reports("sup")) == 1
    rig.assert_stats_agree()


def test_nested_escalation_reaches_the_root_then_the_sink(tmp_path: Path) -> None:
    book = Book()
    inner = sup("inner", Strategy.ONE_FOR_ONE, worker("w", book), max_restarts=1)
    root = sup("root", Strategy.ONE_FOR_ONE, inner, worker("x", book), max_restarts=1)
    rig = Rig(root, book, tmp_path)
    rig.crash("w")
    rig.crash("w")  # inner exceeds 1 restart → escalates; root restarts inner (and so w)
    assert rig.rt.stats.escalations == 1
    assert rig.rt.is_alive("inner") and rig.gen("inner") == 2
    assert rig.rt.is_alive("w") and rig.gen("w") == 3
    assert rig.gen("x") == 1 and book.instances["x"] == 1  # one_for_one at the root
    assert book.sink == []
    inner_reports = rig.reports("inner")
    assert [(r["kind"], r["msg"]["generation"], r["msg"]["abnormal"]) for r in inner_reports] == [
        ("deliver", 1, True)
    ]
    mark = len(book.events)
    rig.crash("w")
    rig.crash("w")  # inner escalates again: root's second restart in the period is one too many
    assert rig.rt.stats.escalations == 3
    assert ("stop", "x") in book.lifecycle(mark)
    assert not any(rig.rt.is_alive(n) for n in ("root", "inner", "w", "x"))
    assert [(m.name, m.abnormal) for m in book.sink] == [("root", True)]
    assert "RestartIntensityExceeded" in book.sink[0].reason
    assert len(rig.reports("root")) == 1
    rig.assert_stats_agree()


# -- backoff ---------------------------------------------------------------------------------


def test_backoff_delays_restart_grows_exponentially_and_resets(tmp_path: Path) -> None:
    backoff = Backoff(min_ns=S, max_ns=8 * S, jitter=0.2, reset_after_ns=60 * S)
    book = Book()
    spec = sup("sup", Strategy.ONE_FOR_ONE, worker("f", book, backoff=backoff), max_restarts=100)
    rig = Rig(spec, book, tmp_path, seed=3)
    delays = []
    for _ in range(6):
        crashed_at = rig.rt.now_ns
        rig.tell("f", Boom())
        rig.rt.run(max_steps=2)  # f crashes; the supervisor schedules StartChild
        assert not rig.rt.is_alive("f") and rig.rt.now_ns == crashed_at
        rig.tell("f", Note(text="while restarting"))  # a dead letter
        rig.rt.run()  # the clock jumps to the timer; f restarts
        assert rig.rt.is_alive("f")
        delays.append(book.starts("f")[-1] - crashed_at)
    bases = [S, 2 * S, 4 * S, 8 * S, 8 * S, 8 * S]
    for d, base in zip(delays, bases, strict=True):
        assert 0.8 * base <= d <= 1.2 * base, (delays, bases)
    assert delays[3] > delays[0] * 4  # grows: 8 s ± 20 % against 1 s ± 20 %
    assert len(set(delays)) == len(delays)  # jittered
    dead = rig.dead()
    assert [(r["dst"], r["msg"]["text"]) for r in dead] == [("f", "while restarting")] * 6
    assert rig.rt.stats.dead_letters == 6
    # A stable period (longer than reset_after) resets the attempt counter.
    rig.tell("f", Wait(delay_ns=61 * S))
    rig.rt.run()
    crashed_at = rig.rt.now_ns
    rig.crash("f")
    assert 0.8 * S <= book.starts("f")[-1] - crashed_at <= 1.2 * S
    rig.assert_stats_agree()


def test_backoff_jitter_depends_on_the_seed(tmp_path: Path) -> None:
    delays = set()
    for seed in range(5):
        book = Book()
        spec = sup("sup", Strategy.ONE_FOR_ONE, worker("f", book, backoff=Backoff(S, 8 * S)))
        rig = Rig(spec, book, tmp_path, seed=seed)
        rig.crash("f")
        delays.add(book.starts("f")[-1] - T0)
    assert len(delays) == 5
    assert all(0.8 * S <= d <= 1.2 * S for d in delays)


# -- every exit path is reported exactly once -------------------------------------------------


def test_crash_in_on_start_is_reported_once(tmp_path: Path) -> None:
    book = Book()
    book.fail_start["b"] = 1
    spec = sup("sup", Strategy.ONE_FOR_ONE, worker("a", book), worker("b", book))
    rig = Rig(spec, book, tmp_path)
    reports = rig.reports("b")
    assert len(reports) == 1
    assert reports[0]["msg"]["generation"] == 1 and reports[0]["msg"]["abnormal"]
    assert reports[0]["msg"]["reason"].startswith("on_start")
    assert rig.rt.is_alive("b") and rig.gen("b") == 2
    assert rig.rt.stats.crashes == 1 and rig.rt.stats.restarts == 1
    # The restarted instance fails in on_start too: one more report, one more restart.
    book.fail_start["b"] = 1
    rig.crash("b")
    assert [r["msg"]["generation"] for r in rig.reports("b")] == [1, 2, 3]
    assert rig.rt.is_alive("b") and rig.gen("b") == 4
    assert rig.rt.stats.crashes == 3
    rig.assert_stats_agree()


def test_crash_in_handler_is_reported_once(tmp_path: Path) -> None:
    book = Book()
    spec = sup("sup", Strategy.ONE_FOR_ONE, worker("a", book))
    rig = Rig(spec, book, tmp_path)
    rig.crash("a")
    reports = rig.reports("a")
    assert [(r["kind"], r["msg"]["generation"], r["msg"]["abnormal"]) for r in reports] == [
        ("deliver", 1, True)
    ]
    assert "Boom" in reports[0]["msg"]["reason"]
    assert rig.rt.stats.crashes == 1 and rig.rt.stats.restarts == 1
    assert ("stop", "a") not in book.lifecycle()  # no on_stop after a crash
    rig.assert_stats_agree()


def test_crash_in_on_stop_during_supervisor_stop_is_reported_once(tmp_path: Path) -> None:
    """one_for_all stops c, whose on_stop raises: that exit is reported once (and ignored)."""
    book = Book()
    book.fail_stop.add("c")
    spec = sup("sup", Strategy.ONE_FOR_ALL, *(worker(n, book) for n in "abc"))
    rig = Rig(spec, book, tmp_path)
    rig.crash("a")
    assert [rig.gen(n) for n in "abc"] == [2, 2, 2]
    reports = rig.reports("c")
    assert len(reports) == 1, f"c's on_stop crash was reported {len(reports)} times, expected 1"
    msg = reports[0]["msg"]
    assert (msg["generation"], msg["abnormal"]) == (1, True)
    assert msg["reason"].startswith("on_stop")
    assert rig.supervisor("sup").intensity.recent == 1  # stale: no second restart round
    rig.assert_stats_agree()


def test_crash_in_on_stop_during_stop_all_is_reported_once(tmp_path: Path) -> None:
    book = Book()
    book.fail_stop.add("b")
    spec = sup("sup", Strategy.ONE_FOR_ONE, worker("a", book), worker("b", book))
    rig = Rig(spec, book, tmp_path)
    rig.rt.stop_all()
    assert book.lifecycle()[-2:] == [("stop", "b"), ("stop", "a")]
    assert not any(rig.rt.is_alive(n) for n in ("sink", "sup", "a", "b"))
    reports = rig.reports("b")
    assert len(reports) == 1, f"b's on_stop crash was reported {len(reports)} times, expected 1"
    assert reports[0]["msg"]["abnormal"] and reports[0]["msg"]["reason"].startswith("on_stop")
    rig.assert_stats_agree()


def test_orderly_stop_all_reports_nothing_and_runs_every_on_stop_in_reverse(
    tmp_path: Path,
) -> None:
    book = Book()
    inner = sup("inner", Strategy.ONE_FOR_ONE, worker("b", book), worker("c", book))
    spec = sup("root", Strategy.ONE_FOR_ONE, worker("a", book), inner)
    rig = Rig(spec, book, tmp_path)
    rig.rt.stop_all()
    assert book.lifecycle()[-3:] == [("stop", "c"), ("stop", "b"), ("stop", "a")]
    assert all(r["kind"] != "dead" for r in rig.records())
    assert rig.rt.stats.crashes == 0 and rig.rt.stats.dead_letters == 0


# -- dead letters and stable names ------------------------------------------------------------


def test_messages_left_in_a_crashed_mailbox_are_dead_letters(tmp_path: Path) -> None:
    book = Book()
    spec = sup("sup", Strategy.ONE_FOR_ONE, worker("w", book))
    rig = Rig(spec, book, tmp_path)
    rig.tell("w", Note(text="before"), Boom(), Note(text="x"), Note(text="y"))
    rig.rt.run()
    assert book.received == [("w", 1, "before")]
    dead = rig.dead()
    assert [(r["src"], r["dst"], r["type"], r["msg"]["text"], r["note"]) for r in dead] == [
        ("main", "w", "Note", "x", "left in mailbox of a stopped actor"),
        ("main", "w", "Note", "y", "left in mailbox of a stopped actor"),
    ]
    assert all(r["id"] and r["corr"] for r in dead)
    assert rig.rt.stats.dead_letters == 2
    # The stable name reaches the new instance.
    rig.tell("w", Note(text="after"))
    rig.rt.run()
    assert book.received == [("w", 1, "before"), ("w", 2, "after")]
    assert rig.rt.stats.dead_letters == 2


def test_messages_to_a_dead_actor_are_dead_letters(tmp_path: Path) -> None:
    book = Book()
    spec = sup("sup", Strategy.ONE_FOR_ONE, worker("a", book), max_restarts=0)
    rig = Rig(spec, book, tmp_path)
    rig.crash("a")  # max_restarts=0: the supervisor gives up at once
    assert not rig.rt.is_alive("sup") and not rig.rt.is_alive("a")
    rig.tell("a", Note(text="1"))
    rig.tell("sup", Note(text="2"))
    rig.tell("nobody", Note(text="3"))
    rig.rt.run()
    assert [(r["dst"], r["note"]) for r in rig.dead()] == [
        ("a", "receiver not running"),
        ("sup", "receiver not running"),
        ("nobody", "receiver not running"),
    ]
    assert rig.rt.stats.dead_letters == 3


def test_stable_name_survives_restarts(tmp_path: Path) -> None:
    book = Book()
    spec = sup("sup", Strategy.ONE_FOR_ALL, worker("a", book), worker("b", book))
    rig = Rig(spec, book, tmp_path)
    for i in range(3):
        rig.crash("a")
        rig.tell("a", Note(text=f"a{i}"))
        rig.tell("b", Note(text=f"b{i}"))
        rig.rt.run()
    # Each message sent to a name after a restart reaches the instance running then.
    assert sorted(book.received) == [
        ("a", 2, "a0"),
        ("a", 3, "a1"),
        ("a", 4, "a2"),
        ("b", 2, "b0"),
        ("b", 3, "b1"),
        ("b", 4, "b2"),
    ]
    assert rig.rt.stats.dead_letters == 0


def test_timer_of_a_crashed_instance_is_not_delivered_to_its_successor(tmp_path: Path) -> None:
    """A timer belongs to the instance that set it: after a crash it must become a dead letter.

    Otherwise the successor receives its predecessor's timers on top of its own (the FeedActor
    then runs two poll chains and replays market data ahead of its timestamps).
    """
    book = Book()
    spec = sup("sup", Strategy.ONE_FOR_ONE, worker("w", book))
    rig = Rig(spec, book, tmp_path)
    rig.tell("w", Wait(delay_ns=10 * S, then="set by instance 1"), Boom())
    rig.rt.run()
    assert rig.gen("w") == 2
    assert ("w", 2, "set by instance 1") not in book.received
    assert [(r["dst"], r["msg"]["text"]) for r in rig.dead()] == [("w", "set by instance 1")]


# -- determinism ------------------------------------------------------------------------------


def _chatter(directory: Path, seed: int) -> tuple[bytes, list[str]]:
    """Four senders shout at one collector concurrently; one of them crashes midway."""
    book = Book()
    names = ["s1", "s2", "s3", "s4"]
    spec = sup("sup", Strategy.ONE_FOR_ONE, *(worker(n, book) for n in [*names, "col"]))
    rig = Rig(spec, book, directory, seed=seed)
    for n in names:
        rig.tell(n, Shout(to="col", count=5))
    rig.tell("s3", Boom(), Shout(to="col", count=2))
    rig.tell("col", Wait(delay_ns=S, then="tick"))
    rig.rt.run()
    rig.trace.close()
    order = [text for name, _, text in book.received if name == "col"]
    return rig.trace_path.read_bytes(), order


@pytest.mark.parametrize("seed", [0, 1, 42])
def test_same_seed_gives_byte_identical_traces(tmp_path: Path, seed: int) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    trace_a, order_a = _chatter(tmp_path / "a", seed)
    trace_b, order_b = _chatter(tmp_path / "b", seed)
    assert trace_a == trace_b
    assert order_a == order_b
    assert len(order_a) == 21  # 4 × 5 notes + the timer


def test_different_seeds_give_different_interleavings(tmp_path: Path) -> None:
    traces, orders = set(), set()
    for seed in range(10):
        d = tmp_path / str(seed)
        d.mkdir()
        trace, order = _chatter(d, seed)
        traces.add(trace)
        orders.add(tuple(order))
        # Per-sender FIFO holds under every interleaving.
        for n in ("s1", "s2", "s4"):
            mine = [t for t in order if t.startswith(n + ":")]
            assert mine == [f"{n}:{i}" for i in range(5)]
    assert len(orders) >= 5, f"only {len(orders)} distinct interleavings over 10 seeds"
    assert len(traces) >= len(orders)
