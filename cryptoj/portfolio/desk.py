"""The PortfolioActor's rebalance transactions and the I/O their effects ask for.

Part of the actor shell: a :class:`TxnDesk` belongs to one PortfolioActor instance, writes the
journal and sends through the actor's context, and shares the actor's ledger (the single
writer stays the actor: the desk only runs inside its handlers). Every decision is the pure
:class:`~cryptoj.portfolio.transaction.Transaction`'s; the desk carries out its
:class:`~cryptoj.portfolio.transaction.Effects` in the documented order: **journal** the
transaction row, every leg row, the steps, the intents of the legs being sent and the intent a
closing leg closes (one SQLite transaction), **then** release the reservations of dropped legs,
send the cancels, send the orders (each with a ``portfolio.leg_timeout_s`` timer).

:meth:`TxnDesk.begin` checks and reserves every leg before the plan is journalled: a buy must
keep the position within ``risk.position_size_limit`` at the mid (else it is counted in
``limit_breaches`` and dropped: the planner never sizes one so) and its cash must be available.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal

from cryptoj.config import Config
from cryptoj.contract import Context
from cryptoj.execution.splitting import beyond_depth
from cryptoj.journal import Journal, order_row
from cryptoj.models.market import Quote
from cryptoj.models.orders import CancelOrder, OrderType, Side, SubmitOrder
from cryptoj.models.risk import RiskLevel, RiskParameters
from cryptoj.models.signals import TargetWeight
from cryptoj.models.system import Tick
from cryptoj.portfolio.ledger import Ledger
from cryptoj.portfolio.planning import leg_reason
from cryptoj.portfolio.rebalance import LegPlan, buy_cap, buy_cost
from cryptoj.portfolio.transaction import Effects, Leg, Transaction, TxnState

#: Tick kind prefix of a leg's deadline timer, followed by the leg's client order id.
LEG_TIMEOUT = "leg_timeout:"

Submit = Callable[[SubmitOrder, Context], None]


class TxnDesk:
    """Open transactions (never two on one product) and compensations owed."""

    def __init__(
        self,
        cfg: Config,
        ledger: Ledger,
        journal: Journal,
        quotes: Mapping[str, Quote],
        submit: Submit,
        execution: str,
    ) -> None:
        self.cfg = cfg
        self.ledger = ledger
        self.journal = journal
        self.quotes = quotes  # the actor's latest quotes (read only)
        self.submit = submit
        self.execution = execution
        #: product → timestamp of the quote its last leg was sent on: one leg per product per
        #: quote, so a book is never walked twice and a rejection is not retried on the same book
        self.sent_on: dict[str, int] = {}
        self.fee = Decimal(repr(cfg.paper.taker_fee))
        self.txns: list[Transaction] = []
        self.owed: list[tuple[str, list[tuple[str, Decimal]]]] = []  # (parent, [(product, qty)])
        self.limit_breaches = 0
        self.started = 0
        self.replan_due = False  # a transaction was superseded: plan again under the new version

    # -- views ----------------------------------------------------------------------------

    def leg(self, client_order_id: str) -> tuple[Transaction | None, Leg | None]:
        """The open transaction and leg of this order id, if it is a leg."""
        for txn in self.txns:
            leg = txn.leg(client_order_id)
            if leg is not None:
                return txn, leg
        return None, None

    def unsent_ids(self) -> set[str]:
        """Client order ids of planned legs (reserved, never sent: execution does not know
        them)."""
        return {g.client_order_id for t in self.txns for g in t.unsent()}

    def products(self) -> set[str]:
        """Products with a leg that is not closed yet."""
        return {p for t in self.txns for p in t.products}

    def fresh(self, product: str) -> bool:
        """True when ``product``'s latest quote is newer than the one its last leg used."""
        q = self.quotes.get(product)
        return q is not None and q.ts > self.sent_on.get(product, q.ts - 1)

    # -- lifecycle ------------------------------------------------------------------------

    def recover(self, ctx: Context) -> None:
        """On start: roll back every transaction the journal shows open."""
        for row in self.journal.txns(open_only=True):
            txn = Transaction.from_rows(row, self.journal.txn_legs(row["txn_id"]))
            self.txns.append(txn)
            self.apply(txn, txn.recover(), ctx)

    def begin(
        self,
        plans: list[LegPlan],
        params: RiskParameters,
        quotes: Mapping[str, Quote],
        targets: Mapping[str, TargetWeight],
        ctx: Context,
        *,
        kind: str = "rebalance",
        parent: str | None = None,
    ) -> Transaction | None:
        """Check and reserve every leg up front, journal the plan, then start it."""
        marks = {p: q.mid for p, q in quotes.items()}
        equity = self.ledger.equity(marks)
        limit = Decimal(repr(self.cfg.risk.position_size_limit)) * equity * Decimal("1.0001")
        txn_id = ctx.new_id("txn")
        kept: list[tuple[LegPlan, Leg]] = []
        for plan in plans:
            cash = Decimal(0)
            if plan.side == Side.BUY:
                if (self.ledger.position(plan.product) + plan.quantity) * marks[
                    plan.product
                ] > limit:
                    self.limit_breaches += 1  # a planner bug: never decided, and counted
                    continue
                cash = buy_cost(plan.quantity, plan.price(), self.fee)
            coid = ctx.new_id("cj")
            res = self.ledger.reserve(coid, plan.product, plan.side, plan.quantity, cash)
            if isinstance(res, str):
                continue
            leg = Leg(
                client_order_id=coid,
                seq=len(kept) + 1,
                product=plan.product,
                side=plan.side,
                quantity=plan.quantity,
                order_type=plan.order_type,
                limit_price=plan.limit_price,
                reserved_cash=res.cash,
                reserved_base=res.base,
                visible=plan.visible,
                beyond_depth=plan.beyond_depth,
            )
            kept.append((plan, leg))
        if not kept:
            return None
        for plan, leg in kept:
            target = targets.get(plan.product) if kind == "rebalance" else None
            leg.reason = leg_reason(plan, target, params, txn_id, leg.seq, len(kept))
        txn = Transaction(
            txn_id=txn_id,
            version=params.version,
            legs=[leg for _, leg in kept],
            created_ns=ctx.now(),
            policy=self.cfg.portfolio.rollback,
            kind=kind,
            parent=parent,
        )
        detail = {
            "kind": kind,
            "parent": parent,
            "version": params.version,
            "level": str(params.level),
            "equity": str(equity),
            "targets": {p.product: round(p.target_weight, 6) for p, _ in kept},
            # the market data each leg was sized on (cryptoj.portfolio.data_age audits it)
            "quote_ts": {p.product: quotes[p.product].ts for p, _ in kept},
            "legs": [
                [g.client_order_id, g.product, str(g.side), str(g.quantity), str(g.order_type)]
                for g in txn.legs
            ],
        }
        self.txns.append(txn)
        self.started += 1
        planned = ("planned", str(txn.state), json.dumps(detail, sort_keys=True))
        self.apply(txn, txn.start(), ctx, earlier=[planned])  # one commit for plan and start
        return txn

    # -- events ---------------------------------------------------------------------------

    def on_close(self, client_order_id: str, status: str, filled: Decimal, ctx: Context) -> bool:
        """A leg closed: journal it with its intent's close. False when it is not a sent leg
        (a planned leg's id is ignored: execution never had it)."""
        txn, leg = self.leg(client_order_id)
        if txn is None or leg is None:
            return False
        self.apply(
            txn,
            txn.on_close(client_order_id, status, filled),
            ctx,
            closed=(client_order_id, status),
        )
        return True

    def on_params(self, params: RiskParameters, ctx: Context) -> None:
        """A new risk snapshot: supersede, or roll back what it no longer allows."""
        for txn in list(self.txns):
            if params.level == RiskLevel.HALTED:
                self.apply(txn, txn.abort(f"risk v{params.version} HALTED"), ctx)
            else:
                self.apply(txn, txn.supersede(params.version), ctx)
        if not params.entries_allowed or params.level.rank >= RiskLevel.REDUCING.rank:
            cause = f"risk v{params.version} {params.level}: no entries"
            self.abort_buys(self.products(), cause, ctx)

    def on_timeout(self, client_order_id: str, ctx: Context) -> None:
        """A leg's deadline timer fired."""
        for txn in list(self.txns):
            self.apply(txn, txn.on_timeout(client_order_id), ctx)

    def abort(self, cause: str, ctx: Context, products: set[str] | None = None) -> None:
        """Roll back every open transaction (only those trading one of ``products``)."""
        for txn in list(self.txns):
            if products is None or txn.products & products:
                self.apply(txn, txn.abort(cause), ctx)

    def abort_buys(self, products: set[str], cause: str, ctx: Context) -> None:
        """Roll back a transaction that still has a buy of one of ``products`` open."""
        for txn in list(self.txns):
            if any(
                g.side == Side.BUY and g.product in products and not g.state.terminal
                for g in txn.legs
            ):
                self.apply(txn, txn.abort(cause), ctx)

    # -- carrying out effects -------------------------------------------------------------

    def apply(
        self,
        txn: Transaction,
        fx: Effects,
        ctx: Context,
        *,
        closed: tuple[str, str] | None = None,
        earlier: Sequence[tuple[str, str, str]] = (),
    ) -> None:
        """Journal first, then release, cancel and send (module docstring). ``earlier``:
        steps taken before ``fx``'s, each with the state it left (journalled in the same
        SQLite transaction, ahead of them)."""
        if not fx.steps and closed is None and not earlier:
            return
        now = ctx.now()
        state = str(txn.state)
        self.journal.record_txn(
            txn.row(now),
            [g.row(txn.txn_id, now) for g in txn.legs],
            [*earlier, *((step, state, detail) for step, detail in fx.steps)],
            ts=now,
            intents=[_intent(g, g.reserved_cash, g.reserved_base, now) for g in fx.send],
            closed=closed,
        )
        for g in fx.release:
            self.ledger.release(g.client_order_id)
        for g in fx.cancel:
            ctx.send(self.execution, CancelOrder(ts=now, client_order_id=g.client_order_id))
        timeout = int(self.cfg.portfolio.leg_timeout_s * 1e9)
        for g in fx.send:
            market_buy = g.side == Side.BUY and g.order_type == OrderType.MARKET
            order = SubmitOrder(
                ts=now,
                client_order_id=g.client_order_id,
                product=g.product,
                side=g.side,
                order_type=g.order_type,
                quantity=g.quantity,
                limit_price=g.limit_price,
                reason=g.reason,
                split=txn.kind != "compensation",  # undoing a failed buy goes whole, now
                max_price=buy_cap(g.reserved_cash, g.quantity, self.fee) if market_buy else None,
            )
            self.submit(order, ctx)
            ctx.schedule(timeout, Tick(kind=LEG_TIMEOUT + g.client_order_id))
            q = self.quotes.get(g.product)
            if q is not None:
                self.sent_on[g.product] = q.ts
        if fx.done:
            self.txns.remove(txn)
            self.replan_due = self.replan_due or txn.state == TxnState.SUPERSEDED
            if fx.compensate:
                self.owed.append((txn.txn_id, fx.compensate))

    def send_sell(
        self, product: str, quantity: Decimal, reason: str, ts: int, ctx: Context
    ) -> str | None:
        """Reserve, journal and send one market sell outside a transaction (an unwind or
        stop-loss slice, sized against the depth already: never split); its id, or None when
        the reservation is refused."""
        coid = ctx.new_id("cj")
        res = self.ledger.reserve(coid, product, Side.SELL, quantity, Decimal(0))
        if isinstance(res, str):
            return None
        order = SubmitOrder(
            ts=ts,
            client_order_id=coid,
            product=product,
            side=Side.SELL,
            order_type=OrderType.MARKET,
            quantity=quantity,
            reason=reason,
            split=False,
        )
        self.journal.record_intent(_intent(order, res.cash, res.base, ts))
        self.submit(order, ctx)
        return coid

    def compensate(
        self, params: RiskParameters | None, blocked: Callable[[str], bool], ctx: Context
    ) -> None:
        """Start the compensations owed (sells undoing rolled-back buys, :meth:`compensation_legs`)
        under ``params``; a product that cannot be compensated now is journalled as skipped
        (the next plan realigns it)."""
        while self.owed:
            parent, items = self.owed.pop(0)
            plans, skipped = self.compensation_legs(items, self.quotes, blocked)
            if skipped or params is None:
                self.journal.record_event(
                    ctx.now(),
                    "portfolio",
                    "compensation_skipped",
                    f"{parent}: {', '.join(skipped or [p for p, _ in items])} (no current quote, "
                    "risk view or position; halted, unwinding or trading): the next plan "
                    "realigns",
                )
            if plans and params is not None:
                self.begin(plans, params, self.quotes, {}, ctx, kind="compensation", parent=parent)

    def compensation_legs(
        self,
        items: list[tuple[str, Decimal]],
        quotes: Mapping[str, Quote],
        blocked: Callable[[str], bool],
    ) -> tuple[list[LegPlan], list[str]]:
        """Sells that undo a rolled-back transaction's buys, and the products that cannot be
        compensated now (no quote or position left, or ``blocked``)."""
        plans: list[LegPlan] = []
        skipped: list[str] = []
        share = Decimal(repr(self.cfg.execution.max_depth_share))
        for product, quantity in items:
            q = quotes.get(product)
            qty = min(quantity, self.ledger.available(product))
            if q is None or qty <= 0 or blocked(product):
                skipped.append(product)
                continue
            plans.append(
                LegPlan(
                    product=product,
                    side=Side.SELL,
                    quantity=qty,
                    order_type=OrderType.MARKET,
                    limit_price=None,
                    visible=q.bid_size,
                    beyond_depth=beyond_depth(qty, q.bid_size, share),
                    depth_capped=False,
                    target_weight=0.0,
                    current_weight=0.0,
                    touch=q.bid,
                )
            )
        return plans, skipped


def _intent(
    g: Leg | SubmitOrder, reserved_cash: Decimal, reserved_base: Decimal, ts: int
) -> dict[str, object]:
    """The ``intents`` row of an order being sent (a leg, or a sell outside a transaction)."""
    return {**order_row(g, ts), "reserved_cash": reserved_cash, "reserved_base": reserved_base}
