"""The threaded (pykka) runtime: every exit path is reported exactly once; dead letters."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from cryptoj.contract import Actor, Context
from cryptoj.models.base import Message
from cryptoj.models.system import ChildExited
from cryptoj.runtime.common import Registered
from cryptoj.runtime.threaded import ScaledClock, ThreadedRuntime


class Boom(Message, frozen=True, kw_only=True):
    """Makes the worker raise."""


class Note(Message, frozen=True, kw_only=True):
    """A harmless message the worker records."""

    text: str = ""


class Block(Message, frozen=True, kw_only=True):
    """Makes the worker wait for the test's gate (to fill its mailbox behind it)."""


class Sink(Actor):
    """Parent stand-in: records the exit reports it receives."""

    def __init__(self, got: list[ChildExited], arrived: threading.Event) -> None:
        self.got = got
        self.arrived = arrived

    def _handle_child_exited(self, msg: ChildExited, ctx: Context) -> None:
        self.got.append(msg)
        self.arrived.set()


class Worker(Actor):
    """Fails where it is told to."""

    def __init__(self, fail_in: str, gate: threading.Event, seen: list[str]) -> None:
        self.fail_in = fail_in
        self.gate = gate
        self.seen = seen

    def on_start(self, ctx: Context) -> None:
        if self.fail_in == "on_start":
            raise RuntimeError("on_start failed")

    def on_stop(self, ctx: Context) -> None:
        if self.fail_in == "on_stop":
            raise RuntimeError("on_stop failed")

    def _handle_boom(self, msg: Boom, ctx: Context) -> None:
        raise RuntimeError("handler failed")

    def _handle_note(self, msg: Note, ctx: Context) -> None:
        self.seen.append(msg.text)

    def _handle_block(self, msg: Block, ctx: Context) -> None:
        assert self.gate.wait(10), "test gate never opened"


class Harness:
    """A runtime with a sink parent and one worker child."""

    def __init__(self, fail_in: str) -> None:
        self.reports: list[ChildExited] = []
        self.arrived = threading.Event()
        self.gate = threading.Event()
        self.seen: list[str] = []
        registry = {
            "sink": Registered("sink", "main", lambda: Sink(self.reports, self.arrived)),
            "worker": Registered("worker", "sink", lambda: Worker(fail_in, self.gate, self.seen)),
        }
        self.rt = ThreadedRuntime(seed=1, clock=ScaledClock(0, 0.0), registry=registry)
        self.rt.start("sink")

    def wait_for_reports(self) -> list[ChildExited]:
        assert self.arrived.wait(10), "no exit report arrived"
        self.rt.stop("worker", report=False)  # a no-op when it died; a second report would show
        self.rt.quiesce(["sink"])
        return list(self.reports)

    def close(self) -> None:
        self.gate.set()
        self.rt.shutdown()


@pytest.fixture
def harness() -> Callable[[str], Harness]:
    made: list[Harness] = []

    def make(fail_in: str) -> Harness:
        h = Harness(fail_in)
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()


def _one_abnormal(reports: list[ChildExited], where: str) -> None:
    assert len(reports) == 1, reports
    assert reports[0].name == "worker" and reports[0].abnormal
    assert where in reports[0].reason


def test_an_exception_in_on_start_is_reported_once(harness: Callable[[str], Harness]) -> None:
    h = harness("on_start")
    h.rt.start("worker")
    _one_abnormal(h.wait_for_reports(), "on_start failed")
    assert h.rt.stats.crashes == 1


def test_an_exception_in_a_tell_handler_is_reported_once(harness: Callable[[str], Harness]) -> None:
    h = harness("never")
    h.rt.start("worker")
    h.rt.tell("worker", Boom())
    _one_abnormal(h.wait_for_reports(), "handler failed")


def test_an_exception_in_an_ask_handler_crashes_the_actor_and_reaches_the_caller(
    harness: Callable[[str], Harness],
) -> None:
    h = harness("never")
    h.rt.start("worker")
    with pytest.raises(RuntimeError, match="handler failed"):
        h.rt.ask("worker", Boom())
    _one_abnormal(h.wait_for_reports(), "handler failed")
    assert not h.rt.is_alive("worker")


def test_an_exception_in_on_stop_is_reported_once(harness: Callable[[str], Harness]) -> None:
    h = harness("on_stop")
    h.rt.start("worker")
    h.rt.stop("worker", report=True)
    _one_abnormal(h.wait_for_reports(), "on_stop failed")


def test_a_requested_stop_is_reported_once_as_normal(harness: Callable[[str], Harness]) -> None:
    h = harness("never")
    h.rt.start("worker")
    h.rt.stop("worker", report=True)
    reports = h.wait_for_reports()
    assert [(r.name, r.abnormal) for r in reports] == [("worker", False)]


def test_a_stop_asked_by_the_supervisor_is_not_reported(harness: Callable[[str], Harness]) -> None:
    h = harness("never")
    h.rt.start("worker")
    h.rt.stop("worker", report=False)
    h.rt.quiesce(["sink"])
    assert h.reports == []


def test_messages_left_in_a_crashed_mailbox_become_dead_letters(
    harness: Callable[[str], Harness],
) -> None:
    h = harness("never")
    h.rt.start("worker")
    h.rt.tell("worker", Block())
    h.rt.tell("worker", Boom())
    for i in range(3):
        h.rt.tell("worker", Note(text=str(i)))
    h.gate.set()
    h.wait_for_reports()
    assert h.seen == []
    assert h.rt.stats.dead_letters == 3


def test_a_message_to_a_dead_actor_is_a_dead_letter_and_a_restart_gets_the_name_back(
    harness: Callable[[str], Harness],
) -> None:
    h = harness("never")
    h.rt.start("worker")
    h.rt.tell("worker", Boom())
    h.wait_for_reports()
    h.rt.tell("worker", Note(text="lost"))
    assert h.rt.stats.dead_letters == 1
    assert h.rt.start("worker") == 2
    h.rt.tell("worker", Note(text="after restart"))
    h.rt.quiesce(["worker"])
    assert h.seen == ["after restart"]
