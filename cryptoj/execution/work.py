"""The ExecutionActor's queue of venue work: lookups and reconciliation, one call per message.

With a remote venue (Coinbase) the lookups of PENDING orders and each reconciliation pass are
not done in one go: :class:`VenueWork` holds them as items, and the actor does one item per
``execution.step`` message it sends itself, behind whatever is already in its mailbox, so new
orders and cancels never wait for a whole pass (the module docstring of
:mod:`cryptoj.actors.execution`, *Liveness*). This class is the bookkeeping only (no I/O):

* ``resolve`` items: look one order up by ``client_order_id`` (queued once per order), or
  with ``force`` adopt one the venue has and nobody tracks (queued first, during a pass); its
  read runs on the venue's background thread (:meth:`VenueWork.read_back`): a ``read`` item
  applies it, first thing once the venue says it is back;
* a ``resume`` item: move on the split parents restored from the journal whose children are
  all settled (queued first on start, before any read);
* ``pass`` / ``more`` items: the first and the following calls of one reconciliation pass;
  one pass at a time: an ``interval`` pass asked for while one runs is dropped, any other
  reason is remembered and runs once the current pass is over;
* a ``started`` item: what follows the start's reconciliation (queued after it);
* while a read of a pass or a lookup is in flight on the venue's background thread the queue
  is paused (:meth:`VenueWork.pause`): nothing else of it runs until the venue says the call
  is back.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, replace

INTERVAL = "interval"


@dataclass(frozen=True)
class WorkItem:
    """One piece of venue work. ``kind``: resolve | read | pass | more | resume | started."""

    kind: str
    client_order_id: str = ""  # resolve, read
    product: str = ""  # resolve, read
    force: bool = False  # resolve, read: an adoption (looked up even when its state is known)
    why: str = ""  # pass, more: why the pass runs (journalled with its differences)
    since_ns: int | None = None  # pass: where its fills listing starts (None: the venue's cursor)


class VenueWork:
    """See the module docstring."""

    def __init__(self) -> None:
        self._items: deque[WorkItem] = deque()
        self.reconciling: str | None = None  # why the pass in progress runs
        self._again: str | None = None  # a pass asked for while one was running
        self._step_queued = False
        self._paused = False

    def resolve(self, client_order_id: str, product: str, *, force: bool = False) -> None:
        """Queue a lookup of one order (once: an order already queued is not queued again);
        ``force`` (an adoption) queues it first."""
        item = WorkItem("resolve", client_order_id=client_order_id, product=product, force=force)
        if item in self._items:
            return
        if force:  # (behind a read that is back: it is applied first)
            ahead = 1 if self._items and self._items[0].kind == "read" else 0
            self._items.insert(ahead, item)
        else:
            self._items.append(item)

    def read_back(self, item: WorkItem) -> None:
        """``item``'s read is in flight on the venue's thread: pause; once it is back, a
        ``read`` item applies it before anything else."""
        self._items.appendleft(replace(item, kind="read"))
        self.pause()

    def reconcile(
        self, why: str, since_ns: int | None, pending: Iterable[tuple[str, str]] = ()
    ) -> bool:
        """Queue a pass, after a lookup of each ``(client_order_id, product)`` in ``pending``;
        False when a pass is under way (the request is dropped or remembered, see above)."""
        if self.reconciling is not None:
            if why != INTERVAL:
                self._again = why
            return False
        self.reconciling = why
        for coid, product in pending:
            self.resolve(coid, product)
        self._items.append(WorkItem("pass", why=why, since_ns=since_ns))
        return True

    def then(self, kind: str) -> None:
        """Queue a marker item (``resume``, ``started``) behind everything queued so far."""
        self._items.append(WorkItem(kind))

    def pass_continues(self, why: str) -> None:
        """The pass has calls left: its next call comes before anything queued meanwhile."""
        self._items.appendleft(WorkItem("more", why=why))

    def pass_over(self) -> str | None:
        """The pass ended: the reason of a pass asked for meanwhile (queue it now), or None."""
        self.reconciling = None
        again, self._again = self._again, None
        return again

    def pause(self) -> None:
        """A call of the pass is in flight: no step until :meth:`resume`."""
        self._paused = True

    def resume(self) -> None:
        """The call is back: the pass goes on."""
        self._paused = False

    def want_step(self) -> bool:
        """True when a step message should be sent now (work left, not paused, none on its
        way)."""
        if self._items and not self._step_queued and not self._paused:
            self._step_queued = True
            return True
        return False

    def next(self) -> WorkItem | None:
        """The step message arrived: the item to do now (None when nothing is left)."""
        self._step_queued = False
        return self._items.popleft() if self._items else None


__all__ = ["INTERVAL", "VenueWork", "WorkItem"]
