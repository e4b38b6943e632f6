"""Group commit in the threaded runtime: one journal transaction per mailbox batch, and nothing
the batch sends leaves the actor before that transaction is committed (journal first)."""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cryptoj.contract import Actor, Context
from cryptoj.journal import Journal
from cryptoj.models.base import Message
from cryptoj.models.orders import CancelOrder
from cryptoj.models.system import ChildExited
from cryptoj.runtime.common import Registered
from cryptoj.runtime.threaded import BATCH_MAX, ScaledClock, ThreadedRuntime
from tests.stubs import spawn_daemon


class Note(Message, frozen=True, kw_only=True):
    """Journal ``text`` as an event, then tell the reader."""

    text: str


class Boom(Message, frozen=True, kw_only=True):
    """Journal and tell like a note, then raise."""

    text: str


class Block(Message, frozen=True, kw_only=True):
    """Wait for the test's gate (so the mailbox fills up behind it)."""


class Writer(Actor):
    """Journals each note in its own connection, then sends it on; before each, records what a
    second plain connection sees committed (``peeks``)."""

    def __init__(self, path: str, gate: threading.Event, peeks: list[list[str]]) -> None:
        self.path = path
        self.gate = gate
        self.peeks = peeks
        self.journal: Journal | None = None
        self.peek: sqlite3.Connection | None = None

    def on_start(self, ctx: Context) -> None:
        self.journal = Journal(self.path)
        self.peek = sqlite3.connect(self.path)

    def on_stop(self, ctx: Context) -> None:
        if self.journal is not None:
            self.journal.close()
        if self.peek is not None:
            self.peek.close()

    def _note(self, text: str, ctx: Context) -> None:
        assert self.journal is not None and self.peek is not None
        rows = self.peek.execute("SELECT detail FROM events ORDER BY seq").fetchall()
        self.peeks.append([r[0] for r in rows])
        self.journal.record_event(ctx.now(), "writer", "note", text)
        ctx.send("reader", Note(ts=ctx.now(), text=text))

    def _handle_note(self, msg: Note, ctx: Context) -> None:
        self._note(msg.text, ctx)

    def _handle_cancel_order(self, msg: CancelOrder, ctx: Context) -> None:
        assert self.journal is not None
        self.journal.record_event(ctx.now(), "writer", "note", msg.client_order_id)
        ctx.send("reader", msg)

    def _handle_boom(self, msg: Boom, ctx: Context) -> None:
        self._note(msg.text, ctx)
        raise RuntimeError("handler failed")

    def _handle_block(self, msg: Block, ctx: Context) -> None:
        assert self.gate.wait(10), "test gate never opened"


class Reader(Actor):
    """On each note, reads the committed notes through a connection of its own."""

    def __init__(self, path: str, seen: list[tuple[str, list[str]]], done: threading.Event) -> None:
        self.path = path
        self.seen = seen
        self.done = done
        self.journal: Journal | None = None

    def on_start(self, ctx: Context) -> None:
        self.journal = Journal(self.path)

    def on_stop(self, ctx: Context) -> None:
        if self.journal is not None:
            self.journal.close()

    def _handle_note(self, msg: Note, ctx: Context) -> None:
        assert self.journal is not None
        self.seen.append((msg.text, [e["detail"] for e in self.journal.events("note")]))
        self.done.set()

    def _handle_cancel_order(self, msg: CancelOrder, ctx: Context) -> None:
        self._handle_note(Note(ts=msg.ts, text=msg.client_order_id), ctx)

    def _handle_child_exited(self, msg: ChildExited, ctx: Context) -> None:
        pass


class Harness:
    """A writer (group commit on unless told) under the reader as its parent."""

    def __init__(self, tmp: Path, group_commit: bool = True) -> None:
        self.path = str(tmp / "journal.sqlite")
        Journal(self.path).close()  # the schema exists before the actors open it
        self.gate = threading.Event()
        self.done = threading.Event()
        self.seen: list[tuple[str, list[str]]] = []
        self.peeks: list[list[str]] = []
        registry = {
            "reader": Registered("reader", "main", lambda: Reader(self.path, self.seen, self.done)),
            "writer": Registered(
                "writer", "reader", lambda: Writer(self.path, self.gate, self.peeks)
            ),
        }
        self.rt = ThreadedRuntime(
            seed=1,
            clock=ScaledClock(0, 0.0),
            registry=registry,
            group_commit=("writer",) if group_commit else (),
        )
        self.rt.start("reader")
        self.rt.start("writer")

    def blocked_then(self, *msgs: Message) -> None:
        """Hold the writer, fill its mailbox with ``msgs``, let it go, wait for everything."""
        self.rt.tell("writer", Block(ts=0))
        for m in msgs:
            self.rt.tell("writer", m)
        self.gate.set()
        self.rt.quiesce(["writer", "reader"])

    def journalled(self) -> list[str]:
        j = Journal(self.path)
        try:
            return [e["detail"] for e in j.events("note")]
        finally:
            j.close()


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(tmp_path)
    yield h
    h.gate.set()
    h.rt.shutdown()


def test_a_mailbox_batch_is_committed_before_anything_it_sent_arrives(harness: Harness) -> None:
    texts = [f"n{i}" for i in range(5)]
    harness.blocked_then(*(Note(ts=0, text=t) for t in texts))
    assert [text for text, _ in harness.seen] == texts  # in order, none lost
    # the five were one batch: its sends left after its one commit, so the reader's first
    # look already finds every row (and every message finds its own row: journal first)
    assert all(committed == texts for _, committed in harness.seen)
    assert harness.journalled() == texts


def test_a_batch_ends_after_batch_max_messages(harness: Harness) -> None:
    texts = [f"n{i}" for i in range(BATCH_MAX + 3)]
    harness.blocked_then(*(Note(ts=0, text=t) for t in texts))
    assert [text for text, _ in harness.seen] == texts
    # the Block opened the first batch: it holds BATCH_MAX - 1 notes; the rest are the next
    # one, which starts with the first batch committed and nothing of its own
    first = BATCH_MAX - 1
    assert harness.peeks[first - 1] == []
    assert harness.peeks[first] == texts[:first]
    assert harness.peeks[-1] == texts[:first]
    assert all(text in committed for text, committed in harness.seen)


def test_a_batch_ends_right_after_a_handler_that_sent_an_order_or_a_cancel(
    harness: Harness,
) -> None:
    harness.blocked_then(
        Note(ts=0, text="a"),
        CancelOrder(ts=0, client_order_id="x"),
        Note(ts=0, text="b"),
        Note(ts=0, text="c"),
    )
    assert [text for text, _ in harness.seen] == ["a", "x", "b", "c"]
    # the cancel did not wait for b and c: its batch (a, x) was committed before b was handled
    # (peeks: before each note, a, b and c)
    assert harness.peeks == [[], ["a", "x"], ["a", "x"]]
    assert harness.seen[1][1][:2] == ["a", "x"]


def test_a_failing_handler_commits_and_sends_what_was_done_before_it(harness: Harness) -> None:
    harness.blocked_then(Note(ts=0, text="a"), Boom(ts=0, text="boom"), Note(ts=0, text="after"))
    assert harness.rt.stats.crashes == 1
    # as without batching: the writes and sends made before the exception took effect; the
    # note behind it is a dead letter of the stopped actor
    assert [text for text, _ in harness.seen] == ["a", "boom"]
    assert all(committed == ["a", "boom"] for _, committed in harness.seen)
    assert harness.journalled() == ["a", "boom"]
    assert harness.rt.stats.dead_letters == 1


def test_without_group_commit_every_write_commits_on_its_own(tmp_path: Path) -> None:
    h = Harness(tmp_path, group_commit=False)
    try:
        texts = [f"n{i}" for i in range(5)]
        h.blocked_then(*(Note(ts=0, text=t) for t in texts))
        assert [text for text, _ in h.seen] == texts
        # each message finds at least its own row and those before it
        assert all(committed[: i + 1] == texts[: i + 1] for i, (_, committed) in enumerate(h.seen))
    finally:
        h.gate.set()
        h.rt.shutdown()


def test_a_killed_daemon_never_has_an_order_its_portfolio_had_not_journalled(
    tmp_path: Path,
) -> None:
    # the real daemon (group commit on by default), orders whole (each one has its intent),
    # SIGKILLed while it trades as fast as it can
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        f"feed:\n  speed: 0\njournal:\n  path: {tmp_path / 'journal.sqlite'}\n"
        "trace:\n  enabled: false\nexecution:\n  split_enabled: false\n"
        "strategy:\n  fast_period: 3\n  slow_period: 8\n  entry_band: 0.0005\n"
        "ops:\n  port: 0\n"
    )
    # the data's replay makes 26 orders, the live daemon fewer when quotes are conflated
    # (16 seen on a loaded machine): it is killed once 10 are in, mid-way through its trading
    proc = spawn_daemon(cfg)
    try:
        deadline = time.monotonic() + 60
        orders = 0
        while time.monotonic() < deadline and orders < 10 and proc.poll() is None:
            time.sleep(0.05)  # polling interval of this test only
            with (
                contextlib.suppress(sqlite3.OperationalError),  # not created yet
                contextlib.closing(sqlite3.connect(tmp_path / "journal.sqlite")) as c,
            ):
                orders = c.execute("SELECT count(*) FROM orders").fetchone()[0]
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.communicate(timeout=15)
    assert proc.returncode == -signal.SIGKILL and orders >= 10
    with contextlib.closing(sqlite3.connect(tmp_path / "journal.sqlite")) as c:
        orphans = c.execute(
            "SELECT client_order_id FROM orders WHERE client_order_id NOT IN"
            " (SELECT client_order_id FROM intents)"
        ).fetchall()
        unbooked = c.execute(
            "SELECT fill_id FROM fills WHERE fill_id NOT IN (SELECT fill_id FROM position_changes)"
        ).fetchall()
        legless = c.execute(
            "SELECT client_order_id FROM intents WHERE client_order_id NOT IN"
            " (SELECT client_order_id FROM rebalance_legs)"
        ).fetchall()
        # the ExecutionActor: a fill reaches the portfolio only once the execution's row of
        # its order is durable past PENDING (the venue's acceptance journalled first)
        early = c.execute(
            "SELECT fill_id FROM fills WHERE client_order_id NOT IN"
            " (SELECT client_order_id FROM orders WHERE status != 'PENDING')"
        ).fetchall()
        fills = c.execute("SELECT count(*) FROM fills").fetchone()[0]
    assert orphans == [] and unbooked == [] and legless == [] and early == []
    assert fills > 0  # the kill came after trading had begun
