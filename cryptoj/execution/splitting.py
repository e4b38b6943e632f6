"""Order splitting: TWAP with a depth limit. When to split an order, and how big each child is.

Pure: no actors, no clock, no I/O. :mod:`cryptoj.execution.parent` tracks one split order over
time; this module only decides sizes.

Definitions, for a parent order of ``Q`` base units (floored to the product's base increment):

* **visible depth** ``D``: the size resting at the touch on the side the order takes from (the
  ask for a BUY, the bid for a SELL), for MARKET and LIMIT orders alike; ``P`` is the price
  there. A book without a positive price and size is *unknown* (:func:`book_view` gives None).
* **cap** ``= floor(max_depth_share × D)``: the largest child allowed at that moment.
* **minimum child** ``m = ceil(max(base_min_size, max(min_child_notional, quote_min_size) / p))``
  (at least one increment), with ``p`` the limit price of a LIMIT order, else ``P``.
* **slots**: ``max_duration // child_interval``; slot ``k`` starts at ``start + k × interval``
  and the deadline is ``start + slots × interval``. At most one child is sent per slot.

**Split or not** (:func:`should_split`): only when splitting is enabled, the depth is known,
``Q > cap`` and ``Q ≥ 2m`` (two valid children). Otherwise the order goes whole, as before.

**Next child** (:func:`next_child`) for ``R`` base units still to commit, in slot ``k``::

    even = floor(R / (slots − k))                  # spread evenly over the slots left
    R ≤ cap and R − even < m  →  R                 # the last child absorbs the remainder
    otherwise  →  min(max(even, m), cap, R − m)    # never below m, never strands R − child < m

so every child is ``≤ cap`` and ``≥ m``, and what is left is 0 or at least ``m``. A share
below ``m`` is raised to ``m``: it takes the next slots' shares with it (merged forward). When
no valid child fits (unknown depth, ``cap < m``, or ``m ≤ R`` but no split of ``R`` leaves a
valid remainder within the cap) the slot is skipped (WAIT) and its share moves to the later
slots; ``0 < R < m`` can never be sent (STRANDED); the parent ends there.

Worked example (the README's): BUY 3 BTC at market, share 0.25, 4 slots of 30 s, ask size 2 →
cap 0.5: slot 0 even 0.75 → 0.5; slot 1 even 0.8333… → 0.5. The ask size grows to 6 (cap 1.5):
slot 2 even 1.0 → 1.0; slot 3 → the remaining 1.0. Children 0.5 + 0.5 + 1 + 1 = 3.

:mod:`cryptoj.unwind.slicing` sizes unwind slices with the same steps: :func:`visible_depth`
and :func:`~cryptoj.models.orders.floor_to` (at 1e-8).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from decimal import Context, Decimal
from typing import TYPE_CHECKING

import msgspec

from cryptoj.models.market import Quote
from cryptoj.models.orders import Side, ceil_to, floor_to

if TYPE_CHECKING:
    from cryptoj.config import ExecutionConfig

INCREMENT = Decimal("0.00000001")
"""Default base increment (Coinbase's finest, and the paper venue's)."""

NS_PER_S = 1_000_000_000
_CTX = Context(prec=60)
_ZERO = Decimal(0)


def visible_depth(levels: Sequence[tuple[Decimal, Decimal]], depth_levels: int = 1) -> Decimal:
    """Σ size of the first ``depth_levels`` (price, size) levels, best first."""
    return sum((size for _, size in levels[:depth_levels]), _ZERO)


def _check_decimal(name: str, value: object, *, positive: bool) -> None:
    if not isinstance(value, Decimal) or not value.is_finite():
        raise ValueError(f"{name}: expected a finite Decimal, got {value!r}")
    if positive and value <= 0:
        raise ValueError(f"{name}: expected a value > 0, got {value}")
    if not positive and value < 0:
        raise ValueError(f"{name}: expected a value >= 0, got {value}")


class ProductRules(msgspec.Struct, frozen=True, kw_only=True):
    """The venue's size rules of one product (Coinbase ``GET /products/{id}`` names)."""

    base_increment: Decimal = INCREMENT
    base_min_size: Decimal = _ZERO
    quote_min_size: Decimal = _ZERO  # smallest notional the venue accepts, quote currency

    def __post_init__(self) -> None:
        _check_decimal("base_increment", self.base_increment, positive=True)
        _check_decimal("base_min_size", self.base_min_size, positive=False)
        _check_decimal("quote_min_size", self.quote_min_size, positive=False)


class SplitPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """The splitting parameters (the ``execution`` config section, in Decimal and ns)."""

    enabled: bool = True
    max_depth_share: Decimal = Decimal("0.25")  # of the visible depth, per child
    child_interval_ns: int = 30 * NS_PER_S
    max_duration_ns: int = 600 * NS_PER_S  # the deadline, from the parent's start
    min_child_notional: Decimal = Decimal(10)  # quote currency
    max_consecutive_rejections: int = 3  # then the parent stops (REJECTED)

    def __post_init__(self) -> None:
        _check_decimal("max_depth_share", self.max_depth_share, positive=True)
        if self.max_depth_share > 1:
            raise ValueError(f"max_depth_share: expected at most 1, got {self.max_depth_share}")
        _check_decimal("min_child_notional", self.min_child_notional, positive=False)
        if self.child_interval_ns <= 0:
            raise ValueError(f"child_interval_ns: expected > 0, got {self.child_interval_ns}")
        if self.max_duration_ns < self.child_interval_ns:
            raise ValueError(
                f"max_duration_ns: expected at least child_interval_ns "
                f"({self.child_interval_ns}), got {self.max_duration_ns}"
            )
        if self.max_consecutive_rejections < 1:
            raise ValueError(
                f"max_consecutive_rejections: expected >= 1, got {self.max_consecutive_rejections}"
            )

    @property
    def slots(self) -> int:
        """How many child slots fit before the deadline."""
        return self.max_duration_ns // self.child_interval_ns

    @classmethod
    def from_config(cls, cfg: ExecutionConfig) -> SplitPolicy:
        """The policy of the ``execution`` config section (floats → Decimal, seconds → ns)."""
        return cls(
            enabled=cfg.split_enabled,
            max_depth_share=Decimal(repr(cfg.max_depth_share)),
            child_interval_ns=round(cfg.child_interval_s * NS_PER_S),
            max_duration_ns=round(cfg.max_duration_s * NS_PER_S),
            min_child_notional=Decimal(repr(cfg.min_child_notional)),
            max_consecutive_rejections=cfg.max_consecutive_rejections,
        )


class BookView(msgspec.Struct, frozen=True):
    """The touch an order takes from: its ``price`` and the visible ``depth`` (both > 0)."""

    price: Decimal
    depth: Decimal


def book_view(quote: Quote | None, side: Side) -> BookView | None:
    """The ask (BUY) or bid (SELL) of ``quote``; None when unknown (no quote, no size)."""
    if quote is None:
        return None
    price, depth = (quote.ask, quote.ask_size) if side is Side.BUY else (quote.bid, quote.bid_size)
    if not (price.is_finite() and depth.is_finite()) or price <= 0 or depth <= 0:
        return None
    return BookView(price, depth)


def book_view_from_levels(
    levels: Sequence[tuple[Decimal, Decimal]], depth_levels: int = 1
) -> BookView | None:
    """The best level's price with the depth of the first ``depth_levels`` levels, or None."""
    if not levels:
        return None
    depth = visible_depth(levels, depth_levels)
    price = levels[0][0]
    if price <= 0 or depth <= 0:
        return None
    return BookView(price, depth)


def depth_cap(book: BookView, policy: SplitPolicy, rules: ProductRules) -> Decimal:
    """``floor(max_depth_share × depth)``: the largest child allowed on this book."""
    return floor_to(_CTX.multiply(policy.max_depth_share, book.depth), rules.base_increment)


def beyond_depth(
    quantity: Decimal, depth: Decimal, share: Decimal, increment: Decimal = INCREMENT
) -> bool:
    """``floor(quantity) > floor(share × depth)``: the size test of :func:`should_split`.

    The one definition of "beyond the depth share": the portfolio marks its rebalance legs with
    it (``beyond_depth``, :mod:`cryptoj.portfolio.rebalance`) against the same
    ``execution.max_depth_share`` the ExecutionActor splits with.
    """
    cap = floor_to(_CTX.multiply(share, depth), increment)
    return floor_to(quantity, increment) > cap


def min_child_quantity(price: Decimal, policy: SplitPolicy, rules: ProductRules) -> Decimal:
    """The smallest child at ``price`` (module docstring), at least one increment."""
    if price <= 0:
        raise ValueError(f"price: expected > 0, got {price}")
    notional = max(policy.min_child_notional, rules.quote_min_size)
    by_notional = _CTX.divide(notional, price)
    q = ceil_to(max(rules.base_min_size, by_notional), rules.base_increment)
    return max(q, rules.base_increment)


class SplitDecision(msgspec.Struct, frozen=True):
    """Whether an order is split, and why (for the log and the order's reason)."""

    split: bool
    why: str


def should_split(
    quantity: Decimal,
    book: BookView | None,
    policy: SplitPolicy,
    rules: ProductRules,
    limit_price: Decimal | None = None,
) -> SplitDecision:
    """Split only when enabled, the depth is known, ``Q > cap`` and ``Q ≥ 2m`` (docstring)."""
    if not policy.enabled:
        return SplitDecision(False, "splitting disabled")
    if book is None:
        return SplitDecision(False, "visible depth unknown: sent whole")
    q = floor_to(quantity, rules.base_increment)
    cap = depth_cap(book, policy, rules)
    if not beyond_depth(q, book.depth, policy.max_depth_share, rules.base_increment):
        return SplitDecision(False, f"{q} within {policy.max_depth_share} of depth {book.depth}")
    m = min_child_quantity(limit_price if limit_price is not None else book.price, policy, rules)
    if q < 2 * m:
        return SplitDecision(False, f"{q} is less than two minimum children of {m}")
    return SplitDecision(
        True, f"{q} exceeds {policy.max_depth_share} of visible depth {book.depth} (cap {cap})"
    )


class Step(enum.StrEnum):
    """What the planner says for one slot."""

    SEND = "SEND"  # send a child of ``quantity``
    WAIT = "WAIT"  # no valid child now; try again in the next slot
    STRANDED = "STRANDED"  # 0 < remaining < minimum child: nothing more can be sent
    DONE = "DONE"  # nothing remaining


class ChildPlan(msgspec.Struct, frozen=True):
    """The planner's answer for one slot: ``step``, the child ``quantity`` (0 unless SEND)."""

    step: Step
    quantity: Decimal
    why: str


def next_child(
    remaining: Decimal,
    slots_left: int,
    book: BookView | None,
    policy: SplitPolicy,
    rules: ProductRules,
    limit_price: Decimal | None = None,
) -> ChildPlan:
    """The child to send now for ``remaining`` uncommitted units (module docstring)."""
    inc = rules.base_increment
    remaining = floor_to(remaining, inc)
    if remaining <= 0:
        return ChildPlan(Step.DONE, _ZERO, "nothing remaining")
    if book is None:
        return ChildPlan(Step.WAIT, _ZERO, "visible depth unknown")
    m = min_child_quantity(limit_price if limit_price is not None else book.price, policy, rules)
    if remaining < m:
        return ChildPlan(Step.STRANDED, _ZERO, f"remaining {remaining} below minimum child {m}")
    cap = depth_cap(book, policy, rules)
    if cap < m:
        return ChildPlan(Step.WAIT, _ZERO, f"depth cap {cap} below minimum child {m}")
    even = floor_to(_CTX.divide(remaining, max(1, slots_left)), inc)
    if remaining <= cap and remaining - even < m:
        return ChildPlan(Step.SEND, remaining, f"the remainder (cap {cap})")
    hi = min(cap, remaining - m)
    if hi < m:
        if remaining <= cap:
            return ChildPlan(Step.SEND, remaining, f"the remainder (cap {cap})")
        return ChildPlan(Step.WAIT, _ZERO, f"cap {cap} leaves no valid remainder of {remaining}")
    q = min(max(even, m), hi)
    why = "even share" if q == even else ("raised to the minimum" if q == m else f"cap {cap}")
    return ChildPlan(Step.SEND, q, why)


def simulate(
    quantity: Decimal,
    books: Sequence[BookView | None],
    policy: SplitPolicy,
    rules: ProductRules,
    limit_price: Decimal | None = None,
) -> list[Decimal]:
    """The children of a parent whose every child fills in full, ``books[k]`` seen in slot k.

    A schedule preview (and the README's worked example); ``books`` shorter than the slots
    repeats its last entry.
    """
    remaining = floor_to(quantity, rules.base_increment)
    out: list[Decimal] = []
    for k in range(policy.slots):
        book = books[min(k, len(books) - 1)] if books else None
        plan = next_child(remaining, policy.slots - k, book, policy, rules, limit_price)
        if plan.step in (Step.DONE, Step.STRANDED):
            break
        if plan.step is Step.SEND:
            out.append(plan.quantity)
            remaining -= plan.quantity
    return out


__all__ = [
    "INCREMENT",
    "BookView",
    "ChildPlan",
    "ProductRules",
    "SplitDecision",
    "SplitPolicy",
    "Step",
    "beyond_depth",
    "book_view",
    "book_view_from_levels",
    "depth_cap",
    "min_child_quantity",
    "next_child",
    "should_split",
    "simulate",
    "visible_depth",
]
