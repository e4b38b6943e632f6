"""ExecutionActor: the order state machines between the portfolio and the venue.

Journal first: an order is journalled PENDING before it is sent. Venue events (fills, closes)
arrive from the venue's user channel and are forwarded to the portfolio. States never regress
(an OPEN after a fill is ignored). On start it reconciles every non-terminal journalled order with
the venue — the venue wins: fills it missed are re-sent (the portfolio deduplicates by fill id),
orders the venue never saw are rejected, so no order is lost or duplicated across a restart.
"""

from __future__ import annotations

from cryptoj.actors.base import Actor, Context
from cryptoj.journal import Journal
from cryptoj.models.orders import (
    CancelAllOrders,
    CancelOrder,
    Fill,
    OrderAccepted,
    OrderClosed,
    OrderRejected,
    OrderStatus,
    OrderStatusReport,
    OrderStatusRequest,
    SubmitOrder,
)
from cryptoj.venues.base import ExecutionVenue


class ExecutionActor(Actor):
    """Sends orders to the venue and reports their outcome to the portfolio."""

    kind = "execution"

    def __init__(
        self, venue: ExecutionVenue, journal_path: str, *, portfolio: str = "portfolio"
    ) -> None:
        self.venue = venue
        self.journal_path = journal_path
        self.portfolio = portfolio
        self.journal: Journal | None = None

    def on_start(self, ctx: Context) -> None:
        """Open the journal and reconcile non-terminal orders with the venue."""
        self.journal = Journal(self.journal_path)
        for row in self.journal.orders(open_only=True):
            self._reconcile(row["client_order_id"], row["product"], ctx)

    def on_stop(self, ctx: Context) -> None:
        """Close the journal."""
        if self.journal is not None:
            self.journal.close()

    def _j(self) -> Journal:
        assert self.journal is not None, "ExecutionActor used before on_start"
        return self.journal

    def _handle_submit_order(self, order: SubmitOrder, ctx: Context) -> None:
        journal = self._j()
        is_new = journal.record_order(
            {
                "client_order_id": order.client_order_id,
                "product": order.product,
                "side": str(order.side),
                "order_type": str(order.order_type),
                "quantity": order.quantity,
                "limit_price": order.limit_price,
                "reason": order.reason,
                "ts": ctx.now(),
            }
        )
        if not is_new:  # a duplicate: never post twice, report what the venue knows
            self._reconcile(order.client_order_id, order.product, ctx)
            return
        result = self.venue.submit(order, ctx.now())
        if isinstance(result, OrderAccepted):
            row = journal.order(order.client_order_id)
            if row is not None and row["status"] == OrderStatus.PENDING:
                journal.update_order(
                    order.client_order_id,
                    ctx.now(),
                    status=OrderStatus.OPEN,
                    venue_order_id=result.venue_order_id,
                )
        else:
            journal.update_order(
                order.client_order_id, ctx.now(), status=OrderStatus.REJECTED, reason=result.reason
            )
            ctx.send(self.portfolio, result)

    def _handle_fill(self, fill: Fill, ctx: Context) -> None:
        v = self.venue.get_order(fill.client_order_id)
        if v is not None:
            self._j().update_order(
                fill.client_order_id, ctx.now(), filled_quantity=v.filled_quantity
            )
        ctx.send(self.portfolio, fill)

    def _handle_order_closed(self, msg: OrderClosed, ctx: Context) -> None:
        self._j().update_order(
            msg.client_order_id, ctx.now(), status=msg.status, filled_quantity=msg.filled_quantity
        )
        ctx.send(self.portfolio, msg)

    def _handle_order_accepted(self, msg: OrderAccepted, ctx: Context) -> None:
        row = self._j().order(msg.client_order_id)
        if row is not None and row["status"] == OrderStatus.PENDING:
            self._j().update_order(
                msg.client_order_id,
                ctx.now(),
                status=OrderStatus.OPEN,
                venue_order_id=msg.venue_order_id,
            )

    def _handle_cancel_order(self, msg: CancelOrder, ctx: Context) -> None:
        self.venue.cancel(msg.client_order_id, ctx.now())

    def _handle_cancel_all_orders(self, msg: CancelAllOrders, ctx: Context) -> None:
        self.venue.cancel_all(ctx.now())

    def _handle_order_status_request(self, msg: OrderStatusRequest, ctx: Context) -> None:
        for coid in msg.client_order_ids:
            row = self._j().order(coid)
            if row is None:
                ctx.send(
                    self.portfolio,
                    OrderStatusReport(ts=ctx.now(), client_order_id=coid, known=False),
                )
            else:
                self._reconcile(coid, row["product"], ctx)

    def _reconcile(self, coid: str, product: str, ctx: Context) -> None:
        """Bring one order in line with the venue and tell the portfolio everything it knows."""
        journal = self._j()
        v = self.venue.get_order(coid)
        if v is None:
            row = journal.order(coid)
            reason = "never reached the venue (lost before sending); not re-posted"
            if row is not None and row["status"] == OrderStatus.REJECTED:
                reason = row["reason"]
            journal.update_order(coid, ctx.now(), status=OrderStatus.REJECTED, reason=reason)
            ctx.send(
                self.portfolio,
                OrderRejected(ts=ctx.now(), client_order_id=coid, product=product, reason=reason),
            )
            return
        for fill in self.venue.fills_for(coid):
            ctx.send(self.portfolio, fill)
        journal.update_order(
            coid,
            ctx.now(),
            status=v.status,
            filled_quantity=v.filled_quantity,
            venue_order_id=v.venue_order_id,
        )
        ctx.send(
            self.portfolio,
            OrderStatusReport(
                ts=ctx.now(),
                client_order_id=coid,
                known=True,
                status=v.status,
                filled_quantity=v.filled_quantity,
            ),
        )
