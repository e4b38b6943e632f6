"""The PortfolioActor's unwind state: the plan in force, its queue and the slices in flight.

Pure bookkeeping; the actor does the I/O (check-and-reserve, journal, send). Per product:

1. :meth:`UnwindBook.due` — is a slice due now? Only for an *active* item of the queue
   (:meth:`~cryptoj.unwind.queue.UnwindQueue.active`), with no slice in flight, on a quote no
   earlier slice used, while the position is above the target; its size from
   :func:`~cryptoj.unwind.slicing.next_slice` against the quote's bid size (the visible
   depth), the recent volume, the market time between the product's books (the pace to the
   deadline), the move against the unwind since it started and the volatility regime.
2. :meth:`UnwindBook.sent` / :meth:`UnwindBook.on_fill` / :meth:`UnwindBook.on_close` — the
   slice's order, its fills, and the :class:`~cryptoj.models.unwind.UnwindSliceReport` when
   it closes (fill, fees, slippage against the arrival mid, implementation shortfall against
   the mid when the product's unwind started, remaining exposure).
3. :meth:`UnwindBook.settle` — drop an item whose target is reached;
   :meth:`UnwindBook.completed_plan` — a plan whose items are all done, reported once.

Recent volume is the last bar's volume when the portfolio receives bars; for *modelled*
quotes of bar-only data (``derived``) it is the bar volume the quote was modelled from,
``bid_size ÷ feed.bar_depth_fraction``; otherwise unknown (no participation cap).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from cryptoj.config import Config
from cryptoj.models.market import Bar, Quote
from cryptoj.models.unwind import ResponseLevel, UnwindPlan, UnwindSliceReport
from cryptoj.unwind.queue import SliceInFlight, UnwindItem, UnwindQueue
from cryptoj.unwind.slicing import (
    SliceDecision,
    SliceRules,
    adverse_move_bps,
    next_slice,
    slippage_bps,
)

ZERO = Decimal(0)


class UnwindBook:
    """See the module docstring."""

    def __init__(
        self, default_rules: SliceRules, stop_loss_deadline_ns: int, bar_depth_fraction: float
    ) -> None:
        self.default_rules = default_rules
        self.rules = default_rules
        self.stop_loss_deadline_ns = stop_loss_deadline_ns
        self.bar_depth_fraction = Decimal(repr(bar_depth_fraction))
        self.plan: UnwindPlan | None = None
        self.queue = UnwindQueue()
        self.volumes: dict[str, Decimal] = {}  # product → its latest bar's volume
        #: product → the bid size of its latest modelled quote, while it has had no bar (its
        #: volume is inferred from it when a slice is sized: see :meth:`volume`)
        self._modelled_size: dict[str, Decimal] = {}
        self._infer = self.bar_depth_fraction > 0
        self.last_ts: dict[str, int] = {}  # product → timestamp of its latest book
        self.intervals: dict[str, int] = {}  # product → market time between its last two books
        self._by_coid: dict[str, str] = {}
        self._completed: set[str] = set()
        self.slices_sent = 0
        self.plan_slices: dict[str, int] = {}  # plan id → slices sent under it

    @classmethod
    def from_config(cls, cfg: Config) -> UnwindBook:
        """The book of ``cfg``: ``shutdown.unwind``'s slicing and stop-loss deadline,
        ``feed.bar_depth_fraction``."""
        u = cfg.shutdown.unwind
        rules = SliceRules(
            mode=u.mode,
            depth_fraction=u.depth_fraction,
            max_participation=u.max_participation,
            adverse_move_bps=u.adverse_move_bps,
            volatile_multiplier=u.volatile_multiplier,
            coarse_depth_multiple=u.coarse_depth_multiple,
        )
        return cls(rules, int(u.stop_loss_deadline_s * 1e9), cfg.feed.bar_depth_fraction)

    # -- the instruction ------------------------------------------------------------------

    @property
    def entries_allowed(self) -> bool:
        """False while the programme stops new entries."""
        return self.plan is None or self.plan.entries_allowed

    @property
    def size_multiplier(self) -> float:
        """Scale of new entries (below 1 while re-entering after a recovery)."""
        return 1.0 if self.plan is None else self.plan.size_multiplier

    def owns(self, product: str) -> bool:
        """True when the rebalancer must leave ``product`` alone (the unwind sells it)."""
        return product in self.queue

    @property
    def reduce_only(self) -> bool:
        """True while the plan governs exposure (REDUCE and up): the rebalancer only reduces,
        toward the strategy's targets, without the risk level's size multiplier."""
        return self.plan is not None and self.plan.reduce_only

    @property
    def max_concurrent(self) -> int:
        """How many plan items may trade at once (all of them in immediate mode)."""
        if self.rules.mode == "immediate":
            return len(self.queue) or 1
        return self.plan.max_concurrent if self.plan is not None else 1

    def apply_plan(
        self,
        plan: UnwindPlan,
        holdings: Mapping[str, Decimal],
        mids: Mapping[str, Decimal],
        now_ns: int,
    ) -> list[str]:
        """Make ``plan`` the instruction in force; return the products queued for it."""
        self.plan = plan
        self.rules = SliceRules(
            mode=plan.mode,
            depth_fraction=plan.depth_fraction,
            max_participation=plan.max_participation,
            adverse_move_bps=plan.adverse_move_bps,
            volatile_multiplier=plan.volatile_multiplier,
            coarse_depth_multiple=plan.coarse_depth_multiple,
        )
        items: list[UnwindItem] = []
        if plan.level.rank >= ResponseLevel.REDUCE.rank:
            listed = {t.product for t in plan.targets}
            wanted = [(t.product, t.quantity, t.priority) for t in plan.targets]
            if plan.flatten_rest:
                rest = sorted(p for p, q in holdings.items() if q > 0 and p not in listed)
                wanted += [(p, ZERO, -1.0) for p in rest]
            for product, target, priority in wanted:
                if holdings.get(product, ZERO) <= target:
                    continue
                items.append(
                    UnwindItem(
                        product=product,
                        target=max(target, ZERO),
                        priority=priority,
                        plan_id=plan.plan_id,
                        trigger=plan.trigger,
                        deadline_ns=plan.deadline_ns,
                        started_ns=now_ns,
                        start_mid=mids.get(product),
                    )
                )
        self.queue.replace_plan(items)
        return [i.product for i in items]

    def push_stop_loss(self, product: str, now_ns: int, mid: Decimal | None) -> UnwindItem:
        """Queue a stop-loss exit of ``product`` ahead of the plan (target 0)."""
        return self.queue.push_urgent(
            UnwindItem(
                product=product,
                target=ZERO,
                priority=float("inf"),
                plan_id=f"stop-loss:{product}",
                trigger="stop_loss",
                deadline_ns=now_ns + self.stop_loss_deadline_ns,
                started_ns=now_ns,
                start_mid=mid,
            )
        )

    # -- market inputs --------------------------------------------------------------------

    def on_bar(self, bar: Bar) -> None:
        """Remember the bar's volume as the product's recent volume."""
        self.volumes[bar.product] = bar.volume

    def on_quote(self, q: Quote) -> None:
        """Track the interval between the product's books; for a modelled quote (and no bars),
        infer the bar volume it was modelled from."""
        last = self.last_ts.get(q.product)
        if last is not None and q.ts > last:
            self.intervals[q.product] = q.ts - last
        if last is None or q.ts > last:
            self.last_ts[q.product] = q.ts
        if q.derived and self._infer and q.product not in self.volumes:
            self._modelled_size[q.product] = q.bid_size

    def volume(self, product: str) -> Decimal | None:
        """The product's recent volume: its latest bar's, else the one its latest modelled
        quote was modelled from (``bid_size ÷ bar_depth_fraction``), else unknown (None)."""
        volume = self.volumes.get(product)
        if volume is None and product in self._modelled_size:
            return self._modelled_size[product] / self.bar_depth_fraction
        return volume

    # -- slices ---------------------------------------------------------------------------

    def due(
        self, product: str, holding: Decimal, q: Quote, now_ns: int, *, volatile: bool = False
    ) -> tuple[UnwindItem, SliceDecision] | None:
        """The slice to send now for ``product``, if one is due (module docstring).

        ``volatile``: the product is in the VOLATILE regime (the slices speed up)."""
        item = self.queue.get(product)
        if item is None or item.inflight is not None or q.ts <= item.last_quote_ts:
            return None
        if item not in self.queue.active(self.max_concurrent, now_ns):
            return None
        rules = self.rules if not item.urgent or self.plan is not None else self.default_rules
        decision = next_slice(
            holding - item.target,
            [(q.bid, q.bid_size)],
            self.volume(product),
            rules,
            now_ns=now_ns,
            deadline_ns=item.deadline_ns,
            interval_ns=self.intervals.get(product),
            adverse_bps=adverse_move_bps(item.start_mid, q.mid),
            volatile=volatile,
            started_ns=item.started_ns,
        )
        return None if decision is None else (item, decision)

    def sent(
        self, item: UnwindItem, coid: str, decision: SliceDecision, q: Quote, now_ns: int
    ) -> None:
        """The slice's order was reserved, journalled and sent."""
        item.inflight = SliceInFlight(coid, decision.quantity, q.mid, decision.at_market, now_ns)
        item.last_quote_ts = q.ts
        item.slices += 1
        if item.start_mid is None:
            item.start_mid = q.mid
        self._by_coid[coid] = item.product
        self.slices_sent += 1
        self.plan_slices[item.plan_id] = self.plan_slices.get(item.plan_id, 0) + 1

    def is_slice(self, coid: str) -> bool:
        """True for the order of a slice still in flight."""
        return coid in self._by_coid

    def on_fill(self, coid: str, quantity: Decimal, price: Decimal, fee: Decimal = ZERO) -> None:
        """Account a fill of a slice (``fee`` in quote currency)."""
        product = self._by_coid.get(coid)
        item = self.queue.get(product) if product else None
        if item is not None and item.inflight and item.inflight.client_order_id == coid:
            item.inflight.filled += quantity
            item.inflight.value += quantity * price
            item.inflight.fee += fee

    def on_close(
        self, coid: str, holding: Decimal, mid: Decimal, status: str, now_ns: int
    ) -> UnwindSliceReport | None:
        """The slice's order closed: its report (None for an order that is not a slice)."""
        product = self._by_coid.pop(coid, None)
        item = self.queue.get(product) if product else None
        if item is None or item.inflight is None or item.inflight.client_order_id != coid:
            return None
        s, item.inflight = item.inflight, None
        avg = s.average_price
        start = item.start_mid if item.start_mid is not None else s.arrival_mid
        remaining = max(ZERO, holding - item.target)
        # implementation shortfall: the fees lower what the slice realised
        net = (s.value - s.fee) / s.filled if s.filled > 0 else None
        return UnwindSliceReport(
            ts=now_ns,
            plan_id=item.plan_id,
            trigger=item.trigger,
            product=item.product,
            client_order_id=coid,
            quantity=s.quantity,
            filled=s.filled,
            average_price=avg,
            arrival_mid=s.arrival_mid,
            start_mid=start,
            slippage_bps=slippage_bps(s.arrival_mid, avg) if avg is not None else 0.0,
            shortfall_bps=slippage_bps(start, net) if net is not None else 0.0,
            remaining_quantity=remaining,
            remaining_exposure=remaining * mid,
            at_market=s.at_market,
            status=status,
            started_ns=item.started_ns,
            fee=s.fee,
        )

    def settle(self, product: str, holding: Decimal) -> bool:
        """Drop ``product``'s item once its target is reached (True when dropped)."""
        item = self.queue.get(product)
        if item is None or item.inflight is not None or holding > item.target:
            return False
        self.queue.remove(product)
        return True

    def completed_plan(self) -> str | None:
        """The id of the plan in force once all its items are done (reported once)."""
        plan = self.plan
        if (
            plan is None
            or plan.level.rank < ResponseLevel.REDUCE.rank
            or self.queue.plan_items()
            or plan.plan_id in self._completed
        ):
            return None
        self._completed.add(plan.plan_id)
        return plan.plan_id
