"""Journal first at the venue in the threaded runtime (as the daemon runs the ExecutionActor,
beside the PortfolioActor's group commit): every order's row is committed before the venue
sees the order, and what the actor tells the portfolio about an order arrives only once its
row says so durably."""

from __future__ import annotations

import contextlib
import sqlite3
from decimal import Decimal as D
from pathlib import Path

from cryptoj.actors.execution import ExecutionActor
from cryptoj.contract import Actor, Context
from cryptoj.journal import Journal
from cryptoj.models.base import Message
from cryptoj.models.market import Quote
from cryptoj.models.orders import (
    Fill,
    OrderAccepted,
    OrderClosed,
    OrderRejected,
    OrderType,
    Side,
    SubmitOrder,
)
from cryptoj.runtime.assemble import GROUP_COMMIT
from cryptoj.runtime.common import Registered
from cryptoj.runtime.threaded import ScaledClock, ThreadedRuntime
from cryptoj.venues.paper import PaperExchange

ORDERS = 40


def committed(path: str, coid: str) -> tuple[str, str] | None:
    """The order's (status, filled quantity) as another connection sees it committed."""
    with contextlib.closing(sqlite3.connect(path)) as c:
        row = c.execute(
            "SELECT status, filled_quantity FROM orders WHERE client_order_id = ?", (coid,)
        ).fetchone()
    return None if row is None else (row[0], row[1])


class PeekingVenue(PaperExchange):
    """The paper venue, recording at each submit what the journal has committed of the order."""

    def __init__(self, path: str) -> None:
        super().__init__(starting_cash=D(10_000_000), taker_fee=D(0), maker_fee=D(0))
        self.path = path
        self.at_submit: dict[str, tuple[str, str] | None] = {}

    def submit(self, order: SubmitOrder, ts: int) -> OrderAccepted | OrderRejected:
        self.at_submit[order.client_order_id] = committed(self.path, order.client_order_id)
        return super().submit(order, ts)


class Portfolio(Actor):
    """Stands in for the portfolio: records what the journal has committed of each order when a
    fill or a close of it arrives."""

    kind = "portfolio"

    def __init__(self, path: str, seen: list[tuple[Message, tuple[str, str] | None]]) -> None:
        self.path = path
        self.seen = seen

    def receive(self, msg: Message, ctx: Context) -> None:
        if isinstance(msg, Fill | OrderClosed):
            self.seen.append((msg, committed(self.path, msg.client_order_id)))


def test_each_order_is_committed_before_the_venue_sees_it(tmp_path: Path) -> None:
    path = str(tmp_path / "journal.sqlite")
    Journal(path).close()
    venue = PeekingVenue(path)
    venue.on_quote(
        Quote(
            ts=1,
            product="BTC-USD",
            bid=D(100),
            bid_size=D(1_000_000),
            ask=D(101),
            ask_size=D(1_000_000),
        )
    )
    seen: list[tuple[Message, tuple[str, str] | None]] = []
    registry = {
        "portfolio": Registered("portfolio", "main", lambda: Portfolio(path, seen)),
        "execution": Registered("execution", "portfolio", lambda: ExecutionActor(venue, path)),
    }
    rt = ThreadedRuntime(
        seed=1, clock=ScaledClock(0, 0.0), registry=registry, group_commit=GROUP_COMMIT
    )
    venue.set_listener(lambda e: rt.tell("execution", e, sender="venue"))
    rt.start("portfolio")
    rt.start("execution")
    try:
        for i in range(ORDERS):  # sent at once: they queue up in the actor's mailbox
            rt.tell(
                "execution",
                SubmitOrder(
                    ts=1,
                    client_order_id=f"o{i}",
                    product="BTC-USD",
                    side=Side.BUY if i % 2 == 0 else Side.SELL,
                    order_type=OrderType.MARKET,
                    quantity=D("0.01"),
                ),
            )
        rt.quiesce(["execution", "portfolio"])
    finally:
        rt.shutdown()
    # journal first at the venue: every order's row committed (PENDING) before its submit
    assert venue.at_submit == {f"o{i}": ("PENDING", "0") for i in range(ORDERS)}
    closes = [(m, row) for m, row in seen if isinstance(m, OrderClosed)]
    fills = [(m, row) for m, row in seen if isinstance(m, Fill)]
    assert len(closes) == ORDERS and len(fills) >= ORDERS
    # a fill reaches the portfolio once the order's row is durable past PENDING, a close once
    # the row is durably closed with the quantity the close reports
    assert all(row is not None and row[0] != "PENDING" for _, row in fills)
    assert all(
        isinstance(m, OrderClosed) and row == (str(m.status), str(m.filled_quantity))
        for m, row in closes
    )
