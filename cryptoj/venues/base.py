"""The interface every execution venue offers the actors (paper, Coinbase).

:class:`ExecutionVenue` is what the ExecutionActor needs of any venue. A venue whose answers can
be lost on the way (a remote exchange) also implements :class:`ReconcilingVenue`: the actor then
registers the journal's open orders with it (:meth:`ReconcilingVenue.track`), settles orders
whose outcome is unknown by looking them up (:meth:`ReconcilingVenue.resolve`), and runs a full
reconciliation on start, when the venue asks for one (:class:`~cryptoj.models.ReconcileVenue`,
e.g. after its user channel reconnected) and on a timer (:meth:`ReconcilingVenue.reconcile`).
The paper venue is not a ReconcilingVenue: it never loses an answer.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

import msgspec

from cryptoj.models.base import Message
from cryptoj.models.orders import (
    Fill,
    OrderAccepted,
    OrderOutcomeUnknown,
    OrderRejected,
    OrderStatus,
    OrderType,
    Side,
    SubmitOrder,
)


class ExecutionVenue(Protocol):
    """A venue client. Venue events (fills, closes) arrive through the listener."""

    def set_listener(self, fn: Callable[[Message], None] | None) -> None:
        """Where the venue pushes Fill / OrderClosed events (its user channel)."""
        ...

    def submit(
        self, order: SubmitOrder, ts: int
    ) -> OrderAccepted | OrderRejected | OrderOutcomeUnknown:
        """Place an order; idempotent on ``client_order_id``.

        OrderOutcomeUnknown only from a ReconcilingVenue: the order may exist; look it up.
        """
        ...

    def cancel(self, client_order_id: str, ts: int) -> bool:
        """Cancel one order; True if it was open."""
        ...

    def cancel_all(self, ts: int) -> list[str]:
        """Cancel every open order; return their client order ids."""
        ...

    def get_order(self, client_order_id: str) -> Any:
        """The venue's view of one order (status, filled_quantity, fills), or None."""
        ...

    def open_orders(self) -> list[Any]:
        """Orders still open at the venue."""
        ...

    def fills_for(self, client_order_id: str) -> tuple[Fill, ...]:
        """Every fill of one order."""
        ...

    def balances(self) -> dict[str, Decimal]:
        """Total balance per currency."""
        ...


class Resolution(enum.StrEnum):
    """What a lookup of one order by client order id found."""

    FOUND = "found"  # the venue has it: get_order() and fills_for() are now up to date
    ABSENT = "absent"  # the venue certainly does not have it (and it will not be re-sent)
    UNKNOWN = "unknown"  # could not tell yet (venue unreachable, not visible yet): try later


class TrackedOrder(msgspec.Struct, frozen=True, kw_only=True):
    """A journalled order handed to the venue, with what the journal already booked for it."""

    client_order_id: str
    product: str
    side: Side
    order_type: OrderType
    created_ts: int
    venue_order_id: str | None = None
    status: OrderStatus = OrderStatus.PENDING
    filled_quantity: Decimal = Decimal(0)  # Σ journalled fill quantities
    filled_value: Decimal = Decimal(0)  # Σ journalled fill notionals
    fees: Decimal = Decimal(0)  # Σ journalled fill fees
    #: the order as journalled before it was sent (None: the journal does not hold it), so a
    #: venue can send it again under its id when its create outcome is unknown
    order: SubmitOrder | None = None


class ReconcileDiff(msgspec.Struct, frozen=True, kw_only=True):
    """One difference a reconciliation found (and applied: the venue wins)."""

    kind: str  # accepted | fill | status | untracked | absent
    client_order_id: str
    venue_order_id: str = ""
    product: str = ""
    detail: str = ""


class ReconcileReport(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of (a part of) one reconciliation pass; ``error`` is set when the pass could
    not finish (it is over then), ``done`` is False while the pass has calls left."""

    diffs: tuple[ReconcileDiff, ...] = ()
    error: str = ""
    done: bool = True
    waiting: bool = False  # a call of the pass is in flight: a VenueCallDone follows


@runtime_checkable
class ReconcilingVenue(Protocol):
    """A remote venue whose answers can be lost (see the module docstring)."""

    @property
    def reconcile_interval_ns(self) -> int:
        """How often the actor runs :meth:`reconcile`."""
        ...

    @property
    def outcome_retry_ns(self) -> int:
        """How soon the actor retries an order whose outcome is unknown."""
        ...

    def track(self, order: TrackedOrder) -> None:
        """Register a journalled order (idempotent; a known order only has its baseline raised)."""
        ...

    def resolve(
        self, client_order_id: str, ts: int, *, force: bool = False
    ) -> tuple[Resolution, str]:
        """Settle one tracked order (looking it up by client order id if needed) and say how.

        ``force`` looks it up at the venue even when its state is already known.
        """
        ...

    def lookup_later(self, client_order_id: str, *, force: bool = False) -> bool:
        """Hand the read :meth:`resolve` would make to a background thread: True when handed
        over (a :class:`~cryptoj.models.VenueCallDone` follows; the next :meth:`resolve` of
        the order applies it), False when :meth:`resolve` must read itself."""
        ...

    def cancel_later(self, client_order_ids: list[str] | None = None) -> bool:
        """Hand the cancel of these open orders (None: every one) to a background thread: True
        when handed over (a :class:`~cryptoj.models.VenueCallDone` with ``call="cancel"``
        follows; :meth:`cancels_back` applies it), False when ``cancel`` must be called."""
        ...

    def cancels_back(self) -> list[str]:
        """Apply the cancels :meth:`cancel_later` handed over that are back (events go through
        the listener); the orders whose cancel the venue accepted."""
        ...

    def take_notes(self) -> list[tuple[str, str, str]]:
        """``(kind, client_order_id, detail)`` notes to journal as events, oldest first."""
        ...

    def reconcile(
        self,
        ts: int,
        since_ns: int | None = None,
        settled: Callable[[str], bool] | None = None,
        *,
        max_calls: int | None = None,
        new_pass: bool = True,
    ) -> ReconcileReport:
        """Fetch open orders and the fills since the last seen one (or ``since_ns``), apply the
        differences (the venue wins; events go through the listener) and report them.

        ``settled(venue_order_id)`` is True for an order nobody tracks that the journal has as
        terminal with every fill booked: its fills are not followed up (no lookup).
        ``max_calls``: one step of a pass (at most that many venue calls, or one handed to a
        background thread: ``waiting``, and a :class:`~cryptoj.models.VenueCallDone` follows
        through the listener when it is back) and what it found, ``done`` False while calls
        are left (None: the whole pass, here). ``new_pass`` False goes on with the pass in
        progress (``since_ns`` and ``settled`` apply to a new pass only)."""
        ...
