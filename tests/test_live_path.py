"""The live path's latency measures: conflating mailboxes (quotes dropped, trades merged), the
WAL checkpointer, the journal's in-process write lock, the heap freeze of the threaded runtime,
and the FeedActor sending a pushed trade's quote before its bar. Everything deterministic: a
gated actor holds its mailbox, no timing is asserted."""

from __future__ import annotations

import gc
import sqlite3
import threading
from decimal import Decimal
from pathlib import Path

import pykka

from cryptoj.actors.feed import FeedActor, ReplaySource
from cryptoj.contract import Actor, Context
from cryptoj.journal import Journal
from cryptoj.models.base import Message
from cryptoj.models.market import Bar, Quote, Trade
from cryptoj.runtime.checkpoint import WalCheckpointer
from cryptoj.runtime.common import Envelope, Registered
from cryptoj.runtime.mailbox import ConflatingInbox
from cryptoj.runtime.threaded import ScaledClock, ThreadedRuntime
from tests.stubs import FakeCtx, bar, quote


def told(msg: Message, sender: str = "feed") -> pykka._envelope.Envelope[Envelope]:
    """What pykka puts into a mailbox for ``tell``."""
    return pykka._envelope.Envelope(Envelope(msg, sender, "m", "c", ""))


def drain(inbox: ConflatingInbox) -> list[Message]:
    out = []
    while not inbox.empty():
        out.append(inbox.get().message.msg)
    return out


# -- the mailbox ---------------------------------------------------------------------------------


def test_a_waiting_quote_is_replaced_by_a_newer_one_of_the_same_product_and_sender() -> None:
    inbox = ConflatingInbox()
    q1, q2, q3 = quote(bid="1", ask="2"), quote(bid="3", ask="4"), quote(bid="5", ask="6")
    eth = quote("ETH-USD")
    b = bar()
    for m in (q1, b, eth, q2):
        inbox.put(told(m))
    inbox.put(told(q3, sender="venue"))  # another sender's quotes are kept apart
    assert inbox.qsize() == 4 and inbox.conflated == 1
    assert drain(inbox) == [b, eth, q2, q3]  # the newer quote joins at the end: no reordering
    assert inbox.empty() and inbox.qsize() == 0


def test_a_quote_already_taken_is_not_replaced_and_other_messages_are_never_dropped() -> None:
    inbox = ConflatingInbox()
    inbox.put(told(quote(bid="1", ask="2")))
    first = inbox.get().message.msg
    bars = [bar(close=str(7000 + i)) for i in range(5)]
    for b in bars:
        inbox.put(told(b))
    inbox.put(told(quote(bid="3", ask="4")))
    assert first.bid == Decimal(1) and inbox.conflated == 0
    assert drain(inbox) == [*bars, quote(bid="3", ask="4")]


def test_an_asked_quote_is_never_conflated() -> None:
    inbox = ConflatingInbox()
    asked = pykka._envelope.Envelope(
        Envelope(quote(), "main", "m", "c", ""), reply_to=pykka.ThreadingFuture()
    )
    inbox.put(asked)
    inbox.put(told(quote(bid="2", ask="3")))
    assert inbox.conflated == 0 and inbox.qsize() == 2


def trade(qty: str, trade_id: str, product: str = "BTC-USD", price: str = "7000") -> Trade:
    return Trade(
        ts=int(trade_id),
        product=product,
        price=Decimal(price),
        quantity=Decimal(qty),
        taker_side="BUY",
        trade_id=trade_id,
    )


def test_waiting_trades_of_a_product_are_merged_into_the_newest_with_their_volume() -> None:
    inbox = ConflatingInbox()
    t1, t2, t3 = trade("1", "1", price="10"), trade("2", "2", price="11"), trade("4", "3")
    eth, b, q = trade("5", "4", product="ETH-USD"), bar(), quote()
    for m in (t1, q, b, t2, eth, t3):
        inbox.put(told(m))
    inbox.put(told(trade("8", "5"), sender="venue"))  # another sender's trades are kept apart
    assert inbox.merged == 2 and inbox.conflated == 0 and inbox.qsize() == 5
    out = drain(inbox)
    merged = trade("7", "3")  # the newest trade's time, price and id; 1 + 2 + 4 traded
    assert out == [q, b, eth, merged, trade("8", "5")]  # at the newest one's place
    assert inbox.empty()


def test_a_mailbox_flooded_with_market_data_stays_bounded_per_product() -> None:
    inbox = ConflatingInbox()
    products = [f"P{i}-USD" for i in range(10)]
    for n in range(1, 1001):
        p = products[n % 10]
        inbox.put(told(trade("1", str(n), product=p)))
        inbox.put(told(quote(p, bid=str(n), ask=str(n + 1))))
    assert inbox.qsize() == 20  # one trade and one quote per product
    out = drain(inbox)
    volume = {t.product: t.quantity for t in out if isinstance(t, Trade)}
    assert volume == dict.fromkeys(products, Decimal(100))  # every unit traded arrived
    assert inbox.merged == 990 and inbox.conflated == 990


class Gated(Actor):
    """Blocks on its first message until the test opens the gate, then records the rest."""

    def __init__(self, gate: threading.Event, seen: list[Message]) -> None:
        self.gate = gate
        self.seen = seen
        self.blocked = False

    def _handle_bar(self, msg: Bar, ctx: Context) -> None:
        if not self.blocked:
            self.blocked = True
            assert self.gate.wait(10), "test gate never opened"
            return
        self.seen.append(msg)

    def _handle_quote(self, msg: Quote, ctx: Context) -> None:
        self.seen.append(msg)

    def _handle_trade(self, msg: Trade, ctx: Context) -> None:
        self.seen.append(msg)


def _gated_runtime(conflate: bool) -> tuple[ThreadedRuntime, threading.Event, list[Message]]:
    gate, seen = threading.Event(), list[Message]()
    registry = {"gated": Registered("gated", "main", lambda: Gated(gate, seen))}
    rt = ThreadedRuntime(
        seed=1, clock=ScaledClock(0, 0.0), registry=registry, conflate_quotes=conflate
    )
    rt.start("gated")
    return rt, gate, seen


def test_an_actor_that_fell_behind_handles_only_the_newest_quote() -> None:
    rt, gate, seen = _gated_runtime(conflate=True)
    try:
        rt.tell("gated", bar(), sender="feed")  # holds the actor
        quotes = [quote(bid=str(100 + i), ask=str(101 + i)) for i in range(50)]
        for i, q in enumerate(quotes):
            rt.tell("gated", q, sender="feed")
            if i == 24:
                rt.tell("gated", bar(close="1"), sender="feed")
        gate.set()
        rt.quiesce(["gated"])
    finally:
        rt.shutdown()
    assert seen == [bar(close="1"), quotes[-1]]
    assert rt.stats.conflated == 49 and rt.stats.dead_letters == 0


def test_the_runtime_counts_merged_trades_apart_from_dropped_quotes() -> None:
    rt, gate, seen = _gated_runtime(conflate=True)
    try:
        rt.tell("gated", bar(), sender="feed")  # holds the actor
        for i in range(1, 31):
            rt.tell("gated", trade("0.5", str(i)), sender="coinbase")
            rt.tell("gated", quote(bid=str(100 + i), ask=str(101 + i)), sender="coinbase")
        gate.set()
        rt.quiesce(["gated"])
    finally:
        rt.shutdown()
    assert seen == [trade("15", "30"), quote(bid="130", ask="131")]
    assert rt.stats.merged_trades == 29 and rt.stats.conflated == 29
    assert rt.stats.dead_letters == 0


def test_without_conflation_every_quote_is_handled() -> None:
    rt, gate, seen = _gated_runtime(conflate=False)
    try:
        rt.tell("gated", bar(), sender="feed")
        quotes = [quote(bid=str(100 + i), ask=str(101 + i)) for i in range(20)]
        for q in quotes:
            rt.tell("gated", q, sender="feed")
        gate.set()
        rt.quiesce(["gated"])
    finally:
        rt.shutdown()
    assert seen == quotes and rt.stats.conflated == 0


# -- the tree start: heap freeze, checkpointer ---------------------------------------------------


class Idle(Actor):
    """A guardian or root stand-in with nothing to do."""


def test_start_tree_freezes_the_heap_and_runs_the_checkpointer_until_shutdown(
    tmp_path: Path,
) -> None:
    path = tmp_path / "journal.sqlite"
    Journal(path).close()
    registry = {
        "shutdown": Registered("shutdown", "main", Idle),
        "root": Registered("root", "shutdown", Idle),
    }
    rt = ThreadedRuntime(
        seed=1, clock=ScaledClock(0, 0.0), registry=registry, journal_path=str(path)
    )
    before = gc.get_freeze_count()
    rt.start_tree()
    try:
        assert rt.is_alive("shutdown") and rt.is_alive("root")
        assert gc.get_freeze_count() > before
        assert rt.checkpointer is not None and rt.checkpointer._thread.is_alive()
    finally:
        rt.shutdown()
    assert gc.get_freeze_count() == 0
    assert not rt.checkpointer._thread.is_alive()


def test_the_checkpointer_copies_the_wal_into_the_database(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    journal = Journal(path)
    ck = WalCheckpointer(path, interval_s=0.01)
    try:
        for i in range(200):
            journal.record_event(i, "test", "tick", "x" * 200)
        ck.start()
        deadline = threading.Event()
        for _ in range(500):  # bounded: at most 5 s
            if ck.last_frames > 0:
                break
            deadline.wait(0.01)
        assert ck.checkpoints > 0 and ck.last_frames > 0
    finally:
        ck.stop()
        journal.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM events").fetchone() == (200,)


# -- the journal's write lock --------------------------------------------------------------------


def test_connections_to_one_journal_file_share_one_write_lock(tmp_path: Path) -> None:
    a = Journal(tmp_path / "j.sqlite")
    sub = tmp_path / "sub"
    sub.mkdir()
    other = Journal(tmp_path / "other.sqlite")
    mem1, mem2 = Journal(":memory:"), Journal(":memory:")
    got: list[bool] = []
    opened, go = threading.Event(), threading.Event()

    def writer() -> None:  # another actor's connection: opened and used in its own thread
        b = Journal(sub / ".." / "j.sqlite")  # another spelling of the same file
        try:
            got.append(b._wlock is a._wlock)
            opened.set()
            assert go.wait(10)
            b.record_event(2, "b", "k", "")
            got.append(True)
        finally:
            b.close()

    t = threading.Thread(target=writer)
    t.start()
    try:
        assert a._wlock is not other._wlock and mem1._wlock is not mem2._wlock
        assert opened.wait(10)
        with a.transaction():  # b's write waits for a's transaction, in this process's lock
            go.set()
            t.join(0.2)
            assert got == [True] and t.is_alive()
            a.record_event(1, "a", "k", "")  # re-entrant inside the transaction
        t.join(10)
        assert got == [True, True]
        assert [e["ts"] for e in a.events()] == [1, 2]
    finally:
        for j in (a, other, mem1, mem2):
            j.close()


# -- the FeedActor's order of quote and bar ------------------------------------------------------


def test_a_pushed_trade_sends_its_quote_before_its_bar_while_replay_keeps_bars_first() -> None:
    trade = Trade(
        ts=10,
        product="BTC-USDT",
        price=Decimal("60000"),
        quantity=Decimal("0.5"),
        taker_side="BUY",
        trade_id="1",
    )
    live = FeedActor(ReplaySource([(trade,)]), tick_bar_size=1, poll=False)
    ctx = FakeCtx()
    live.receive(trade, ctx)
    kinds = [(to, type(m).__name__) for to, m in ctx.sent]
    assert kinds == [("portfolio", "Quote"), ("strategy", "Bar"), ("risk", "Bar")]
    replay = FeedActor(ReplaySource([(trade,)]), tick_bar_size=1)
    ctx = FakeCtx()
    replay._process((trade,), ctx)
    kinds = [(to, type(m).__name__) for to, m in ctx.sent]
    assert kinds == [("strategy", "Bar"), ("risk", "Bar"), ("portfolio", "Quote")]
