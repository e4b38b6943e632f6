"""ExecutionActor: the order state machines between the portfolio and the venue.

Journal first: an order is journalled PENDING (under the ``client_order_id`` the portfolio
chose and journalled with its intent) before it is sent. Venue events (acceptances, fills,
closes) arrive from the venue's user channel and are forwarded to the portfolio. States never
regress (an OPEN after a fill is ignored). On start it reconciles every non-terminal journalled
order with the venue — the venue wins: fills it missed are re-sent (the portfolio deduplicates
by fill id), orders the venue never saw are rejected, so no order is lost or duplicated across
a restart.

With a venue whose answers can be lost (a :class:`~cryptoj.venues.base.ReconcilingVenue`, i.e.
Coinbase; the logic lives in the venue, this actor only drives it and journals):

* on start every open journalled order is registered with the venue together with the fills
  the journal already booked for it (the baseline beyond which fills are derived), then each
  PENDING one is resolved by ``client_order_id`` and a full reconciliation runs, both as
  queued venue work (*Liveness* below). Split parents rebuilt from the journal whose children
  are all settled there (terminal, every fill booked) move on at the first step, before any
  read; the others (their children's events still reach them) when the pass is over, when
  the other open orders are reported and a ``start_reconciled`` event says how long it took;
* a submit whose outcome stays unknown (:class:`~cryptoj.models.OrderOutcomeUnknown`) leaves the
  order PENDING with its reservation held, journals an ``outcome_pending`` event and looks it up
  again every ``venue.outcome_retry_ns`` until the venue finds it (accepted), refuses it, or
  reports it absent (rejected "never reached the venue"); it is never re-posted under a new id.
  The venue's notes are journalled after every message: ``outcome_unknown`` the first time an
  order's outcome is unknown (even when the submit itself settled it), ``outcome_resolved``
  when it is settled;
* a full reconciliation runs every ``venue.reconcile_interval_ns`` and whenever the venue asks
  (:class:`~cryptoj.models.ReconcileVenue`: its user channel reconnected or saw a gap); every
  difference is journalled as a ``reconcile`` event; an order the venue has and the journal
  knows but no longer tracks (e.g. rejected as absent too early) is adopted: the venue wins;
* an authentication failure is journalled, then re-raised: the actor crashes and supervision
  decides (restart, and past the intensity the emergency exit).

Liveness (a remote venue): lookups of PENDING orders and reconciliation passes never run as one
long call. They are queued as venue work (:class:`~cryptoj.execution.work.VenueWork`), and the
actor sends itself one ``execution.step`` message per piece, behind whatever is already in its
mailbox: one lookup, or one step of a pass (:meth:`ReconcilingVenue.reconcile` with
``max_calls=1``). The reads of a lookup (:meth:`ReconcilingVenue.lookup_later`) and of a pass
run on the venue's background thread with their own connection: a step applies what the last
read brought (here, on the actor's thread) and hands the next one over; the queue waits for the
venue's :class:`~cryptoj.models.VenueCallDone` meanwhile, while new orders and cancels are
handled as they arrive. Cancels are handed over the same way
(:meth:`ReconcilingVenue.cancel_later`: the cancel call and a lookup of each order, on a
background thread and connection of their own), and applied on the actor's thread when the
venue's ``VenueCallDone(call="cancel")`` arrives (:meth:`ReconcilingVenue.cancels_back`): the
states and fills they bring reach the actor as venue events, deduplicated by the venue's
trackers like the user channel's. So an order never waits for a read or a cancel; what still
runs on the actor's thread is the venue's creates (a submit, with its lookups when a create's
outcome is unknown; the re-send under the same id of an order this process still holds). One
pass runs at a time: an interval pass asked for meanwhile is dropped, any other (the venue's
``ReconcileVenue``) runs once it is over. An order the venue has and nobody tracks is adopted
(tracked at once, looked up next, before the rest of the queue).

Orders larger than ``execution.max_depth_share`` of the visible depth are split over time
(README "Order splitting"): the actor hands everything about split parents and their children
to a :class:`~cryptoj.execution.driver.SplitDriver`. A parent is never at the venue, so it is
left out of every venue loop above; its children are ordinary venue orders whose events and
reconciliation results go to the splitter instead of the portfolio, which sees only the parent.

The orderly stop (:class:`~cryptoj.models.DrainOrders` from the ShutdownActor): from then on
new orders are journalled and rejected ("the daemon is stopping"), split parents send no more
children, and with ``cancel`` every open order is cancelled; the actor then reports
:class:`~cryptoj.models.OrdersDrained` once no order it waits for is open (with ``cancel``
every venue order; without, only those whose outcome is unknown), so their fills are booked
before the process exits. A remote venue is asked about the remaining orders every
``venue.outcome_retry_ns`` meanwhile (its user channel may be slow or down). The ShutdownActor
bounds the wait (``shutdown.stop_wait_s``).

Timers carry a token of this actor incarnation, so a restart never doubles them.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from cryptoj.contract import Actor, Context
from cryptoj.execution.driver import SPLIT_TIMER, SplitDriver
from cryptoj.execution.records import journal_order, resendable_order
from cryptoj.execution.splitting import SplitPolicy
from cryptoj.execution.work import VenueWork, WorkItem
from cryptoj.journal import Journal
from cryptoj.models.base import Message
from cryptoj.models.market import FeedStatus
from cryptoj.models.orders import (
    CancelAllOrders,
    CancelOrder,
    Fill,
    OrderAccepted,
    OrderClosed,
    OrderOutcomeUnknown,
    OrderRejected,
    OrderStatus,
    OrderStatusReport,
    OrderStatusRequest,
    OrderType,
    ReconcileVenue,
    Side,
    SubmitOrder,
    VenueCallDone,
)
from cryptoj.models.system import DrainOrders, OrdersDrained, ReconcileNow, Tick
from cryptoj.venues.base import ExecutionVenue, ReconcilingVenue, Resolution, TrackedOrder

RECONCILE_TIMER = "execution.reconcile"
STEP_TIMER = "execution.step"
OUTCOME_TIMER = "execution.outcome"
DRAIN_TIMER = "execution.drain"
STOPPING = "the daemon is stopping: no new orders"


class ExecutionActor(Actor):
    """Sends orders to the venue and reports their outcome to the portfolio."""

    kind = "execution"

    def __init__(
        self,
        venue: ExecutionVenue,
        journal_path: str,
        *,
        portfolio: str = "portfolio",
        split: SplitPolicy | None = None,
    ) -> None:
        """``split``: the splitting policy (``execution`` config section); None splits nothing
        new (parents already in the journal are still finished)."""
        self.venue = venue
        self.journal_path = journal_path
        self.portfolio = portfolio
        self.journal: Journal | None = None
        self.remote: ReconcilingVenue | None = (
            venue if isinstance(venue, ReconcilingVenue) else None
        )
        self.split = SplitDriver(
            venue,
            split,
            portfolio=portfolio,
            send_child=self._send,
            track_fills=self.remote is not None,
        )
        self._token = ""
        self._outcome_armed = False
        self._drain: DrainOrders | None = None  # set once the orderly stop began
        self._drained = False
        self._drain_open = 0  # orders still open when the drain began
        self._work = VenueWork()  # a remote venue's lookups and passes (see *Liveness*)
        self._started_ns = 0
        self._orders_sent = 0

    def on_start(self, ctx: Context) -> None:
        """Open the journal, rebuild split parents, then reconcile non-terminal orders with the
        venue and move the split parents on (a remote venue: step by step, see *Liveness*)."""
        self.journal = Journal(self.journal_path)
        self._token = ctx.new_id("timers")
        self.split.start(self.journal, self._token)
        rows = self._open_rows()
        if self.remote is None:
            for row in rows:
                self._reconcile(row["client_order_id"], row["product"], ctx)
            self.split.resume(ctx)
            self._ready(ctx)
            return
        self._started_ns = ctx.now()
        for row in rows:
            self._track(row)
        self._work.then("resume")  # the restored split parents whose children are settled
        self._full_reconcile(ctx, "start", self._since_ns(rows))
        self._work.then("started")
        ctx.schedule(self.remote.reconcile_interval_ns, self._timer(RECONCILE_TIMER))
        self._journal_notes(ctx)
        self._queue_step(ctx)

    def _started(self, ctx: Context) -> None:
        """The start's reconciliation is over: report the open orders it did not settle by
        lookup, move the split parents on, ask the portfolio to reconcile."""
        assert self.remote is not None
        for row in self._open_rows():
            if row["status"] != OrderStatus.PENDING:  # PENDING ones are resolved step by step
                self._reconcile(row["client_order_id"], row["product"], ctx)
        self.split.resume(ctx)
        self._event(
            ctx,
            "start_reconciled",
            f"reconciled with the venue {(ctx.now() - self._started_ns) / 1e9:.2f}s after the "
            f"start; {self._orders_sent} orders sent meanwhile",
        )
        self._ready(ctx)

    def _ready(self, ctx: Context) -> None:
        """Ask the portfolio to reconcile when it still holds funds for orders (open intents).

        After a restart of the trading group the portfolio starts first and its status
        request reaches no ExecutionActor, and what this actor sent it while it was down (a
        split parent's close, say) was lost: its next status request then finds us running.
        """
        if self._j().open_intents():
            ctx.send(self.portfolio, ReconcileNow(ts=ctx.now()))

    def _open_rows(self) -> list[dict[str, Any]]:
        """Non-terminal order rows that are at the venue (split parents never are)."""
        rows = self._j().orders(open_only=True)
        return [r for r in rows if not self.split.is_parent(r["client_order_id"])]

    def receive(self, msg: Message, ctx: Context) -> None:
        """Dispatch as usual, then journal the venue's notes (unknown outcomes, settlements)."""
        try:
            super().receive(msg, ctx)
        finally:
            self._journal_notes(ctx)
        self._queue_step(ctx)
        if self._drain is not None and not self._drained:
            self._drain_check(ctx)

    def _journal_notes(self, ctx: Context) -> None:
        if self.remote is not None and self.journal is not None:
            for kind, coid, detail in self.remote.take_notes():
                self._event(ctx, kind, f"{coid}: {detail}")

    def on_stop(self, ctx: Context) -> None:
        """Close the journal."""
        if self.journal is not None:
            self.journal.close()

    def _j(self) -> Journal:
        assert self.journal is not None, "ExecutionActor used before on_start"
        return self.journal

    # -- orders ------------------------------------------------------------------------------

    def _handle_submit_order(self, order: SubmitOrder, ctx: Context) -> None:
        if not journal_order(self._j(), order, ctx.now()):
            # a duplicate: never post twice, report what the venue knows
            if not self.split.status(order.client_order_id, ctx):
                self._reconcile(order.client_order_id, order.product, ctx)
            return
        if self._drain is not None:  # the orderly stop began: journalled, never sent
            coid = order.client_order_id
            self._j().update_order(coid, ctx.now(), status=OrderStatus.REJECTED, reason=STOPPING)
            ctx.send(
                self.portfolio,
                OrderRejected(
                    ts=ctx.now(), client_order_id=coid, product=order.product, reason=STOPPING
                ),
            )
            return
        if self.split.decide(order).split:
            self.split.start_parent(order, ctx)
            return
        result = self._send(order, ctx)
        if isinstance(result, OrderRejected):
            ctx.send(self.portfolio, result)

    def _send(
        self, order: SubmitOrder, ctx: Context
    ) -> OrderAccepted | OrderRejected | OrderOutcomeUnknown:
        """Send one journalled order (a whole order or a child) and journal the outcome."""
        journal, coid = self._j(), order.client_order_id
        self._orders_sent += 1
        try:
            result = self.venue.submit(order, ctx.now())
        except Exception as e:
            self._event(ctx, "venue_error", f"{coid}: {type(e).__name__}: {e}")
            raise
        if isinstance(result, OrderAccepted):
            journal.update_order(
                coid,
                ctx.now(),
                status=OrderStatus.OPEN,
                venue_order_id=result.venue_order_id,
                only_from=OrderStatus.PENDING,
            )
        elif isinstance(result, OrderOutcomeUnknown):
            self._event(
                ctx, "outcome_pending", f"{coid}: unknown after the submit: {result.reason}"
            )
            self._arm_outcome_timer(ctx)
        else:
            journal.update_order(coid, ctx.now(), status=OrderStatus.REJECTED, reason=result.reason)
        return result

    def _upstream(
        self, msg: Fill | OrderClosed | OrderRejected | OrderStatusReport, ctx: Context
    ) -> None:
        """To the portfolio, unless it is about a child (then the splitter decides)."""
        if not self.split.route(msg, ctx):
            ctx.send(self.portfolio, msg)

    def _handle_fill(self, fill: Fill, ctx: Context) -> None:
        v = self.venue.get_order(fill.client_order_id)
        # An order the venue already reports closed (a market order's fills arrive after it
        # filled) gets its final quantity from the OrderClosed that follows its fills.
        if v is not None and not v.status.terminal:
            self._j().update_order(
                fill.client_order_id, ctx.now(), filled_quantity=v.filled_quantity
            )
        self._upstream(fill, ctx)

    def _handle_order_closed(self, msg: OrderClosed, ctx: Context) -> None:
        self._j().update_order(
            msg.client_order_id, ctx.now(), status=msg.status, filled_quantity=msg.filled_quantity
        )
        self._upstream(msg, ctx)

    def _handle_order_accepted(self, msg: OrderAccepted, ctx: Context) -> None:
        self._j().update_order(
            msg.client_order_id,
            ctx.now(),
            status=OrderStatus.OPEN,
            venue_order_id=msg.venue_order_id,
            only_from=OrderStatus.PENDING,
        )
        self.split.on_accepted(msg)

    def _handle_cancel_order(self, msg: CancelOrder, ctx: Context) -> None:
        if not self.split.cancel(msg.client_order_id, ctx):
            self.split.venue_cancel(msg.client_order_id, ctx.now())

    def _handle_cancel_all_orders(self, msg: CancelAllOrders, ctx: Context) -> None:
        self.split.cancel_all(ctx)
        if self.remote is None or not self.remote.cancel_later():
            self.venue.cancel_all(ctx.now())

    def _handle_order_status_request(self, msg: OrderStatusRequest, ctx: Context) -> None:
        for coid in msg.client_order_ids:
            if self.split.status(coid, ctx):
                continue
            row = self._j().order(coid)
            if row is None:
                ctx.send(
                    self.portfolio,
                    OrderStatusReport(ts=ctx.now(), client_order_id=coid, known=False),
                )
            else:
                self._reconcile(coid, row["product"], ctx)

    def _handle_feed_status(self, msg: FeedStatus, ctx: Context) -> None:
        """A stale product's split children wait until its data flows again."""
        self.split.set_stale(msg.products, msg.state in ("stale", "degraded"))

    # -- the orderly stop --------------------------------------------------------------------

    def _handle_drain_orders(self, msg: DrainOrders, ctx: Context) -> None:
        if self._drain is not None:
            return
        self._drain = msg
        waiting = len(self._drain_rows())
        self._event(
            ctx,
            "drain",
            f"{msg.reason}: {'cancelling' if msg.cancel else 'keeping'} open orders; "
            f"{waiting} to wait for",
        )
        self._drain_open = waiting
        if msg.cancel:
            self._handle_cancel_all_orders(CancelAllOrders(ts=ctx.now(), reason=msg.reason), ctx)
        if self.remote is not None and self._drain_rows():
            ctx.schedule(self.remote.outcome_retry_ns, self._timer(DRAIN_TIMER))

    def _drain_rows(self) -> list[dict[str, Any]]:
        """The venue orders the orderly stop waits for (see the module docstring)."""
        rows = self._open_rows()
        if self._drain is not None and not self._drain.cancel:
            rows = [r for r in rows if r["status"] == OrderStatus.PENDING]
        return rows

    def _drain_check(self, ctx: Context) -> None:
        assert self._drain is not None
        if self._drain_rows():
            return
        self._drained = True
        self._event(ctx, "drained", f"{self._drain_open} open orders settled")
        ctx.send(self._drain.reply_to, OrdersDrained(ts=ctx.now(), orders=self._drain_open))

    # -- reconciliation (remote venues) ------------------------------------------------------

    def _handle_venue_call_done(self, msg: VenueCallDone, ctx: Context) -> None:
        """A call made on the venue's thread is back: a cancel's are applied now; after a
        read of a lookup or a pass the queue goes on."""
        if msg.call == "cancel":
            if self.remote is not None:
                self.remote.cancels_back()
            return
        self._work.resume()

    def _handle_reconcile_venue(self, msg: ReconcileVenue, ctx: Context) -> None:
        if self.remote is not None:
            self._full_reconcile(ctx, msg.reason, None)

    def _handle_tick(self, msg: Tick, ctx: Context) -> None:
        kind, _, token = msg.kind.partition(":")
        if kind == SPLIT_TIMER:  # paper venues too
            if self._drain is None:  # stopping: split parents send no more children
                self.split.on_timer(token, ctx)
            return
        if self.remote is None or token != self._token:
            return  # a timer of an earlier incarnation
        if kind == STEP_TIMER:
            self._step(ctx)
            return
        if kind == DRAIN_TIMER:
            for row in self._drain_rows():
                self._reconcile(row["client_order_id"], row["product"], ctx)
            if self._drain_rows():
                ctx.schedule(self.remote.outcome_retry_ns, msg)
            return
        if kind == RECONCILE_TIMER:
            self._full_reconcile(ctx, "interval", None)
            ctx.schedule(self.remote.reconcile_interval_ns, msg)
        elif kind == OUTCOME_TIMER:
            self._outcome_armed = False
            for row in self._open_rows():
                if row["status"] == OrderStatus.PENDING:
                    self._reconcile(row["client_order_id"], row["product"], ctx)

    def _timer(self, kind: str) -> Tick:
        return Tick(kind=f"{kind}:{self._token}")

    def _arm_outcome_timer(self, ctx: Context) -> None:
        if self.remote is not None and not self._outcome_armed:
            self._outcome_armed = True
            ctx.schedule(self.remote.outcome_retry_ns, self._timer(OUTCOME_TIMER))

    def _track(self, row: dict[str, Any]) -> None:
        assert self.remote is not None
        coid = row["client_order_id"]
        qty, value, fees = self.split.booked(coid) or self._j().fill_totals(coid)
        self.remote.track(
            TrackedOrder(
                client_order_id=row["client_order_id"],
                product=row["product"],
                side=Side(row["side"]),
                order_type=OrderType(row["order_type"]),
                created_ts=int(row["created_ts"]),
                venue_order_id=row["venue_order_id"],
                status=OrderStatus(row["status"]),
                filled_quantity=qty,
                filled_value=value,
                fees=fees,
                order=resendable_order(self._j(), row, self.split.plans),
            )
        )

    def _since_ns(self, rows: list[dict[str, Any]]) -> int | None:
        """Where the first fills query starts: the oldest open order or the newest fill."""
        times = [int(r["created_ts"]) for r in rows]
        last = self._j().last_fill_ts()
        if last is not None:
            times.append(last)
        return min(times) if times else None

    def _full_reconcile(self, ctx: Context, why: str, since_ns: int | None) -> None:
        """Queue a reconciliation pass after a lookup of every PENDING order (:class:`VenueWork`:
        while one is under way an interval pass is dropped, any other runs once it is over)."""
        pending = [
            (r["client_order_id"], r["product"])
            for r in self._open_rows()
            if r["status"] == OrderStatus.PENDING
        ]
        self._work.reconcile(why, since_ns, pending)

    def _queue_step(self, ctx: Context) -> None:
        """One message to this actor for the next piece of venue work (behind what is queued)."""
        if self.remote is not None and self._work.want_step():
            ctx.send(ctx.name, self._timer(STEP_TIMER))

    def _step(self, ctx: Context) -> None:
        """Do the next piece of venue work: one lookup, or one call of a reconciliation pass."""
        item = self._work.next()
        if item is None:
            return
        if item.kind == "resolve":
            self._lookup(item, ctx)
        elif item.kind == "read":
            self._looked_up(item, ctx)
        elif item.kind in ("pass", "more"):
            self._pass_step(ctx, item.why, item.since_ns, new_pass=item.kind == "pass")
        elif item.kind == "resume":
            self.split.resume(ctx, self._child_settled)
        elif item.kind == "started":
            self._started(ctx)

    def _lookup(self, item: WorkItem, ctx: Context) -> None:
        """The first half of a lookup: the read goes to the venue's background thread and the
        queue waits for it (:meth:`_looked_up` applies it); without one, the whole lookup now.
        An order settled meanwhile is not read: its state is reported."""
        assert self.remote is not None
        coid = item.client_order_id
        if not item.force:
            self._track_open(coid)
        if self.remote.lookup_later(coid, force=item.force):
            self._work.read_back(item)
        else:
            self._looked_up(item, ctx)

    def _looked_up(self, item: WorkItem, ctx: Context) -> None:
        if item.force:
            self._adopted(item.client_order_id, item.product, ctx)
        else:
            self._resolve(item.client_order_id, item.product, ctx)

    def _pass_step(self, ctx: Context, why: str, since_ns: int | None, *, new_pass: bool) -> None:
        """One call of a reconciliation pass (the first starts it, whatever an earlier
        incarnation left unfinished); what it found is journalled (the venue wins)."""
        assert self.remote is not None
        report = self.remote.reconcile(
            ctx.now(), since_ns, self._settled, max_calls=1, new_pass=new_pass
        )
        for d in report.diffs:
            detail = f"{why}: {d.kind} {d.client_order_id or '-'} {d.venue_order_id} {d.detail}"
            self._event(ctx, "reconcile", detail.strip())
            if d.kind == "untracked" and d.client_order_id:
                self._adopt(d.client_order_id, ctx)
        if report.error:
            self._event(ctx, "reconcile_failed", f"{why}: {report.error}")
        if not report.done:
            self._work.pass_continues(why)
            if report.waiting:  # its call runs on the venue's thread: VenueCallDone follows
                self._work.pause()
            return
        again = self._work.pass_over()
        if again is not None:
            self._full_reconcile(ctx, again, None)

    def _settled(self, venue_order_id: str) -> bool:
        """True when the journal has the venue's order as terminal with every fill booked (a
        split child's under its parent): reconciliation need not look it up again."""
        return self._row_settled(self._j().order_by_venue_id(venue_order_id))

    def _child_settled(self, client_order_id: str) -> bool:
        """The same for a split child by its id (a restored parent may move on at once)."""
        return self._row_settled(self._j().order(client_order_id))

    def _row_settled(self, row: dict[str, Any] | None) -> bool:
        if row is None or not OrderStatus(row["status"]).terminal:
            return False
        coid = row["client_order_id"]
        qty, _, _ = self.split.booked(coid) or self._j().fill_totals(coid)
        return qty == Decimal(row["filled_quantity"])

    def _adopt(self, coid: str, ctx: Context) -> None:
        """The venue has an order the journal knows but nobody tracks: the venue wins (it is
        tracked now and looked up next, :meth:`_adopted`)."""
        row = self._j().order(coid)
        if row is None:
            return  # not ours (placed by hand?): reported, left alone
        self._track(row)
        self._work.resolve(coid, row["product"], force=True)

    def _adopted(self, coid: str, product: str, ctx: Context) -> None:
        assert self.remote is not None
        state, detail = self.remote.resolve(coid, ctx.now(), force=True)
        self._event(ctx, "adopted", f"{coid}: {state}: {detail}")
        if state is Resolution.FOUND:
            self._report(coid, product, ctx)

    def _reconcile(self, coid: str, product: str, ctx: Context) -> None:
        """Bring one order in line with the venue and tell the portfolio everything it knows;
        a PENDING order at a remote venue is looked up in its turn (a step)."""
        if self.remote is not None:
            row = self._j().order(coid)
            if row is not None and row["status"] == OrderStatus.PENDING:
                self._work.resolve(coid, product)
                return
        self._resolve(coid, product, ctx)

    def _track_open(self, coid: str) -> None:
        """Register a journalled PENDING or OPEN order with the venue (its booked baseline)."""
        row = self._j().order(coid)
        if row is not None and row["status"] in (OrderStatus.PENDING, OrderStatus.OPEN):
            self._track(row)

    def _resolve(self, coid: str, product: str, ctx: Context) -> None:
        if self.remote is not None:
            self._track_open(coid)
            state, detail = self.remote.resolve(coid, ctx.now())
            if state is Resolution.UNKNOWN:
                self._event(ctx, "outcome_pending", f"{coid}: {detail}")
                self._arm_outcome_timer(ctx)
                return
        self._report(coid, product, ctx)

    def _report(self, coid: str, product: str, ctx: Context) -> None:
        journal = self._j()
        v = self.venue.get_order(coid)
        if v is None:
            row = journal.order(coid)
            reason = "never reached the venue (lost before sending); not re-posted"
            if row is not None and row["status"] == OrderStatus.REJECTED:
                reason = row["reason"]
            journal.update_order(coid, ctx.now(), status=OrderStatus.REJECTED, reason=reason)
            self._upstream(
                OrderRejected(ts=ctx.now(), client_order_id=coid, product=product, reason=reason),
                ctx,
            )
            return
        journal.update_order(  # journal first: the venue order id before any fill is booked
            coid,
            ctx.now(),
            status=v.status,
            filled_quantity=v.filled_quantity,
            venue_order_id=v.venue_order_id or None,
            reason=getattr(v, "reason", None) or None,
        )
        for fill in self.venue.fills_for(coid):
            self._upstream(fill, ctx)
        self._upstream(
            OrderStatusReport(
                ts=ctx.now(),
                client_order_id=coid,
                known=True,
                status=v.status,
                filled_quantity=v.filled_quantity,
            ),
            ctx,
        )

    def _event(self, ctx: Context, kind: str, detail: str) -> None:
        self._j().record_event(ctx.now(), "execution", kind, detail)


__all__ = ["DRAIN_TIMER", "OUTCOME_TIMER", "RECONCILE_TIMER", "STEP_TIMER", "ExecutionActor"]
