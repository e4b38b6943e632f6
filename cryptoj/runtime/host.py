"""The pykka actor that hosts one actor behaviour of the threaded runtime, and group commit.

pykka has no supervision, so :class:`ActorHost` overrides pykka 4.5's private exit points
(``_handle_failure``, ``_stop``, ``_handle_receive``, ``_actor_loop_teardown``; pinned with
``pykka==4.5.*``) to report every exit exactly once to the parent supervisor:

* exception in a tell handler → ``_handle_failure`` (abnormal);
* exception in an ask handler → pykka would keep the actor running with a half-applied change;
  we fail it instead (abnormal) and the caller still gets the exception;
* exception in ``on_start`` → ``_handle_failure`` (abnormal);
* exception in ``on_stop`` → ``_handle_failure`` from inside ``_stop`` (abnormal);
* a requested stop → ``_stop`` (normal; not reported when the supervisor asked for it).

Group commit (``group_commit``: the actors it applies to): such an actor's journal writes share
one SQLite transaction per *mailbox batch*: the messages handled back to back while more were
waiting (at most :data:`BATCH_MAX`). Journal first still holds, because nothing the batch sends
leaves the actor before the batch commits: its sends wait in an outbox and are posted, in
order, right after the commit (a failing commit posts none: they become dead letters and the
actor crashes). What is durable is then always a state the one-transaction-per-write run also
passed through, and no other actor (nor the venue, through the ExecutionActor) ever acts on a
decision that is not durable yet. The batch also ends right after a handler that sent an
order or a cancel (:data:`URGENT`: it heads for the venue and waits for the commit only, not
for the messages behind it), before any other kind of message (a ping, a stop, an ask), when
the handler raises (what it wrote is committed and what it sent is posted, as without
batching), and when the actor stops. Only for actors that act on the outside world through
messages alone: the ExecutionActor calls the venue from its handler, so its order must be
committed before that call, and it is never batched (batching it with a commit before each
venue call was measured: more SQLite statements per order and no lower latency, see
BENCHMARKS.md, "Live-path latency").
"""

from __future__ import annotations

import contextlib
import queue
import sys
import threading
from types import TracebackType
from typing import TYPE_CHECKING, Any

import pykka
from pykka import ActorDeadError

from cryptoj.contract import Actor
from cryptoj.journal_batch import step_batch
from cryptoj.models.orders import CancelOrder, SubmitOrder
from cryptoj.models.system import Ping
from cryptoj.runtime.common import ActorContext, Envelope
from cryptoj.runtime.mailbox import ConflatingInbox
from cryptoj.supervision.supervisor import RestartIntensityExceeded

if TYPE_CHECKING:
    from cryptoj.runtime.threaded import ThreadedRuntime

#: Group commit: a mailbox batch ends after this many messages even when more are waiting.
BATCH_MAX = 32
#: Group commit: a batch ends right after a handler that sent one of these (they head for the
#: venue: they wait for the commit, not for the messages behind them).
URGENT = (SubmitOrder, CancelOrder)


class AskEnvelope(Envelope):
    """An envelope sent with ``ask``: a failure crashes the actor and reaches the caller."""


class ActorHost(pykka.ThreadingActor):
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
        or when it raised."""
        if self._batch is None:
            self._batch = step_batch()
            self._batch.__enter__()
            self.rt.open_outbox()
        try:
            self.rt.deliver(self, env)
        except BaseException:
            self.end_batch()
            raise
        self._batched += 1
        if self._batched >= BATCH_MAX or self.rt.outbox_urgent() or not self.inbox_size():
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


__all__ = ["BATCH_MAX", "URGENT", "ActorHost", "AskEnvelope"]
