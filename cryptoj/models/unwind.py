"""Messages of the emergency programme: response levels, unwind plans, slice events, monitoring.

Flow (see :mod:`cryptoj.actors.shutdown` and :mod:`cryptoj.unwind`)::

    PortfolioActor ──MonitorReport──▶ ShutdownActor ◀── RiskLevelChanged, FeedStatus, operator
          ▲   │                          │
          │   └──UnwindSliceReport, ─────┘ (decides the level, the products, the targets and
          │      UnwindComplete              the deadline)
          └───────── UnwindPlan ◀────────┘

The ShutdownActor decides; the PortfolioActor (the single writer of reservations) turns an
:class:`UnwindPlan` into slice orders with check-and-reserve and reports every slice.
"""

from __future__ import annotations

import enum
from decimal import Decimal

import msgspec

from cryptoj.models.base import Message


class ResponseLevel(enum.StrEnum):
    """Levels of the graduated emergency response, least to most severe.

    What each level does is documented in ``docs/operations.md`` ("Emergency programme"):
    NO_ENTRIES stops new entries; CANCEL_ORDERS also cancels open orders; REDUCE also unwinds
    to the configured target exposure; FLATTEN unwinds everything; STOP stops the process.
    """

    NORMAL = "NORMAL"
    NO_ENTRIES = "NO_ENTRIES"
    CANCEL_ORDERS = "CANCEL_ORDERS"
    REDUCE = "REDUCE"
    FLATTEN = "FLATTEN"
    STOP = "STOP"

    @property
    def rank(self) -> int:
        """0 for NORMAL up to 5 for STOP."""
        return _RANK[self]

    @classmethod
    def parse(cls, name: str) -> ResponseLevel:
        """The level named ``name`` in any case (``"reduce"`` → REDUCE)."""
        return cls(name.upper())


_RANK = {level: i for i, level in enumerate(ResponseLevel)}


class UnwindTarget(msgspec.Struct, frozen=True, kw_only=True):
    """One product of a plan: hold at most ``quantity`` at the end; larger ``priority`` first."""

    product: str
    quantity: Decimal
    priority: float


class UnwindPlan(Message, frozen=True, kw_only=True):
    """Shutdown → Portfolio: the programme in force (immutable; the newest plan replaces all).

    ``targets`` are in priority order (first = unwound first). ``flatten_rest``: any other
    holding is unwound to 0 after them. ``deadline_ns`` (clock time, market time in a replay:
    the decision plus ``shutdown.unwind.max_duration_s``): slices are paced to end by then and
    what is left goes at market. ``adverse_move_bps`` and ``volatile_multiplier`` speed the
    slices up; ``coarse_depth_multiple`` bounds the decision's slice on bars coarser than the
    deadline (:mod:`cryptoj.unwind.slicing`). ``size_multiplier`` scales new entries (the
    gradual re-entry after recovery).
    """

    plan_id: str
    level: ResponseLevel
    trigger: str
    reason: str
    entries_allowed: bool = True
    size_multiplier: float = 1.0
    # From REDUCE up the plan governs exposure: the rebalancer leaves the queued products to
    # it and only reduces the others (toward the strategy's targets; the risk level's size
    # multiplier does not apply: the plan's targets replace it).
    reduce_only: bool = False
    targets: tuple[UnwindTarget, ...] = ()
    flatten_rest: bool = False
    deadline_ns: int | None = None
    mode: str = "gradual"  # or "immediate": everything at market at once
    depth_fraction: float = 0.5
    max_participation: float = 0.1
    max_concurrent: int = 1
    adverse_move_bps: float = 50.0
    volatile_multiplier: float = 2.0
    coarse_depth_multiple: float = 3.0


class UnwindSliceReport(Message, frozen=True, kw_only=True):
    """Portfolio → Shutdown: one slice of an unwind ended (its order closed).

    ``slippage_bps`` is against the mid when the slice was decided (positive = received less);
    ``shortfall_bps`` against the mid when the product's unwind started, fees included
    (implementation shortfall: includes the drift while waiting). ``fee`` is the slice's fees
    in quote currency. ``remaining_*`` is what is left to unwind of the product after it.
    """

    plan_id: str
    trigger: str
    product: str
    client_order_id: str
    quantity: Decimal
    filled: Decimal
    average_price: Decimal | None
    arrival_mid: Decimal
    start_mid: Decimal
    slippage_bps: float
    shortfall_bps: float
    remaining_quantity: Decimal
    remaining_exposure: Decimal
    at_market: bool
    status: str
    started_ns: int
    fee: Decimal = Decimal(0)


class UnwindComplete(Message, frozen=True, kw_only=True):
    """Portfolio → Shutdown: every target of the plan is reached."""

    plan_id: str
    slices: int


class PlanRequest(Message, frozen=True, kw_only=True):
    """Portfolio → Shutdown on (re)start: send me the plan in force, if any."""


class ExposureView(msgspec.Struct, frozen=True, kw_only=True):
    """One position as the portfolio sees it: quantity and the latest mid."""

    product: str
    quantity: Decimal
    mid: Decimal


class MonitorReport(Message, frozen=True, kw_only=True):
    """Portfolio → Shutdown, at most once a second of clock time: the monitored figures.

    ``closed``/``rejected`` count this instance's orders closed / rejected (or unknown at
    execution) since the previous report; ``latency_ns`` is the slowest order round trip
    (decision to close) among them, or the age of the oldest order still open if longer.
    Volatility and correlation are the RiskActor's, as the portfolio last received them;
    ``volatile`` lists the products in the VOLATILE regime.
    """

    equity: Decimal
    positions: tuple[ExposureView, ...]
    risk_level: str | None
    volatility: tuple[tuple[str, float], ...] = ()
    correlation: tuple[tuple[str, float], ...] = ()
    volatile: tuple[str, ...] = ()
    closed: int = 0
    rejected: int = 0
    latency_ns: int = 0


class OperatorCommand(Message, frozen=True, kw_only=True):
    """Operator → Shutdown: ``flatten``, ``hold`` or ``resume`` (``stop_after``: flatten, then
    stop the daemon with exit code 0)."""

    command: str
    reason: str = ""
    stop_after: bool = False
