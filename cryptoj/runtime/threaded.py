"""The threaded runtime: each actor in its own pykka ``ThreadingActor``.

pykka has no supervision, so :class:`_Host` overrides pykka 4.5's private exit points
(``_handle_failure``, ``_stop``, ``_handle_receive``, ``_actor_loop_teardown``; pinned with
``pykka==4.5.*``) to report every exit exactly once to the parent supervisor:

* exception in a tell handler → ``_handle_failure`` (abnormal);
* exception in an ask handler → pykka would keep the actor running with a half-applied change;
  we fail it instead (abnormal) and the caller still gets the exception;
* exception in ``on_start`` → ``_handle_failure`` (abnormal);
* exception in ``on_stop`` → ``_handle_failure`` from inside ``_stop`` (abnormal);
* a requested stop → ``_stop`` (normal; not reported when the supervisor asked for it).

Messages left in a dying actor's mailbox and sends to a dead or restarting name are dead letters
(trace + counter). Timers run on one timer thread; the clock is injected (:class:`ScaledClock`).

For the live path's latency (BENCHMARKS.md): mailboxes conflate waiting quotes and merge
waiting trades per product, so market data cannot pile up however fast it arrives
(:mod:`cryptoj.runtime.mailbox`; :meth:`ThreadedRuntime.mailbox_depths`);
:meth:`ThreadedRuntime.start_tree` freezes the start-up heap for the garbage collector and
starts a WAL checkpointer for the journal (:mod:`cryptoj.runtime.checkpoint`).

Group commit (``group_commit``: the actors it applies to): such an actor's journal writes share
one SQLite transaction per *mailbox batch*: the messages handled back to back while more were
waiting (at most :data:`BATCH_MAX`). Journal first still holds, because nothing the batch sends
leaves the actor before the batch commits: its sends wait in an outbox and are posted, in
order, right after the commit (a failing commit posts none: they become dead letters and the
actor crashes). What is durable is then always a state the one-transaction-per-write run also
passed through, and no other actor (nor the venue, through the ExecutionActor) ever acts on a
decision that is not durable yet. The batch also ends right after a handler that sent an
order or a cancel (:data:`URGENT`: it heads for the venue and waits for the commit only, not
for the messages behind it), after a message when another actor's thread waits for the
journal file's write lock the batch holds (that write then waits for one message's handling,
not a whole batch's: ``yield_journal_lock``), before any other kind of message (a ping, a
stop, an ask), when the handler raises (what it wrote is committed and what it sent is
posted, as without batching), and when the actor stops. An actor that also acts on the
outside world from its handler (the ExecutionActor calls the venue) commits the open batch
right before each such call (:func:`~cryptoj.journal_batch.commit_before_venue`: batches are
opened with ``commit_before_venue``), so the order's row is durable before the venue sees
the order; its held sends still wait for the batch's end.

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
import heapq
import queue
import sys
import threading
import time
from collections.abc import Callable, Collection
from types import TracebackType
from typing import Any

import pykka
from pykka import ActorDeadError, ActorRef

from cryptoj.contract import Actor
from cryptoj.journal_batch import lock_wanted, step_batch
from cryptoj.models.base import Message
from cryptoj.models.market import Trade
from cryptoj.models.orders import CancelOrder, SubmitOrder
from cryptoj.models.system import ChildExited, ChildStarted, Ping
from cryptoj.runtime.checkpoint import WalCheckpointer
from cryptoj.runtime.common import (
    ActorContext,
    Envelope,
    IdFactory,
    Registered,
    RuntimeStats,
    is_market,
    trace_event,
)
from cryptoj.runtime.mailbox import ConflatingInbox
from cryptoj.supervision.guard import BOARD, ThreadBoard, ThreadGuard
from cryptoj.supervision.supervisor import RestartIntensityExceeded
from cryptoj.trace.recorder import TraceWriter

ASK_TIMEOUT_S = 10.0
#: A lockstep timer wait with no delivery for this long gives up (see ThreadedRuntime.wait_idle).
LOCKSTEP_STALL_S = 30.0
STALL_S = 30.0  # the timer thread is reported stalled after this long without progress
#: Group commit: a mailbox batch ends after this many messages even when more are waiting.
BATCH_MAX = 32
#: Group commit: a batch ends right after a handler that sent one of these (they head for the
#: venue: they wait for the commit, not for the messages behind them).
URGENT = (SubmitOrder, CancelOrder)


class ScaledClock:
    """Market time for the threaded runtime.

    ``speed > 0``: time runs ``speed`` times faster than the wall clock from ``origin_ns``
    (``speed=1`` with ``origin_ns=time.time_ns()`` is the wall clock). ``speed == 0``: time only
    moves when the timer thread fires a timer (as fast as possible, for replays).
    """

    def __init__(self, origin_ns: int, speed: float) -> None:
        self.origin_ns = origin_ns
        self.speed = speed
        self._t0 = time.monotonic_ns()
        self._virtual = origin_ns

    def now(self) -> int:
        """Current time in ns since the epoch."""
        if self.speed == 0:
            return self._virtual
        return self.origin_ns + int((time.monotonic_ns() - self._t0) * self.speed)

    def wall_delay_s(self, due_ns: int) -> float:
        """Seconds of wall time until ``due_ns``."""
        if self.speed == 0:
            return 0.0
        return max(0.0, (due_ns - self.now()) / self.speed / 1e9)

    def advance_to(self, due_ns: int) -> None:
        """Move virtual time forward (``speed == 0`` only)."""
        if self.speed == 0 and due_ns > self._virtual:
            self._virtual = due_ns


class AskEnvelope(Envelope):
    """An envelope sent with ``ask``: a failure crashes the actor and reaches the caller."""


class _Host(pykka.ThreadingActor):
    """Hosts one actor behaviour in a pykka thread and reports its exit exactly once."""

    def __init__(self, rt: ThreadedRuntime, name: str, behaviour: Actor, generation: int) -> None:
        self.rt = rt  # before pykka's __init__, which creates the inbox
        super().__init__()
        self.cell_name = name
        self.behaviour = behaviour
        self.generation = generation
        self.ctx = ActorContext(rt, name, generation)
        self.report_exit = True
        self._reported = False
        self._lock = threading.Lock()
        self.started = threading.Event()  # set when on_start has returned (or raised)
        self.group_commit = name in rt.group_commit
        self._batch: contextlib.AbstractContextManager[None] | None = None
        self._batched = 0  # messages handled in the open batch
        self.batches = 0  # group commit: batches committed
        self.batched_messages = 0  # group commit: messages handled in them
        rt.refs[name] = (self.actor_ref, self)  # before the thread starts: never a stale ref

    def _create_actor_inbox(self) -> queue.Queue[Any] | ConflatingInbox:  # type: ignore[override]
        """A conflating mailbox (:mod:`cryptoj.runtime.mailbox`) unless switched off."""
        if not self.rt.conflate_quotes:
            return queue.Queue()
        return ConflatingInbox(on_drop=self.rt.on_conflated)

    def inbox_size(self) -> int:
        """Messages waiting in this actor's mailbox."""
        inbox: queue.Queue[Any] | ConflatingInbox = self.actor_inbox  # type: ignore[assignment]
        return inbox.qsize()

    def on_start(self) -> None:
        try:
            self.behaviour.on_start(self.ctx)
        finally:
            self.started.set()

    def on_stop(self) -> None:
        self.end_batch()
        self.behaviour.on_stop(self.ctx)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Envelope):
            if self.group_commit and not isinstance(message, AskEnvelope):
                self._deliver_batched(message)
                return None
            self.end_batch()  # an ask: a failing commit crashes the actor (_handle_receive)
            self.rt.deliver(self, message)
            return None
        if isinstance(message, Ping):
            try:  # a barrier sees what was handled committed and sent
                self.end_batch()
            except Exception:
                self._handle_failure(*sys.exc_info())  # as a failing write would have
                raise
            return True
        raise TypeError(f"{self.cell_name}: not an envelope: {message!r}")

    # -- group commit (module docstring) ---------------------------------------------------

    def _deliver_batched(self, env: Envelope) -> None:
        """Handle ``env`` in the open mailbox batch (opening one); end the batch when the
        mailbox is empty, when the batch is full, when the handler sent an order or a cancel,
        when another thread waits for the journal's write lock the batch holds, or when it
        raised."""
        if self._batch is None:
            self._batch = step_batch(commit_before_venue=True)
            self._batch.__enter__()
            self.rt.open_outbox()
        try:
            self.rt.deliver(self, env)
        except BaseException:
            self.end_batch()
            raise
        self._batched += 1
        if (
            self._batched >= BATCH_MAX
            or self.rt.outbox_urgent()
            or not self.inbox_size()
            or (self.rt.yield_journal_lock and lock_wanted())
        ):
            self.end_batch()

    def end_batch(self) -> None:
        """Commit the open batch's journal writes, then post what it sent (in order); a commit
        that fails posts nothing (dead letters) and raises."""
        batch, self._batch = self._batch, None
        if batch is None:
            return
        self.batches += 1
        self.batched_messages += self._batched
        self._batched = 0
        outbox = self.rt.close_outbox()
        try:
            batch.__exit__(None, None, None)
        except BaseException as e:
            for to, env in outbox:
                self.rt.dead_letter(env.sender, to, env, f"journal commit failed: {e!r}"[:200])
            raise
        for to, env in outbox:
            self.rt.post(to, env)

    # -- pykka's private exit points -------------------------------------------------------

    def _handle_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        super()._handle_failure(exception_type, exception_value, traceback)
        if isinstance(exception_value, RestartIntensityExceeded):
            self.rt.stats.bump("escalations")
        self._exit(True, repr(exception_value))

    def _stop(self) -> None:
        super()._stop()
        self._exit(False, "stopped")

    def _handle_receive(self, message: Any) -> Any:
        try:
            return super()._handle_receive(message)
        except Exception:
            if isinstance(message, AskEnvelope):
                self._handle_failure(*sys.exc_info())
            raise

    def _actor_loop_teardown(self) -> None:
        inbox = self.actor_inbox
        while not inbox.empty():
            envelope = inbox.get()
            if isinstance(envelope.message, Envelope):
                self.rt.settled()
                self.rt.dead_letter(
                    envelope.message.sender,
                    self.cell_name,
                    envelope.message,
                    "left in mailbox of a stopped actor",
                )
            if envelope.reply_to is not None:
                if isinstance(envelope.message, pykka.messages._ActorStop):
                    envelope.reply_to.set(None)
                else:
                    envelope.reply_to.set_exception(
                        exc_info=(ActorDeadError, ActorDeadError(f"{self.cell_name} stopped"), None)
                    )

    def _exit(self, abnormal: bool, reason: str) -> None:
        with self._lock:
            if self._reported:
                return
            self._reported = True
        self.rt.on_exit(self, abnormal, reason)


class _TimerThread(threading.Thread):
    """Fires scheduled messages on the injected clock, under a
    :class:`~cryptoj.supervision.guard.ThreadGuard`: if its loop raises, the crash is logged
    and counted, the timer being fired is dead-lettered, and the loop restarts (the other
    timers stay in the heap)."""

    IDLE_S = 0.5  # the loop wakes at least this often (a beat for the guard)

    def __init__(self, rt: ThreadedRuntime) -> None:
        super().__init__(name="cryptoj-timers", daemon=True)
        self.rt = rt
        self.cond = threading.Condition()
        self.heap: list[tuple[int, int, str, int, Envelope]] = []
        self.seq = 0
        self.stopped = False
        self._stop_event = threading.Event()
        self._firing: tuple[str, Envelope] | None = None
        self.guard = ThreadGuard(
            "cryptoj-timers",
            "runtime",
            board=rt.threads,
            on_crash=self._crashed,
            stall_after_s=None if rt.lockstep else STALL_S,  # lockstep: waits for the actors
        )

    def add(self, due: int, owner: str, generation: int, env: Envelope) -> None:
        """Schedule ``env``; the loop is woken only when it becomes the earliest timer (it
        sleeps until the earliest one anyway): an order's leg timeout, due in seconds, does
        not wake the timer thread to compete for the GIL on the order path."""
        with self.cond:
            self.seq += 1
            entry = (due, self.seq, owner, generation, env)
            heapq.heappush(self.heap, entry)
            if self.heap[0] is entry:
                self.cond.notify()

    def run(self) -> None:
        self.guard.run(self._loop, self._stop_event)

    def _wait_s(self) -> float:
        """Wall seconds until the next timer is due (``IDLE_S`` with none); under ``cond``."""
        return self.rt.clock.wall_delay_s(self.heap[0][0]) if self.heap else self.IDLE_S

    def _loop(self) -> None:
        clock, beat = self.rt.clock, self.guard.beat
        while True:
            with self.cond:
                while not self.stopped and (wait := self._wait_s()) > 0:
                    self.cond.wait(min(wait, self.IDLE_S))
                    beat()
                if self.stopped:
                    return
            beat()
            if self.rt.lockstep and not self.rt.wait_idle():
                return
            with self.cond:
                if not self.heap or self._wait_s() > 0:
                    continue
                due, _, owner, generation, env = heapq.heappop(self.heap)
            self._firing = (owner, env)
            clock.advance_to(due)
            if self.rt.generations.get(owner) != generation:
                # Timers die with the instance that set them (a restart sets its own).
                self.rt.dead_letter("timer", owner, env, "timer owner restarted")
            else:
                self.rt.post(owner, env)
            self._firing = None

    def _crashed(self, error: BaseException) -> None:
        """The loop raised: the timer it was firing is a dead letter (it may be the cause)."""
        firing, self._firing = self._firing, None
        if firing is not None:
            owner, env = firing
            self.rt.dead_letter("timer", owner, env, f"timer thread crashed: {error!r}"[:200])

    def stop(self) -> None:
        with self.cond:
            self.stopped = True
            self._stop_event.set()
            self.cond.notify()


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
        yield_journal_lock: bool = True,
    ) -> None:
        """``conflate_quotes``: mailboxes keep only the newest waiting quote per product and
        sender (:mod:`cryptoj.runtime.mailbox`). ``journal_path``: checkpoint that journal's
        WAL on a thread of its own while the tree runs (:mod:`cryptoj.runtime.checkpoint`).
        ``lockstep``: timers fire only when no message is in flight (replays; see the module
        docstring). ``threads``: where the timer and checkpointer threads are reported (the
        process-wide board by default). ``group_commit``: the actors whose journal writes share
        one transaction per mailbox batch, their sends held until it commits (module
        docstring); ``yield_journal_lock``: such a batch also ends after a message when another
        thread waits for the journal's write lock it holds."""
        if lockstep and group_commit:
            # lockstep counts a message in flight from its send; an outbox would hide it
            raise ValueError("group_commit: not with lockstep (a live runtime's setting)")
        self.group_commit = frozenset(group_commit)
        self.yield_journal_lock = yield_journal_lock
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
        self.refs: dict[str, tuple[ActorRef[Any], _Host]] = {}
        self.generations: dict[str, int] = {}
        self.start_order: list[str] = []
        self.last_behaviours: dict[str, Actor] = {}
        self._lock = threading.RLock()
        self._local = threading.local()
        self.exit_event = threading.Event()
        self.exit_code: int | None = None
        self.exit_reason = ""
        self.timers = _TimerThread(self)
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
            _Host.start(self, name, reg.factory(), gen)
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

    def on_exit(self, host: _Host, abnormal: bool, reason: str) -> None:
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

    def deliver(self, host: _Host, env: Envelope) -> None:
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
