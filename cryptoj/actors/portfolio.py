"""PortfolioActor: the single writer of cash, positions and reservations.

Every decision that depends on portfolio state is made here, in the handler that reserves the
funds (check-and-reserve), never on a copy elsewhere. Journal first, then apply: an intent is
journalled before its order is sent, a fill with its position change before the books change.

Recovery: on start the books are rebuilt from the journal (fills in order, open intents as
reservations), then every open intent is reconciled with the ExecutionActor, which re-sends the
venue's fills (deduplicated here by fill id) and reports orders it never received (their
reservations are released). The same reconciliation runs on a timer while intents are open, so a
message lost in a crashed mailbox cannot leak a reservation.
"""

from __future__ import annotations

from decimal import Decimal

from cryptoj.actors.base import Actor, Context
from cryptoj.config import Config
from cryptoj.journal import Journal
from cryptoj.models.market import Quote
from cryptoj.models.orders import (
    Fill,
    OrderClosed,
    OrderRejected,
    OrderStatusReport,
    OrderStatusRequest,
    OrderType,
    Side,
    SubmitOrder,
)
from cryptoj.models.portfolio import PortfolioSnapshot, Position
from cryptoj.models.risk import RiskLevel, RiskParameters, StopLossTriggered
from cryptoj.models.signals import TargetWeight
from cryptoj.models.system import Halt, ReconcileNow, Tick
from cryptoj.portfolio.ledger import Holding, Ledger, Reservation
from cryptoj.portfolio.rebalance import PlannedOrder, plan_rebalance

RECONCILE = Tick(kind="reconcile")
#: Snapshots go to the RiskActor after every fill and otherwise at most this often (clock ns).
SNAPSHOT_EVERY_NS = 1_000_000_000
#: Headroom reserved above the touch price for a market buy (slippage walk) before fees.
BUY_HEADROOM = Decimal("1.02")


class PortfolioActor(Actor):
    """Owns the ledger; turns target weights into orders under the current risk parameters."""

    kind = "portfolio"

    def __init__(
        self,
        cfg: Config,
        journal_path: str,
        *,
        execution: str = "execution",
        risk: str = "risk",
        reconcile_every_ns: int = 60 * 10**9,
        min_trade_fraction: float = 0.005,
    ) -> None:
        self.cfg = cfg
        self.journal_path = journal_path
        self.execution = execution
        self.risk = risk
        self.reconcile_every_ns = reconcile_every_ns
        self.min_trade_fraction = min_trade_fraction
        self.fee = Decimal(repr(cfg.paper.taker_fee))
        self.ledger = Ledger(Decimal(0))
        self.quotes: dict[str, Quote] = {}
        self.targets: dict[str, TargetWeight] = {}
        self.params: RiskParameters | None = None
        self.stopped_out: set[str] = set()
        self.halted = False
        self.limit_breaches = 0
        self.orders_sent = 0
        self._timer_armed = False
        self._last_equity_ts = -1
        self._last_snapshot_ns = -SNAPSHOT_EVERY_NS
        self.journal: Journal | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def on_start(self, ctx: Context) -> None:
        """Rebuild the books from the journal, then reconcile open intents."""
        journal = self.journal = Journal(self.journal_path)
        start = journal.get_meta("starting_cash")
        if start is None:
            raise RuntimeError(f"journal {self.journal_path} has no starting_cash")
        self.ledger = rebuild_ledger(journal, Decimal(start))
        if self.ledger.reservations:
            self._request_status(ctx)

    def on_stop(self, ctx: Context) -> None:
        """Close the journal."""
        if self.journal is not None:
            self.journal.close()

    # -- inputs ---------------------------------------------------------------------------

    def _handle_quote(self, q: Quote, ctx: Context) -> None:
        if q.ts != self._last_equity_ts:
            self._record_equity(q.ts)
        self.quotes[q.product] = q
        self._check_stop_loss(q.product, ctx)
        self._rebalance(q.product, ctx)
        if ctx.now() - self._last_snapshot_ns >= SNAPSHOT_EVERY_NS:
            self._send_snapshot(q.ts, ctx)

    def _send_snapshot(self, ts: int, ctx: Context) -> None:
        self._last_snapshot_ns = ctx.now()
        ctx.send(self.risk, self.snapshot(ts))

    def _handle_target_weight(self, msg: TargetWeight, ctx: Context) -> None:
        self.targets[msg.product] = msg
        if msg.weight == 0:
            self.stopped_out.discard(msg.product)  # the stop re-arms once the signal resets
        self._rebalance(msg.product, ctx)

    def _handle_risk_parameters(self, msg: RiskParameters, ctx: Context) -> None:
        self.params = msg

    def _handle_halt(self, msg: Halt, ctx: Context) -> None:
        self.halted = True

    # -- order outcomes -------------------------------------------------------------------

    def _handle_fill(self, fill: Fill, ctx: Context) -> None:
        journal = self._journal()
        if journal.has_fill(fill.fill_id):
            return  # a re-sent fill (reconciliation); already applied
        preview = Ledger(self.ledger.cash, {fill.product: _copy(self.ledger, fill.product)})
        holding = preview.apply_fill(fill)
        journal.record_fill(fill, holding.quantity, holding.average_price, preview.cash)
        self.ledger.apply_fill(fill)
        self._send_snapshot(fill.ts, ctx)

    def _handle_order_closed(self, msg: OrderClosed, ctx: Context) -> None:
        self._close(msg.client_order_id, str(msg.status), msg.ts)

    def _handle_order_rejected(self, msg: OrderRejected, ctx: Context) -> None:
        self._close(msg.client_order_id, "REJECTED", msg.ts)

    def _handle_order_status_report(self, msg: OrderStatusReport, ctx: Context) -> None:
        if not msg.known:
            self._close(msg.client_order_id, "UNKNOWN_AT_EXECUTION", msg.ts)
        elif msg.status is not None and msg.status.terminal:
            self._close(msg.client_order_id, str(msg.status), msg.ts)

    def _handle_reconcile_now(self, msg: ReconcileNow, ctx: Context) -> None:
        self._request_status(ctx)

    def _handle_tick(self, msg: Tick, ctx: Context) -> None:
        self._timer_armed = False
        if self.ledger.reservations:
            self._request_status(ctx)

    def _close(self, client_order_id: str, status: str, ts: int) -> None:
        if self.ledger.release(client_order_id) is not None:
            self._journal().close_intent(client_order_id, status, ts)

    def _request_status(self, ctx: Context) -> None:
        ids = tuple(sorted(self.ledger.reservations))
        if ids:
            ctx.send(self.execution, OrderStatusRequest(ts=ctx.now(), client_order_ids=ids))
        if not self._timer_armed:
            self._timer_armed = True
            ctx.schedule(self.reconcile_every_ns, RECONCILE)

    # -- decisions ------------------------------------------------------------------------

    def _check_stop_loss(self, product: str, ctx: Context) -> None:
        h = self.ledger.holdings.get(product)
        q = self.quotes[product]
        if self.params is None or h is None or h.quantity <= 0 or product in self.stopped_out:
            return
        if q.bid <= h.average_price * (1 - Decimal(repr(self.params.stop_loss))):
            self.stopped_out.add(product)
            ctx.send(self.risk, StopLossTriggered(ts=q.ts, product=product))
            if not self.ledger.has_open_order(product):
                qty = self.ledger.available(product)
                reason = (
                    f"stop loss: bid {q.bid} is {self.params.stop_loss:.0%} or more "
                    f"below entry {h.average_price}"
                )
                self._send_order(product, PlannedOrder(Side.SELL, qty, 0.0), reason, ctx)

    def _rebalance(self, product: str, ctx: Context) -> None:
        target, q, params = self.targets.get(product), self.quotes.get(product), self.params
        if target is None or q is None or params is None or self.halted:
            return
        if self.ledger.has_open_order(product):
            return  # one order in flight per product: no racing rebalances
        level = params.level
        if not params.entries_allowed and level.rank < RiskLevel.REDUCING.rank:
            level = RiskLevel.REDUCING  # e.g. a stale feed: only exposure-reducing orders
        cap = params.weight_cap(product)
        weight = min(target.weight * params.size_multiplier, cap)
        if product in self.stopped_out:
            weight = 0.0
        plan = plan_rebalance(
            equity=self.equity(),
            quantity=self.ledger.position(product),
            price=q.mid,
            ask=q.ask,
            target_weight=weight,
            min_position_size=params.min_position_size,
            min_trade_fraction=self.min_trade_fraction,
            level=level,
        )
        if isinstance(plan, str):
            return
        reason = (
            f"target {weight:.4f} ({target.reason}; risk v{params.version} {level}, cap {cap:.4f})"
        )
        self._send_order(product, plan, reason, ctx)

    def _send_order(self, product: str, plan: PlannedOrder, reason: str, ctx: Context) -> None:
        q = self.quotes[product]
        if plan.side == Side.BUY:
            after = (self.ledger.position(product) + plan.quantity) * q.mid
            limit = Decimal(repr(self.cfg.risk.position_size_limit)) * self.equity()
            if after > limit * Decimal("1.0001"):
                self.limit_breaches += 1
                return
            cash = plan.quantity * q.ask * BUY_HEADROOM * (1 + self.fee)
        else:
            cash = Decimal(0)
        if self.halted or (self.params is not None and self.params.level == RiskLevel.HALTED):
            return
        coid = ctx.new_id("cj")
        res = self.ledger.reserve(coid, product, plan.side, plan.quantity, cash)
        if isinstance(res, str):
            return
        self._journal().record_intent(
            {
                "client_order_id": coid,
                "product": product,
                "side": str(plan.side),
                "order_type": str(OrderType.MARKET),
                "quantity": plan.quantity,
                "limit_price": None,
                "reserved_cash": res.cash,
                "reserved_base": res.base,
                "reason": reason,
                "ts": q.ts,
            }
        )
        self.orders_sent += 1
        ctx.send(
            self.execution,
            SubmitOrder(
                ts=q.ts,
                client_order_id=coid,
                product=product,
                side=plan.side,
                order_type=OrderType.MARKET,
                quantity=plan.quantity,
                reason=reason,
            ),
        )
        if not self._timer_armed:
            self._timer_armed = True
            ctx.schedule(self.reconcile_every_ns, RECONCILE)

    # -- views ----------------------------------------------------------------------------

    def marks(self) -> dict[str, Decimal]:
        """Latest mid per product."""
        return {p: q.mid for p, q in self.quotes.items()}

    def equity(self) -> Decimal:
        """Cash plus positions at the latest mids."""
        return self.ledger.equity(self.marks())

    def snapshot(self, ts: int) -> PortfolioSnapshot:
        """An immutable view of the books."""
        marks = self.marks()
        positions = tuple(
            Position(
                product=p,
                quantity=h.quantity,
                average_price=h.average_price,
                mark_price=marks.get(p, h.average_price),
            )
            for p, h in sorted(self.ledger.holdings.items())
            if h.quantity != 0
        )
        reserved = sum((r.held_cash for r in self.ledger.reservations.values()), Decimal(0))
        return PortfolioSnapshot(
            ts=ts,
            cash=self.ledger.cash,
            reserved_cash=reserved,
            equity=self.ledger.equity(marks),
            positions=positions,
            open_orders=len(self.ledger.reservations),
        )

    def _record_equity(self, ts: int) -> None:
        if self.quotes and self._last_equity_ts >= 0:
            self._journal().record_equity(self._last_equity_ts, self.equity(), self.ledger.cash)
        self._last_equity_ts = ts

    def _journal(self) -> Journal:
        assert self.journal is not None, "PortfolioActor used before on_start"
        return self.journal


def _copy(ledger: Ledger, product: str) -> Holding:
    h = ledger.holdings.get(product, Holding())
    return Holding(h.quantity, h.average_price)


def rebuild_ledger(journal: Journal, starting_cash: Decimal) -> Ledger:
    """The books as the journal says they are: every fill applied, open intents reserved."""
    ledger = Ledger(starting_cash)
    for fill in journal.fills():
        ledger.apply_fill(fill)
    for row in journal.open_intents():
        coid = row["client_order_id"]
        ledger.reservations[coid] = Reservation(
            coid,
            row["product"],
            Side(row["side"]),
            Decimal(row["quantity"]),
            Decimal(row["reserved_cash"]),
            Decimal(row["reserved_base"]),
            journal.filled_quantity(coid),
        )
    return ledger
