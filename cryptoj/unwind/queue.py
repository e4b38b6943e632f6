"""The unwind priority queue the PortfolioActor works through. Pure (no I/O, no clock).

Items are ordered: urgent items (stop-loss exits, in the order they came) first, then the
plan's items in the plan's order (the ShutdownActor sorted them by priority, largest first).
Which items may trade now (:meth:`UnwindQueue.active`):

* every urgent item;
* the first ``max_concurrent`` non-urgent items (so a lower-priority position never starts
  before a higher-priority one: it waits until one of those is done);
* every item once its deadline has passed (the remainders go at market together).

An item is done when the position is at or below its target; the caller removes it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

ZERO = Decimal(0)


@dataclass
class SliceInFlight:
    """The order of one slice while it is open: what it asked for and what it got."""

    client_order_id: str
    quantity: Decimal
    arrival_mid: Decimal
    at_market: bool
    decided_ns: int
    filled: Decimal = ZERO
    value: Decimal = ZERO  # Σ fill quantity × price
    fee: Decimal = ZERO  # Σ fill fees, quote currency

    @property
    def average_price(self) -> Decimal | None:
        """Quantity-weighted fill price (None before a fill)."""
        return self.value / self.filled if self.filled > 0 else None


@dataclass
class UnwindItem:
    """One product to unwind down to ``target`` base units."""

    product: str
    target: Decimal
    priority: float
    plan_id: str
    trigger: str
    deadline_ns: int | None = None
    urgent: bool = False
    note: str = ""  # why, for the orders' reason (a stop-loss says which bid hit which entry)
    seq: int = 0  # arrival order (urgent items keep it)
    rank: int = 0  # position in the plan's order
    started_ns: int = 0
    start_mid: Decimal | None = None
    last_quote_ts: int = -1  # the quote the latest slice used
    slices: int = 0
    inflight: SliceInFlight | None = None

    def past_deadline(self, now_ns: int) -> bool:
        """True once the deadline (if any) has passed."""
        return self.deadline_ns is not None and now_ns >= self.deadline_ns


@dataclass
class UnwindQueue:
    """Items by product, ordered as in the module docstring."""

    items: dict[str, UnwindItem] = field(default_factory=dict)
    _seq: int = 0

    def __contains__(self, product: object) -> bool:
        return product in self.items

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[UnwindItem]:
        return iter(self.ordered())

    def get(self, product: str) -> UnwindItem | None:
        """The item of ``product``, if any."""
        return self.items.get(product)

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def replace_plan(self, plan_items: Sequence[UnwindItem]) -> None:
        """Make ``plan_items`` the plan's items; urgent items stay (with the lower target).

        A product that stays in the queue keeps its progress (slice in flight, started time,
        start mid, last quote used); only its target, priority, plan and deadline change.
        """
        for rank, item in enumerate(plan_items):
            item.rank = rank
        new = {i.product: i for i in plan_items}
        for product, old in list(self.items.items()):
            upd = new.get(product)
            if upd is None:
                if not old.urgent:
                    del self.items[product]
                continue
            old.target = min(old.target, upd.target) if old.urgent else upd.target
            old.priority, old.plan_id, old.trigger = upd.priority, upd.plan_id, upd.trigger
            old.rank, old.deadline_ns = upd.rank, upd.deadline_ns
            del new[product]
        for item in plan_items:
            if item.product in new:
                item.seq = self._next_seq()
                self.items[item.product] = item

    def push_urgent(self, item: UnwindItem) -> UnwindItem:
        """Put ``item`` ahead of the plan (a stop-loss); merge with an existing item."""
        old = self.items.get(item.product)
        if old is not None:
            if not old.urgent:
                old.urgent, old.seq = True, self._next_seq()
            old.target = min(old.target, item.target)
            old.trigger = item.trigger
            if item.deadline_ns is not None and (
                old.deadline_ns is None or item.deadline_ns < old.deadline_ns
            ):
                old.deadline_ns = item.deadline_ns
            return old
        item.urgent, item.seq = True, self._next_seq()
        self.items[item.product] = item
        return item

    def ordered(self) -> list[UnwindItem]:
        """Urgent first (by arrival), then in the plan's order."""
        return sorted(
            self.items.values(),
            key=lambda i: (0, i.seq, "") if i.urgent else (1, i.rank, i.product),
        )

    def active(self, max_concurrent: int, now_ns: int) -> list[UnwindItem]:
        """The items that may trade now (module docstring), in queue order."""
        out: list[UnwindItem] = []
        budget = max_concurrent
        for item in self.ordered():
            if item.urgent or item.past_deadline(now_ns):
                out.append(item)
            elif budget > 0:
                out.append(item)
                budget -= 1
        return out

    def remove(self, product: str) -> UnwindItem | None:
        """Drop the item of ``product`` (done or cancelled)."""
        return self.items.pop(product, None)

    def plan_items(self) -> list[UnwindItem]:
        """The non-urgent items (those a plan put there)."""
        return [i for i in self.items.values() if not i.urgent]
