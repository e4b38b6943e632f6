"""The threaded runtime: each actor in its own pykka ``ThreadingActor``.

Each actor runs in an :class:`~cryptoj.runtime.host.ActorHost`, which reports every exit
exactly once to the parent supervisor (pykka has no supervision) and carries out group commit
(``group_commit``: one journal transaction per mailbox batch, its sends held until the commit;
see :mod:`cryptoj.runtime.host`). Messages left in a dying actor's mailbox and sends to a dead
or restarting name are dead letters (trace + counter). Timers run on one timer thread; the
clock is injected (:class:`~cryptoj.runtime.timers.ScaledClock`).

For the live path's latency (BENCHMARKS.md): mailboxes conflate waiting quotes and merge
waiting trades per product, so market data cannot pile up however fast it arrives
(:mod:`cryptoj.runtime.mailbox`; :meth:`ThreadedRuntime.mailbox_depths`);
:meth:`ThreadedRuntime.start_tree` freezes the start-up heap for the garbage collector and
starts a WAL checkpointer for the journal (:mod:`cryptoj.runtime.checkpoint`).

For a replay (``lockstep=True``, no conflation): the runtime counts the messages in flight (in
a mailbox or being handled) and the timer thread fires the next timer only when that count is
0, as the deterministic runtime does. Market time then never moves while an actor still works
on an earlier time, and every quote and bar is handled: the run is a risk-valid replay. The
actors still run concurrently within one instant, so messages from different senders to one
receiver may arrive in either order (one of the interleavings the deterministic runtime's seed
chooses between).
"""

from __future__ import annotations

import contextlib
import gc
import threading
import time
from collections.abc import Callable, Collection
from typing import Any

import pykka
from pykka import ActorDeadError, ActorRef

from cryptoj.contract import Actor
from cryptoj.models.base import Message
from cryptoj.models.market import Trade
from cryptoj.models.system import ChildExited, ChildStarted, Ping
from cryptoj.runtime.checkpoint import WalCheckpointer
from cryptoj.runtime.common import (
    Envelope,
    IdFactory,
    Registered,
    RuntimeStats,
    is_market,
    trace_event,
)
from cryptoj.runtime.host import BATCH_MAX, URGENT, ActorHost, AskEnvelope
from cryptoj.runtime.timers import ScaledClock, TimerThread
from cryptoj.supervision.guard import BOARD, ThreadBoard
from cryptoj.trace.recorder import TraceWriter

ASK_TIMEOUT_S = 10.0
#: A lockstep timer wait with no delivery for this long gives up (see ThreadedRuntime.wait_idle).
LOCKSTEP_STALL_S = 30.0


class ThreadedRuntime:
    """Runs actors in pykka threads with supervision, tracing and dead letters."""

    def __init__(
        self,
        *,
        seed: int,
        clock: ScaledClock,
        registry: dict[str, Registered],
        trace: TraceWriter | None = None,
        run_tag: str | None = None,
        conflate_quotes: bool = True,
        journal_path: str | None = None,
        lockstep: bool = False,
        threads: ThreadBoard | None = None,
        group_commit: Collection[str] = (),
    ) -> None:
        """``conflate_quotes``: mailboxes keep only the newest waiting quote per product and
        sender (:mod:`cryptoj.runtime.mailbox`). ``journal_path``: checkpoint that journal's
        WAL on a thread of its own while the tree runs (:mod:`cryptoj.runtime.checkpoint`).
        ``lockstep``: timers fire only when no message is in flight (replays; see the module
        docstring). ``threads``: where the timer and checkpointer threads are reported (the
        process-wide board by default). ``group_commit``: the actors whose journal writes share
        one transaction per mailbox batch, their sends held until it commits (module
        docstring)."""
        if lockstep and group_commit:
            # lockstep counts a message in flight from its send; an outbox would hide it
            raise ValueError("group_commit: not with lockstep (a live runtime's setting)")
        self.group_commit = frozenset(group_commit)
        self.threads = threads if threads is not None else BOARD
        self.seed = seed
        self.conflate_quotes = conflate_quotes
        self.lockstep = lockstep
        self._inflight = 0
        self._idle = threading.Condition(threading.Lock())
        self.journal_path = journal_path
        self.checkpointer: WalCheckpointer | None = None
        self._froze = False
        self.clock = clock
        self.registry = registry
        self.trace = trace
        self.ids = IdFactory(run_tag or f"t{seed}")
        self.stats = RuntimeStats()
        self.refs: dict[str, tuple[ActorRef[Any], ActorHost]] = {}
        self.generations: dict[str, int] = {}
        self.start_order: list[str] = []
        self.last_behaviours: dict[str, Actor] = {}
        self._lock = threading.RLock()
        self._local = threading.local()
        self.exit_event = threading.Event()
        self.exit_code: int | None = None
        self.exit_reason = ""
        self.timers = TimerThread(self)
        self.timers.start()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, name: str) -> int:
        """Start (or restart) ``name``; return its generation."""
        reg = self.registry[name]
        with self._lock:
            gen = self.generations.get(name, 0) + 1
            if gen > 1:
                self.stats.bump("restarts")
            self.generations[name] = gen
            ActorHost.start(self, name, reg.factory(), gen)
            host = self.refs[name][1]  # on_exit needs this lock to remove it: still here
            if name not in self.start_order:
                self.start_order.append(name)
        self._record(
            "start", reg.parent, name, ChildStarted(ts=self.clock.now(), name=name, generation=gen)
        )
        if any(r.parent == name for r in self.registry.values()):
            # A supervisor: its on_start starts (registers) its children. Waiting for it makes
            # the tree's start order hold across threads, so the feed, started last, never
            # sends to a consumer that does not exist yet (outside the lock: its on_start
            # starts children through this method).
            host.started.wait(ASK_TIMEOUT_S)
        return gen

    def start_tree(self) -> None:
        """Start the journal checkpointer, the guardian and the root supervisor; then hide the
        start-up heap (loaded data, actors, modules) from the cyclic garbage collector
        (``gc.freeze``, undone by :meth:`shutdown`), so a full collection scans only what was
        allocated since instead of pausing every actor thread for tens of milliseconds.

        Only the young generations are collected before the freeze: a full collection here
        cost 17-27 ms of every start (issue 16) and found nothing (the imports leave no
        cyclic garbage); the start's own short-lived cycles are young."""
        if self.journal_path is not None and self.checkpointer is None:
            self.checkpointer = WalCheckpointer(self.journal_path, board=self.threads).start()
        self.start("shutdown")
        self.start("root")
        gc.collect(1)
        gc.freeze()
        self._froze = True

    def stop(self, name: str, *, report: bool) -> None:
        """Stop ``name`` and wait for its on_stop (up to its stop timeout)."""
        with self._lock:
            entry = self.refs.get(name)
        if entry is None:
            return
        ref, host = entry
        host.report_exit = report
        try:
            ref.stop(block=True, timeout=ASK_TIMEOUT_S)
        except pykka.Timeout:
            self.stats.exits.append(f"{name}: did not stop within {ASK_TIMEOUT_S}s (thread leaked)")

    def on_exit(self, host: ActorHost, abnormal: bool, reason: str) -> None:
        """Called exactly once per actor instance when it stops, on whatever path."""
        name = host.cell_name
        with self._lock:
            self.last_behaviours[name] = host.behaviour
            current = self.refs.get(name)
            if current is not None and current[1] is host:
                del self.refs[name]
        if abnormal:
            self.stats.bump("crashes")
            for child, reg in self.registry.items():
                if reg.parent == name:
                    self.stop(child, report=False)
        self.stats.exits.append(f"{name}: {reason}")
        parent = self.registry[name].parent
        msg = ChildExited(
            ts=self.clock.now(),
            name=name,
            generation=host.generation,
            abnormal=abnormal,
            reason=reason,
        )
        self._record("exit", name, parent, msg, note=f"{'crash' if abnormal else 'stop'}: {reason}")
        if host.report_exit or abnormal:
            self.send(name, parent, msg, None)

    def request_stop(self, exit_code: int, reason: str) -> None:
        """Let the main thread end the run."""
        with self._lock:
            if self.exit_code is None or exit_code > self.exit_code:
                self.exit_code, self.exit_reason = exit_code, reason
        self.exit_event.set()

    def quiesce(self, names: list[str], rounds: int = 50) -> None:
        """Wait until every listed actor has handled all it was sent (ping barrier)."""
        last = -1
        for _ in range(rounds):
            for name in names:
                with self._lock:
                    entry = self.refs.get(name)
                if entry is not None:
                    with contextlib.suppress(ActorDeadError, pykka.Timeout):
                        entry[0].ask(Ping(), timeout=ASK_TIMEOUT_S)
            if self.stats.delivered == last:
                return
            last = self.stats.delivered

    # -- lockstep (replay) ---------------------------------------------------------------------

    def _enter(self) -> None:
        if self.lockstep:
            with self._idle:
                self._inflight += 1

    def settled(self) -> None:
        """One message left the system (handled, dead-lettered or conflated)."""
        if self.lockstep:
            with self._idle:
                self._inflight -= 1
                if self._inflight <= 0:
                    self._idle.notify_all()

    def on_conflated(self, item: Any) -> None:
        """A mailbox dropped a waiting quote for a newer one, or merged a waiting trade into a
        newer one (``item``: the pykka envelope that left the mailbox)."""
        self.stats.bump("merged_trades" if type(item.message.msg) is Trade else "conflated")
        self.settled()

    def wait_idle(self, stall_s: float = LOCKSTEP_STALL_S) -> bool:
        """Block until no message is in flight; False when the timers were stopped meanwhile.

        A wait that sees no delivery for ``stall_s`` wall seconds gives up (counted in
        ``RuntimeStats.lockstep_stalls``) so a miscounted message cannot hang the run."""
        last, since = self.stats.delivered, time.monotonic()
        with self._idle:
            while self._inflight > 0 and not self.timers.stopped:
                self._idle.wait(0.2)
                if self.stats.delivered != last:
                    last, since = self.stats.delivered, time.monotonic()
                elif time.monotonic() - since > stall_s:
                    self.stats.bump("lockstep_stalls")
                    self._inflight = 0
        return not self.timers.stopped

    def shutdown(self) -> None:
        """Stop the timer thread, then every actor in reverse start order, then the journal
        checkpointer."""
        self.timers.stop()
        for name in reversed(self.start_order):
            self.stop(name, report=False)
        self.timers.join(timeout=5)
        if self.checkpointer is not None:
            self.checkpointer.stop()
        if self._froze:  # let the collector see this run's objects again (cycles get freed)
            self._froze = False
            gc.unfreeze()

    # -- messaging ---------------------------------------------------------------------------

    def now(self) -> int:
        """The injected clock, ns."""
        return self.clock.now()

    def send(self, sender: str, to: str, msg: Message, corr: str | None) -> None:
        """Deliver ``msg`` to ``to`` (a dead letter when it is not running); from inside a
        group-commit batch, once the batch has committed."""
        cur: Envelope | None = getattr(self._local, "current", None)
        msg_id = self.ids.message_id()
        env = Envelope(
            msg,
            sender,
            msg_id,
            corr or (cur.corr if cur else msg_id),
            cur.msg_id if cur else "",
            time.perf_counter_ns(),
        )
        outbox: list[tuple[str, Envelope]] | None = getattr(self._local, "outbox", None)
        if outbox is not None:
            outbox.append((to, env))
            if isinstance(msg, URGENT):
                self._local.urgent = True
            return
        self.post(to, env)

    def open_outbox(self) -> None:
        """From now on the calling thread's sends wait until :meth:`close_outbox`."""
        self._local.outbox = []
        self._local.urgent = False

    def outbox_urgent(self) -> bool:
        """True when the calling thread's outbox holds an order or a cancel (:data:`URGENT`)."""
        return bool(getattr(self._local, "urgent", False))

    def close_outbox(self) -> list[tuple[str, Envelope]]:
        """The calling thread's sends since :meth:`open_outbox`, in order (none wait any more)."""
        outbox: list[tuple[str, Envelope]] = getattr(self._local, "outbox", None) or []
        self._local.outbox = None
        self._local.urgent = False
        return outbox

    def post(self, to: str, env: Envelope) -> None:
        """Put an envelope into ``to``'s mailbox."""
        with self._lock:
            entry = self.refs.get(to)
        if entry is None:
            if is_market(env.msg):
                self.stats.bump("market_sent")
            self.dead_letter(env.sender, to, env, "receiver not running")
            return
        env.enq_ns = time.perf_counter_ns()
        if is_market(env.msg):
            self.stats.bump("market_sent")
        self._enter()
        try:
            entry[0].tell(env)
        except ActorDeadError:
            self.settled()
            self.dead_letter(env.sender, to, env, "receiver died")

    def tell(self, to: str, msg: Message, sender: str = "main") -> None:
        """Send from outside the actors (venue user channel, signal handler, CLI)."""
        self.send(sender, to, msg, None)

    def ask(self, to: str, msg: Message, timeout: float = ASK_TIMEOUT_S) -> Any:
        """Deliver ``msg`` as an ask; a failing handler crashes the actor and raises here."""
        with self._lock:
            entry = self.refs.get(to)
        if entry is None:
            raise ActorDeadError(f"{to} is not running")
        msg_id = self.ids.message_id()
        env = AskEnvelope(msg, "main", msg_id, msg_id, "", time.perf_counter_ns())
        self._enter()
        try:
            return entry[0].ask(env, timeout=timeout)
        except ActorDeadError:
            self.settled()
            raise

    def current_correlation(self) -> str | None:
        """The correlation id of the message the calling thread's actor is handling (None
        outside a handler): the id of the first message of the chain that led to it."""
        cur: Envelope | None = getattr(self._local, "current", None)
        return cur.corr if cur else None

    def schedule(self, owner: str, delay_ns: int, msg: Message) -> None:
        """Deliver ``msg`` to ``owner`` after ``delay_ns`` of clock time."""
        cur: Envelope | None = getattr(self._local, "current", None)
        msg_id = self.ids.message_id()
        env = Envelope(msg, owner, msg_id, msg_id, cur.msg_id if cur else "")
        self.timers.add(self.clock.now() + delay_ns, owner, self.generations.get(owner, 0), env)

    def deliver(self, host: ActorHost, env: Envelope) -> None:
        """Run the behaviour's handler for one envelope (in the actor's thread)."""
        start = time.perf_counter_ns()
        self._local.current = env
        try:
            host.behaviour.receive(env.msg, host.ctx)
        finally:
            self._local.current = None
            self.stats.bump("delivered")
            if is_market(env.msg):
                self.stats.bump("market_delivered")
            self.settled()
            if self.trace is not None:
                end = time.perf_counter_ns()
                self.trace.record(
                    "deliver",
                    self.clock.now(),
                    env.sender,
                    host.cell_name,
                    env.msg,
                    msg_id=env.msg_id,
                    corr=env.corr,
                    cause=env.cause,
                    dur_ns=end - start,
                    wait_ns=start - env.enq_ns if env.enq_ns else None,
                )

    def dead_letter(self, sender: str, to: str, env: Envelope, why: str) -> None:
        """Record a message nobody will handle."""
        self.stats.bump("dead_letters")
        if is_market(env.msg):
            self.stats.bump("market_dead")
        self._record("dead", sender, to, env.msg, env=env, note=why)

    def _record(
        self,
        kind: str,
        src: str,
        dst: str,
        msg: Message,
        *,
        env: Envelope | None = None,
        note: str = "",
    ) -> None:
        trace_event(self.trace, kind, self.clock.now(), src, dst, msg, env, note)

    def behaviour(self, name: str) -> Actor | None:
        """The current behaviour instance of ``name`` (None when not running)."""
        with self._lock:
            entry = self.refs.get(name)
        return entry[1].behaviour if entry else None

    def mailbox_depths(self) -> dict[str, int]:
        """Messages waiting per running actor."""
        with self._lock:
            entries = list(self.refs.items())
        return {name: host.inbox_size() for name, (_, host) in entries}

    def is_alive(self, name: str) -> bool:
        """True when ``name`` is running."""
        with self._lock:
            return name in self.refs


def run_until_stopped(
    rt: ThreadedRuntime, wait: Callable[[], object], quiesce: list[str] | None = None
) -> None:
    """Start the guardian and the tree, ``wait`` for the end, then stop everything in order."""
    rt.start_tree()
    try:
        wait()
        if quiesce:
            rt.quiesce(quiesce)
    finally:
        rt.shutdown()


__all__ = [
    "ASK_TIMEOUT_S",
    "BATCH_MAX",
    "URGENT",
    "ActorHost",
    "AskEnvelope",
    "ScaledClock",
    "ThreadedRuntime",
    "run_until_stopped",
]
