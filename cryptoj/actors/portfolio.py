"""PortfolioActor: the single writer of cash, positions and reservations.

Every decision that depends on portfolio state is made here, in the handler that reserves the
funds (check-and-reserve), never on a copy elsewhere. Journal first, then apply: an intent is
journalled before its order is sent, a fill with its position change before the books change.

Recovery: on start the books are rebuilt from the journal (fills in order, open intents as
reservations), then every open intent is reconciled with the ExecutionActor, which re-sends the
venue's fills (deduplicated here by fill id) and reports orders it never received (their
reservations are released). The same reconciliation runs on a timer while intents are open, so a
message lost in a crashed mailbox cannot leak a reservation.

Rebalancing is transactional (:mod:`cryptoj.portfolio.transaction`): a quote or a signal (or
the end of a superseded transaction) makes a plan (:mod:`cryptoj.portfolio.planning`: optimiser
targets, cost bands, legs sized against the visible depth, buys within the day's turnover
budget: :class:`~cryptoj.portfolio.costs.TurnoverBook`, rebuilt from the journal's fills on
start) under the current RiskParameters version, over the products that have no order in
flight, so two open transactions never share a product. Every leg's funds are reserved and the
plan journalled before anything is sent; sells go first, buys when every sell closed. A leg
that fails, times out (``portfolio.leg_timeout_s``) or is overtaken (halt, unwind, stop loss, a
signal that drops to 0 under a buy) rolls its transaction back; a newer risk version while
legs are unsent supersedes it and the actor plans again. Live, the first RiskParameters after a
start plan too: the targets already held are decided on the quotes already in (if still
current). On start, open transactions are rolled back
(:meth:`~cryptoj.portfolio.transaction.Transaction.recover`); the I/O of transactions (and of
unwind and stop-loss sells) is in :class:`~cryptoj.portfolio.desk.TxnDesk`.

Emergency programme (:mod:`cryptoj.unwind`): the ShutdownActor decides and sends an
:class:`~cryptoj.models.unwind.UnwindPlan`; this actor executes it. While a plan stops new
entries, buys are refused. From REDUCE up the plan governs exposure: its queue sells the
queued products slice by slice (each slice a market order reserved, journalled and sent like
any other, one per product at a time, one per fresh quote), reporting every slice (fill,
slippage against the arrival mid, remaining exposure) to the ShutdownActor and the journal
(``unwind_slice`` events); the rebalancer only reduces the other products, toward the
strategy's targets (the plan's targets replace the risk level's size multiplier). Stop-loss
exits go through the same queue, ahead of the plan. Plan slices may sell at risk level
HALTED (the programme's flatten supersedes "no new orders"); nothing trades after a
``Halt``. A restarted instance asks the ShutdownActor for the plan in force
(``PlanRequest``). At most once a second of clock time it sends the ShutdownActor a
``MonitorReport`` (equity, positions, risk figures, order errors and latency).

Marks: a market instant's quotes arrive together (``QuoteBatch`` in replay; one ``Quote`` at a
time live) and are all applied before anything is evaluated, so the snapshot, the monitor
report, the journal's equity rows and every plan value each product at its latest quote as of
the same instant (:class:`~cryptoj.portfolio.valuation.Valuation` keeps them until the next
quotes or fill). A restarted instance sends and journals no equity until every holding has a
quote again.
"""

from __future__ import annotations

from decimal import Decimal

from cryptoj.config import Config
from cryptoj.contract import Actor, Context
from cryptoj.journal import Journal
from cryptoj.models.market import Bar, FeedStatus, Quote, QuoteBatch
from cryptoj.models.orders import (
    CancelOrder,
    Fill,
    OrderClosed,
    OrderRejected,
    OrderStatusReport,
    OrderStatusRequest,
    SubmitOrder,
)
from cryptoj.models.portfolio import PortfolioSnapshot
from cryptoj.models.risk import RiskLevel, RiskParameters, StopLossTriggered
from cryptoj.models.signals import TargetWeight
from cryptoj.models.system import Halt, ReconcileNow, Tick
from cryptoj.models.unwind import PlanRequest, UnwindComplete, UnwindPlan
from cryptoj.portfolio.books import rebuild_ledger
from cryptoj.portfolio.costs import TurnoverBook
from cryptoj.portfolio.desk import LEG_TIMEOUT, TxnDesk
from cryptoj.portfolio.ledger import Ledger
from cryptoj.portfolio.planning import Planner, all_idle, sizing, usable_quotes
from cryptoj.portfolio.stops import StopLoss
from cryptoj.portfolio.transaction import LegState
from cryptoj.portfolio.valuation import OrderOutcomes, Valuation
from cryptoj.unwind.book import UnwindBook
from cryptoj.unwind.report import plan_event, slice_event

__all__ = ["PortfolioActor", "rebuild_ledger"]

RECONCILE = Tick(kind="reconcile")
UNWIND_DEADLINE = Tick(kind="unwind_deadline")
#: The close status of an intent the ExecutionActor has no record of: its SubmitOrder was lost
#: (to a kill or an execution restart) before execution journalled it, so, journal first, it
#: was certainly never sent; its reservation is released and the next plan decides again.
NOT_SENT = "NOT_SENT"
#: Order outcomes the error-rate monitor counts as errors.
ERROR_STATUSES = frozenset({"REJECTED", NOT_SENT})
#: Snapshots go to the RiskActor after every fill and otherwise at most this often (clock ns).
SNAPSHOT_EVERY_NS = 1_000_000_000
#: The equity is journalled at most once per this much market time (the last quote's timestamp
#: in each period): enough for the drawdown, the daily loss and the report, and one SQLite
#: write per second instead of one per tick on a live feed.
EQUITY_EVERY_NS = 1_000_000_000


class PortfolioActor(Actor):
    """Owns the ledger; turns target weights into rebalance transactions under the current
    risk parameters."""

    kind = "portfolio"

    def __init__(
        self,
        cfg: Config,
        journal_path: str,
        *,
        execution: str = "execution",
        risk: str = "risk",
        shutdown: str = "shutdown",
        reconcile_every_ns: int = 60 * 10**9,
        fills_to: str | None = None,
    ) -> None:
        """``fills_to``: an actor that gets every new fill (the strategies' own fills)."""
        self.cfg = cfg
        self.fills_to = fills_to
        self.journal_path = journal_path
        self.execution = execution
        self.risk = risk
        self.shutdown = shutdown
        self.reconcile_every_ns = reconcile_every_ns
        self.ledger = Ledger(Decimal(0))
        #: the books valued at the latest quotes (``quotes`` is its dict of latest quotes)
        self.valuation = Valuation(self.ledger)
        self.quotes = self.valuation.quotes
        self.targets: dict[str, TargetWeight] = {}
        self.params: RiskParameters | None = None
        self.stop_loss = StopLoss()
        self.stopped_out: set[str] = set()
        self.stale: set[str] = set()  # products whose feed is stale: no exposure-increasing orders
        #: product → timestamp of the quote it had when its feed went stale: that quote is from
        #: before the outage and is never traded on, even after the recovery (see ``_usable``)
        self.outdated: dict[str, int] = {}
        self.halted = False
        self.orders_sent = 0
        self.desk: TxnDesk | None = None
        self.planner = Planner(cfg)
        self._timer_armed = False
        self._last_equity_ts = -1
        self._last_snapshot_ns = -SNAPSHOT_EVERY_NS
        self.journal: Journal | None = None
        self.turnover = TurnoverBook()  # the day's traded notional (rebuilt from the journal)
        self.unwind = UnwindBook.from_config(cfg)
        self.outcomes = OrderOutcomes()  # for the MonitorReport's error rate and latency
        self._live = cfg.feed.source == "coinbase"  # the clock ages quotes (see _usable)
        self._max_age_ns = int(cfg.portfolio.quote_max_age_s * 1e9)

    # -- lifecycle ------------------------------------------------------------------------

    def on_start(self, ctx: Context) -> None:
        """Rebuild the books from the journal, roll back open transactions, reconcile."""
        journal = self.journal = Journal(self.journal_path)
        start = journal.get_meta("starting_cash")
        if start is None:
            raise RuntimeError(f"journal {self.journal_path} has no starting_cash")
        self.ledger = rebuild_ledger(journal, Decimal(start))
        self.valuation.books_moved(self.ledger)
        self.turnover = TurnoverBook.rebuild(journal.fills())
        self.desk = TxnDesk(
            self.cfg, self.ledger, journal, self.quotes, self._submit, self.execution
        )
        self.desk.recover(ctx)
        if self.ledger.reservations:
            self._request_status(ctx)
        ctx.send(self.shutdown, PlanRequest(ts=ctx.now()))

    def on_stop(self, ctx: Context) -> None:
        """Close the journal."""
        if self.journal is not None:
            self.journal.close()

    # -- inputs ---------------------------------------------------------------------------

    def _handle_quote(self, q: Quote, ctx: Context) -> None:
        self._on_quotes((q,), ctx)

    def _handle_quote_batch(self, batch: QuoteBatch, ctx: Context) -> None:
        self._on_quotes(batch.quotes, ctx)

    def _on_quotes(self, quotes: tuple[Quote, ...], ctx: Context) -> None:
        """Apply every quote of one market instant, then evaluate on the complete marks: stop
        losses, unwind slices, the rebalance of the quoted products, the snapshot for the
        RiskActor and the MonitorReport. Nothing is valued while only some of an instant's
        quotes are in (the feed sends a timestamp's quotes as one ``QuoteBatch``)."""
        ts = quotes[-1].ts
        if ts // EQUITY_EVERY_NS != self._last_equity_ts // EQUITY_EVERY_NS:
            self._record_equity()
        if ts > self._last_equity_ts:
            self._last_equity_ts = ts
        self.valuation.quotes_moved()
        books, outdated, unwind = self.quotes, self.outdated, self.unwind
        for q in quotes:
            product = q.product
            books[product] = q
            if outdated and q.ts > outdated.get(product, q.ts):
                del outdated[product]  # data from after the outage
            unwind.on_quote(q)
        # the quoted products, each once, in the order of their first quote
        products = (
            (quotes[0].product,) if len(quotes) == 1 else dict.fromkeys(q.product for q in quotes)
        )
        for product in products:
            self._check_stop_loss(product, ctx)
        if len(unwind.queue):  # (a stop loss above may have queued one)
            for product in products:
                self._unwind_step(product, ctx)
        desk = self.desk
        if desk is None or desk.owed or desk.replan_due:
            self._after_txn(ctx, trigger=True, only=frozenset(products))
        else:
            self._rebalance(ctx, frozenset(products))  # all _after_txn does with nothing owed
        if (
            ctx.now() - self._last_snapshot_ns >= SNAPSHOT_EVERY_NS
            and self.valuation.fully_marked()
        ):
            self._send_snapshot(ts, ctx)
            self._send_monitor(ts, ctx)

    def _handle_feed_status(self, msg: FeedStatus, ctx: Context) -> None:
        if msg.state in ("stale", "degraded"):
            self.stale.update(msg.products)
            for p in msg.products:
                if p in self.quotes:
                    self.outdated[p] = max(self.outdated.get(p, 0), self.quotes[p].ts)
            self._desk().abort_buys(set(msg.products), f"feed {msg.state}", ctx)
        else:
            self.stale.difference_update(msg.products)
        self._after_txn(ctx)

    def _handle_bar(self, bar: Bar, ctx: Context) -> None:
        self.unwind.on_bar(bar)

    def _send_snapshot(self, ts: int, ctx: Context) -> None:
        if not self.valuation.fully_marked():
            return  # just (re)started: the first quote batch values every holding
        self._last_snapshot_ns = ctx.now()
        ctx.send(self.risk, self.snapshot(ts))

    def _handle_target_weight(self, msg: TargetWeight, ctx: Context) -> None:
        self.targets[msg.product] = msg
        if msg.weight == 0:
            self.stopped_out.discard(msg.product)  # the stop re-arms once the signal resets
            self._desk().abort_buys({msg.product}, f"signal for {msg.product} dropped to 0", ctx)
        self._after_txn(ctx, trigger=True)

    def _handle_risk_parameters(self, msg: RiskParameters, ctx: Context) -> None:
        first = self.params is None
        self.params = msg
        self._desk().on_params(msg, ctx)
        # live: the first parameters (a start) decide the targets already here on the quotes
        # already in (if still current: _usable), not at the next quote
        self._after_txn(ctx, trigger=first and self._live)

    def _handle_halt(self, msg: Halt, ctx: Context) -> None:
        self.halted = True
        self._desk().abort(f"halt: {msg.reason}", ctx)

    def _handle_unwind_plan(self, plan: UnwindPlan, ctx: Context) -> None:
        holdings = {p: h.quantity for p, h in self.ledger.holdings.items()}
        queued = self.unwind.apply_plan(plan, holdings, self.valuation.marks(), ctx.now())
        event = plan_event(plan, queued)
        self._journal().record_event(ctx.now(), "portfolio", "unwind_plan", event)
        if not plan.entries_allowed or plan.reduce_only:
            desk = self._desk()
            desk.abort_buys(desk.products(), f"unwind {plan.plan_id}: no entries", ctx)
        self._yield_to_unwind(ctx)
        if plan.deadline_ns is not None and queued:
            ctx.schedule(plan.deadline_ns - ctx.now(), UNWIND_DEADLINE)
        self._step_all(ctx)
        self._plan_done(ctx)
        self._after_txn(ctx)

    def _step_all(self, ctx: Context) -> None:
        for item in self.unwind.queue.ordered():
            self._unwind_step(item.product, ctx)

    # -- order outcomes -------------------------------------------------------------------

    def _handle_fill(self, fill: Fill, ctx: Context) -> None:
        holding, cash = self.ledger.after_fill(fill)
        if not self._journal().record_fill(fill, holding.quantity, holding.average_price, cash):
            return  # a re-sent fill (reconciliation); already applied
        over = self.ledger.overdraft(fill)
        self.ledger.apply_fill(fill)
        self.valuation.books_moved()
        self.turnover.add(fill)
        if over > 0:
            self._journal().record_event(
                ctx.now(),
                "portfolio",
                "overdraft",
                f"{fill.client_order_id}: fill {fill.fill_id} at {fill.price} cost {over} more "
                f"than its reservation; available cash now {self.ledger.available_cash()}",
            )
        if self.unwind.is_slice(fill.client_order_id):
            self.unwind.on_fill(fill.client_order_id, fill.quantity, fill.price, fill.fee)
        if self.fills_to is not None:
            ctx.send(self.fills_to, fill)
        self._send_snapshot(fill.ts, ctx)

    def _handle_order_closed(self, msg: OrderClosed, ctx: Context) -> None:
        self._close(msg.client_order_id, str(msg.status), msg.ts, ctx)

    def _handle_order_rejected(self, msg: OrderRejected, ctx: Context) -> None:
        self._close(msg.client_order_id, "REJECTED", msg.ts, ctx)

    def _handle_order_status_report(self, msg: OrderStatusReport, ctx: Context) -> None:
        if not msg.known:
            self._close(msg.client_order_id, NOT_SENT, msg.ts, ctx)
        elif msg.status is not None and msg.status.terminal:
            self._close(msg.client_order_id, str(msg.status), msg.ts, ctx)
        else:  # still working: a leg we asked to cancel is asked again (the first request may
            # have reached no ExecutionActor while it restarted; a split order works for minutes)
            _, leg = self._desk().leg(msg.client_order_id)
            if leg is not None and leg.cancel_requested:
                ctx.send(
                    self.execution, CancelOrder(ts=ctx.now(), client_order_id=leg.client_order_id)
                )

    def _handle_reconcile_now(self, msg: ReconcileNow, ctx: Context) -> None:
        self._request_status(ctx)

    def _handle_tick(self, msg: Tick, ctx: Context) -> None:
        if msg.kind == UNWIND_DEADLINE.kind:
            self._step_all(ctx)
            return
        if msg.kind.startswith(LEG_TIMEOUT):
            self._desk().on_timeout(msg.kind[len(LEG_TIMEOUT) :], ctx)
            self._after_txn(ctx)
            return
        self._timer_armed = False
        if self.ledger.reservations:
            self._request_status(ctx)

    def _close(self, client_order_id: str, status: str, ts: int, ctx: Context) -> None:
        res = self.ledger.reservations.get(client_order_id)
        if res is None:
            return
        desk = self._desk()
        _, leg = desk.leg(client_order_id)
        if leg is not None and leg.state == LegState.PLANNED:
            return  # never sent: a stale report about an id execution never had
        if not desk.on_close(client_order_id, status, res.filled, ctx):
            self._journal().close_intent(client_order_id, status, ts)
        self.ledger.release(client_order_id)
        self.outcomes.close(client_order_id, status in ERROR_STATUSES, ctx.now())
        if self.unwind.is_slice(client_order_id):
            self._slice_closed(client_order_id, res.product, status, ctx)
        elif res.product in self.unwind.queue:
            self._unwind_step(res.product, ctx)  # freed: the unwind need not wait for a book
        self._after_txn(ctx)

    def _slice_closed(self, client_order_id: str, product: str, status: str, ctx: Context) -> None:
        """Report an unwind slice's close and move the queue on."""
        q = self.quotes.get(product)
        holding = self.ledger.position(product)
        report = self.unwind.on_close(
            client_order_id, holding, q.mid if q else Decimal(0), status, ctx.now()
        )
        if report is not None:
            self._journal().record_event(
                ctx.now(), "portfolio", "unwind_slice", slice_event(report)
            )
            ctx.send(self.shutdown, report)
        if self.unwind.settle(product, holding):
            self._plan_done(ctx)
            self._step_all(ctx)  # the next product in the queue may start on its own book

    def _plan_done(self, ctx: Context) -> None:
        plan_id = self.unwind.completed_plan()
        if plan_id is not None:
            slices = self.unwind.plan_slices.get(plan_id, 0)
            self._journal().record_event(ctx.now(), "portfolio", "unwind_done", plan_id)
            ctx.send(self.shutdown, UnwindComplete(ts=ctx.now(), plan_id=plan_id, slices=slices))

    def _request_status(self, ctx: Context) -> None:
        ids = tuple(sorted(set(self.ledger.reservations) - self._desk().unsent_ids()))
        if ids:
            ctx.send(self.execution, OrderStatusRequest(ts=ctx.now(), client_order_ids=ids))
        if not self._timer_armed:
            self._timer_armed = True
            ctx.schedule(self.reconcile_every_ns, RECONCILE)

    # -- decisions: stop loss and the emergency programme ---------------------------------

    def _check_stop_loss(self, product: str, ctx: Context) -> None:
        if product in self.stopped_out:
            return
        q = self.quotes[product]
        note = self.stop_loss.hit(self.ledger.holdings.get(product), q, self.params)
        if note is not None:
            self.stopped_out.add(product)
            ctx.send(self.risk, StopLossTriggered(ts=q.ts, product=product))
            self.unwind.push_stop_loss(product, ctx.now(), q.mid).note = note
            self._yield_to_unwind(ctx)

    def _unwind_step(self, product: str, ctx: Context) -> None:
        """Send the next slice of ``product``'s unwind if one is due (UnwindBook.due)."""
        q = self.quotes.get(product)
        if q is None or product not in self.unwind.queue or self.halted:
            return
        if self.ledger.has_open_order(product):
            return  # one order in flight per product, slices included
        holding = self.ledger.position(product)
        if self.unwind.settle(product, holding):
            self._plan_done(ctx)
            self._step_all(ctx)
            return
        volatile = self.params is not None and (product, "VOLATILE") in self.params.regimes
        due = self.unwind.due(product, holding, q, ctx.now(), volatile=volatile)
        if due is None:
            return
        item, decision = due
        if item.urgent and self.params is not None and self.params.level == RiskLevel.HALTED:
            return  # stop-loss exits obey HALTED like every order the portfolio decides
        if product in self.stale and not decision.at_market:
            return  # no slice is sized on a stale book; the deadline's market sweep still goes
        what = item.note or f"unwind ({item.trigger}; {item.plan_id})"
        reason = f"{what}: slice {item.slices + 1}, {decision.why}"
        coid = self._desk().send_sell(product, decision.quantity, reason, q.ts, ctx)
        if coid is not None:
            self.unwind.sent(item, coid, decision, q, ctx.now())

    def _yield_to_unwind(self, ctx: Context) -> None:
        """Roll back a transaction trading a product the unwind queue now owns."""
        desk = self._desk()
        owned = {p for p in desk.products() if self.unwind.owns(p)}
        if owned:
            desk.abort(f"unwind takes over {', '.join(sorted(owned))}", ctx, owned)

    def _submit(self, order: SubmitOrder, ctx: Context) -> None:
        self.orders_sent += 1
        ctx.send(self.execution, order)
        self.outcomes.sent(order.client_order_id, ctx.now())
        if not self._timer_armed:
            self._timer_armed = True
            ctx.schedule(self.reconcile_every_ns, RECONCILE)

    # -- rebalance transactions -----------------------------------------------------------

    def _rebalance(self, ctx: Context, only: frozenset[str] | None = None) -> None:
        """Plan and start a transaction over the products not already trading (module
        docstring); ``only``: a quote batch re-evaluates its own products (the targets do not
        move with prices, and every product's drift is checked on its own quotes)."""
        params, desk = self.params, self.desk
        if params is None or self.halted or params.level == RiskLevel.HALTED:
            return
        assert desk is not None, "PortfolioActor used before on_start"
        targets = self.targets
        if not targets or not self.quotes:
            return
        busy = self.ledger.busy_products()
        if only is not None and (only & targets.keys()) <= busy:
            return  # every quoted product is trading or has no target
        usable = self._usable(ctx)
        owned = self.unwind.owns
        tradable = {
            p
            for p in (usable if only is None else only & usable)
            if p in targets and p not in busy and not owned(p) and desk.fresh(p)
        }
        if not tradable or all_idle(tradable, self.targets, self.stopped_out, self.ledger.holdings):
            return  # no leg is possible (planning.all_idle): nothing to allocate or plan
        reduce_all, multiplier = sizing(params, self.unwind)
        inputs = self.planner.inputs(
            self.ledger,
            self.quotes,
            targets,
            params,
            tradable,
            equity=self.valuation.equity(),
            newest=self.valuation.newest(),
            reduce_only=set(targets) if reduce_all else set(self.stale),
            stopped_out=self.stopped_out,
            multiplier=multiplier,
            turnover=self.turnover,
        )
        legs = self.planner.legs(inputs)
        if legs:
            desk.begin(legs, params, self.quotes, self.targets, ctx)

    def _after_txn(
        self, ctx: Context, *, trigger: bool = False, only: frozenset[str] | None = None
    ) -> None:
        """Compensate what an ended transaction's policy asks for, then plan when this message
        is a trigger (a signal; a quote for its own product) or a transaction was superseded
        (every product). A product trades
        at most once per quote (``TxnDesk.fresh``): a rejection is not retried on the same
        book, and a book is not walked twice."""
        desk = self.desk
        assert desk is not None, "PortfolioActor used before on_start"
        if desk.owed:
            usable = self._usable(ctx)  # quotes and clock fixed meanwhile
            desk.compensate(
                self.params,
                lambda p: (
                    self.halted
                    or self.unwind.owns(p)
                    or self.ledger.has_open_order(p)
                    or p not in usable
                ),
                ctx,
            )
        if desk.replan_due:
            desk.replan_due = False
            self._rebalance(ctx)
        elif trigger:
            self._rebalance(ctx, only)

    # -- market data age ------------------------------------------------------------------

    def _usable(self, ctx: Context) -> set[str]:
        """Products whose quote is current enough to decide an order on: at most
        ``portfolio.quote_max_age_s`` behind the newest quote and, on a live feed, behind this
        actor's clock (a frozen feed ages every quote), and not a quote from before a stale
        period (``outdated``: after a resync only the new book's quotes count). In a replay
        the data's own time is the clock (a bar's quote is as old as its bar), so the clock
        rule applies live only. ``cryptoj.portfolio.data_age`` audits the journalled decisions
        against the same age."""
        now = ctx.now() if self._live else None
        usable = usable_quotes(self.quotes, self._max_age_ns, now, self.valuation.newest())
        return usable - self.outdated.keys() if self.outdated else usable

    # -- views ----------------------------------------------------------------------------

    def equity(self) -> Decimal:
        """Cash plus positions at the latest mids (kept until quotes or fills move it)."""
        return self.valuation.equity()

    def snapshot(self, ts: int) -> PortfolioSnapshot:
        """An immutable view of the books."""
        return self.valuation.snapshot(ts)

    def _send_monitor(self, ts: int, ctx: Context) -> None:
        """The MonitorReport for the ShutdownActor (module docstring)."""
        report = self.valuation.monitor_report(ts, self.params, self.outcomes, ctx.now())
        ctx.send(self.shutdown, report)

    def _record_equity(self) -> None:
        """Journal the equity as of the last quote's timestamp (before the next quote moves
        it): one row per :data:`EQUITY_EVERY_NS` of market time."""
        if self.quotes and self._last_equity_ts >= 0 and self.valuation.fully_marked():
            self._journal().record_equity(self._last_equity_ts, self.equity(), self.ledger.cash)

    @property
    def limit_breaches(self) -> int:
        """Buys the planner sized above the position limit (a bug; never sent)."""
        return 0 if self.desk is None else self.desk.limit_breaches

    def _journal(self) -> Journal:
        assert self.journal is not None, "PortfolioActor used before on_start"
        return self.journal

    def _desk(self) -> TxnDesk:
        assert self.desk is not None, "PortfolioActor used before on_start"
        return self.desk
