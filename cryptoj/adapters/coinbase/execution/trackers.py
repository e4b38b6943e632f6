"""The venue's order trackers, its event outbox and its counters, under one lock.

:class:`Trackers` holds one :class:`~.orders.OrderTracker` per ``client_order_id`` (and the
venue order id → client order id index), the set of orders whose create outcome is still
unknown, and the listener the events go to. Every source of reports (the create response, the
user channel thread, REST lookups and reconciliation on the actors' threads) goes through
:meth:`Trackers.apply`, which runs the pure state machine under the lock and queues the events
it produces. :meth:`Trackers.deliver` hands queued events to the listener after the lock was
released, in the order they were produced, one thread at a time (as the paper venue does); an
exception raised by the listener is counted, never propagated into the venue.

Notes: the first time an order's create outcome becomes unknown, and when it is settled
(accepted, refused or absent), a ``(kind, client_order_id, detail)`` note is queued
(``outcome_unknown`` / ``outcome_resolved``); the ExecutionActor drains them with
:meth:`Trackers.take_notes` and journals them as events, so every unknown outcome leaves a trail
even when it was settled within the submit.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable

from cryptoj.adapters.coinbase.execution.orders import OrderTracker, OrderUpdate, OrderView
from cryptoj.models.base import Message
from cryptoj.models.orders import Fill, OrderClosed, OrderStatus
from cryptoj.venues.base import TrackedOrder

Listener = Callable[[Message], None]

COUNTERS = (
    "submits",
    "accepted",
    "rejected",
    "local_rejects",
    "not_sent",
    "outcome_unknown",
    "unknown_outcomes",
    "unknown_outcomes_resolved",
    "submit_unresolved",
    "resends",
    "lookups",
    "reconciles",
    "reconcile_errors",
    "reconcile_diffs",
    "untracked",
    "settled_skipped",
    "absent",
    "fills",
    "closes",
    "user_updates",
    "user_ignored",
    "user_unmatched",
    "user_lives",
    "user_gaps",
    "cancels",
    "cancel_failures",
    "auth_failures",
    "stops_at_market",
    "resent_after_restart",
)
"""The venue's own counters (always present, from 0); see :mod:`.venue`."""


class Trackers:
    """See the module docstring. ``clock`` stamps the events (ns since the epoch)."""

    def __init__(self, clock: Callable[[], int]) -> None:
        self.clock = clock
        self.lock = threading.RLock()
        self.counts: Counter[str] = Counter(dict.fromkeys(COUNTERS, 0))
        self.listener_failures = 0
        self._deliver_lock = threading.RLock()
        self._outbox: deque[tuple[Listener, Message]] = deque()
        self._listener: Listener | None = None
        self._by_coid: dict[str, OrderTracker] = {}
        self._by_venue_id: dict[str, str] = {}
        self._unknown: set[str] = set()
        self._notes: deque[tuple[str, str, str]] = deque(maxlen=10_000)

    # -- events ------------------------------------------------------------------------------

    def set_listener(self, fn: Listener | None) -> None:
        """Where events go from now on."""
        with self.lock:
            self._listener = fn

    def emit(self, events: Iterable[Message]) -> None:
        """Queue events for the listener (counting fills and closes)."""
        with self.lock:
            for ev in events:
                if isinstance(ev, Fill):
                    self.counts["fills"] += 1
                elif isinstance(ev, OrderClosed):
                    self.counts["closes"] += 1
                if self._listener is not None:
                    self._outbox.append((self._listener, ev))

    def deliver(self) -> None:
        """Hand the queued events to the listener, in order, outside the state lock."""
        with self._deliver_lock:
            while True:
                with self.lock:
                    if not self._outbox:
                        return
                    listener, event = self._outbox.popleft()
                try:
                    listener(event)
                except Exception:  # a consumer bug must not corrupt the venue
                    with self.lock:
                        self.listener_failures += 1

    # -- trackers ----------------------------------------------------------------------------

    def get(self, client_order_id: str) -> OrderTracker | None:
        """The tracker of one order, or None."""
        with self.lock:
            return self._by_coid.get(client_order_id)

    def add(self, t: OrderTracker) -> OrderTracker:
        """Register a new tracker (or return the one already registered for its id)."""
        with self.lock:
            return self._by_coid.setdefault(t.client_order_id, t)

    def remove(self, client_order_id: str) -> None:
        """Forget an order (it is certainly absent at the venue)."""
        with self.lock:
            t = self._by_coid.pop(client_order_id, None)
            if t is not None and t.venue_order_id:
                self._by_venue_id.pop(t.venue_order_id, None)
            self.resolved(client_order_id, "absent at Coinbase")

    def for_update(self, u: OrderUpdate) -> OrderTracker | None:
        """The tracker a report is about (by client order id, else by venue order id)."""
        with self.lock:
            coid = u.client_order_id or self._by_venue_id.get(u.venue_order_id, "")
            return self._by_coid.get(coid)

    def for_venue_id(self, venue_order_id: str) -> OrderTracker | None:
        """The tracker of a venue order id, or None."""
        with self.lock:
            coid = self._by_venue_id.get(venue_order_id)
            return self._by_coid.get(coid) if coid else None

    def apply(self, t: OrderTracker, u: OrderUpdate) -> list[Message]:
        """Run one report through ``t``'s state machine; queue and return its events."""
        with self.lock:
            events = t.apply(u, self.clock())
            if t.venue_order_id:
                self._by_venue_id[t.venue_order_id] = t.client_order_id
                if t.accepted:
                    self.resolved(t.client_order_id, f"found ({u.source or 'report'})")
            self.emit(events)
            return events

    def learn_id(self, t: OrderTracker, venue_order_id: str) -> None:
        """The create response named the order: index it, emit OrderAccepted once."""
        with self.lock:
            self.emit(t.learn_id(venue_order_id, self.clock()))
            self._by_venue_id[venue_order_id] = t.client_order_id
            self.resolved(t.client_order_id, "accepted (sent again under the same id)")

    def mark_unknown(self, client_order_id: str, why: str) -> None:
        """The order's create outcome is unknown (counted and noted once per order)."""
        with self.lock:
            if client_order_id not in self._unknown:
                self._unknown.add(client_order_id)
                self.counts["unknown_outcomes"] += 1
                self._notes.append(("outcome_unknown", client_order_id, why))

    def resolved(self, client_order_id: str, how: str) -> None:
        """The order's outcome is known now (found, refused or absent)."""
        with self.lock:
            if client_order_id in self._unknown:
                self._unknown.discard(client_order_id)
                self.counts["unknown_outcomes_resolved"] += 1
                self._notes.append(("outcome_resolved", client_order_id, how))

    def note(self, kind: str, client_order_id: str, detail: str) -> None:
        """Queue one more note for the journal (e.g. ``stop_sent_at_market``)."""
        with self.lock:
            self._notes.append((kind, client_order_id, detail))

    def take_notes(self) -> list[tuple[str, str, str]]:
        """The queued ``(kind, client_order_id, detail)`` notes, oldest first (and forget them)."""
        with self.lock:
            out = list(self._notes)
            self._notes.clear()
            return out

    def is_unknown(self, client_order_id: str) -> bool:
        """True while the order's create outcome is unknown."""
        with self.lock:
            return client_order_id in self._unknown

    def track(self, order: TrackedOrder) -> None:
        """Register a journalled order; a known one only has its baseline raised."""
        with self.lock:
            t = self._by_coid.get(order.client_order_id)
            if t is None:
                t = OrderTracker(
                    client_order_id=order.client_order_id,
                    product=order.product,
                    side=order.side,
                    order_type=order.order_type,
                    created_ts=order.created_ts,
                )
                self._by_coid[order.client_order_id] = t
                if order.venue_order_id is None and order.status is OrderStatus.PENDING:
                    self.mark_unknown(order.client_order_id, "PENDING in the journal at start")
            if order.venue_order_id and t.venue_order_id is None:
                t.venue_order_id = order.venue_order_id
                self._by_venue_id[order.venue_order_id] = order.client_order_id
                self.resolved(order.client_order_id, "the journal knows its venue order id")
            t.restore(order.filled_quantity, order.filled_value, order.fees)

    def on_user_updates(self, updates: Iterable[OrderUpdate]) -> None:
        """Apply user-channel reports; reports of untracked orders wait for reconciliation."""
        with self.lock:
            for u in updates:
                self.counts["user_updates"] += 1
                t = self.for_update(u)
                if t is None:
                    self.counts["user_unmatched"] += 1
                elif not self.apply(t, u):
                    self.counts["user_ignored"] += 1
        self.deliver()

    # -- views -------------------------------------------------------------------------------

    def view(self, client_order_id: str) -> OrderView | None:
        """The order's view; None when untracked, or PENDING and not confirmed by the venue."""
        with self.lock:
            t = self._by_coid.get(client_order_id)
            if t is None or (not t.accepted and not t.terminal):
                return None
            return t.view()

    def open_views(self) -> list[OrderView]:
        """Accepted orders that are not terminal."""
        with self.lock:
            return [t.view() for t in self._by_coid.values() if t.accepted and not t.terminal]

    def live(self) -> list[OrderTracker]:
        """Every tracker that is not terminal."""
        with self.lock:
            return [t for t in self._by_coid.values() if not t.terminal]

    def fills_for(self, client_order_id: str) -> tuple[Fill, ...]:
        """The fills this process derived for one order."""
        with self.lock:
            t = self._by_coid.get(client_order_id)
            return tuple(t.fills) if t is not None else ()

    def all_fills(self) -> tuple[Fill, ...]:
        """Every fill this process derived, per order in tracking order."""
        with self.lock:
            return tuple(f for t in self._by_coid.values() for f in t.fills)

    def unknown(self) -> list[str]:
        """Client order ids whose create outcome is still unknown."""
        with self.lock:
            return sorted(self._unknown)

    def counters(self) -> dict[str, int]:
        """The counters plus ``unknown_outcomes_pending`` and ``anomalies``."""
        with self.lock:
            out = dict(self.counts)
            out["unknown_outcomes_pending"] = len(self._unknown)
            out["anomalies"] = sum(t.anomalies for t in self._by_coid.values())
            out["listener_failures"] = self.listener_failures
            return out


__all__ = ["COUNTERS", "Listener", "Trackers"]
