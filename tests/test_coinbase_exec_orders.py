"""The Coinbase order state machine: cumulative reports from any source, in any order, with
duplicates, replays and a restart from the journal, give fills that add up to the venue's final
cumulative figures exactly once, with stable ids, and states that never regress."""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from cryptoj.adapters.coinbase.execution.orders import (
    OrderTracker,
    OrderUpdate,
    fill_id,
    fill_price,
    rank,
)
from cryptoj.models.base import Message
from cryptoj.models.orders import (
    Fill,
    OrderAccepted,
    OrderClosed,
    OrderStatus,
    OrderType,
    Side,
)

Q = Decimal("0.00000001")
VID = "4f1c1c2e-venue-order"


def tracker(**kw: object) -> OrderTracker:
    args: dict[str, object] = {
        "client_order_id": "cj-1",
        "product": "BTC-USD",
        "side": Side.BUY,
        "order_type": OrderType.LIMIT,
        "created_ts": 1,
    }
    args.update(kw)
    return OrderTracker(**args)  # type: ignore[arg-type]


def update(
    status: str, qty: str | Decimal, value: str | Decimal, fees: str | Decimal
) -> OrderUpdate:
    return OrderUpdate(
        venue_order_id=VID,
        client_order_id="cj-1",
        status=status,
        filled_size=Decimal(qty),
        filled_value=Decimal(value),
        total_fees=Decimal(fees),
    )


def test_an_open_before_the_create_response_and_repeated_reports_change_nothing_twice() -> None:
    t = tracker()
    events = t.apply(update("OPEN", "0", "0", "0"), 10)
    assert events == [OrderAccepted(ts=10, client_order_id="cj-1", venue_order_id=VID)]
    assert t.learn_id(VID, 11) == []  # the create response arrives later: no second acceptance
    fill_events = t.apply(update("OPEN", "0.5", "5000.25", "30.0015"), 12)
    (fill,) = fill_events
    assert isinstance(fill, Fill)
    assert (fill.fill_id, fill.quantity, fill.fee) == (
        f"{VID}:0.5",
        Decimal("0.5"),
        Decimal("30.0015"),
    )
    assert fill.notional == Decimal("5000.25")
    assert t.apply(update("OPEN", "0.50000000", "5000.25", "30.0015"), 13) == []  # same point
    assert t.apply(update("PENDING", "0.2", "2000", "12"), 14) == []  # stale and lower rank
    closing = t.apply(update("FILLED", "1", "10000.75", "60.0045"), 15)
    assert [type(e).__name__ for e in closing] == ["Fill", "OrderClosed"]
    assert closing[1] == OrderClosed(
        ts=15,
        client_order_id="cj-1",
        product="BTC-USD",
        status=OrderStatus.FILLED,
        filled_quantity=Decimal(1),
    )
    assert t.apply(update("CANCELLED", "1", "10000.75", "60.0045"), 16) == []  # first end wins
    assert t.view().status is OrderStatus.FILLED and t.ignored == 3


def test_reports_for_another_venue_order_are_ignored_as_anomalies() -> None:
    t = tracker()
    t.apply(update("OPEN", "0", "0", "0"), 1)
    other = OrderUpdate(
        venue_order_id="someone-else",
        client_order_id="cj-1",
        status="FILLED",
        filled_size=Decimal(1),
        filled_value=Decimal(1),
        total_fees=Decimal(0),
    )
    assert t.apply(other, 2) == [] and t.anomalies == 1
    assert t.apply(update("OPEN", "1", "100", "0.6"), 3)


def test_a_report_without_a_value_is_priced_at_its_average_price() -> None:
    t = tracker(order_type=OrderType.MARKET)
    u = OrderUpdate(
        venue_order_id=VID,
        client_order_id="cj-1",
        status="FILLED",
        filled_size=Decimal("0.3"),
        average_price=Decimal("100.5"),
        total_fees=Decimal("0.18"),
    )
    fill, closed = t.apply(u, 1)[1:]
    assert (
        isinstance(fill, Fill) and fill.notional == Decimal("30.15") and fill.liquidity == "TAKER"
    )
    assert isinstance(closed, OrderClosed)


def test_a_failed_order_closes_as_rejected_and_a_refused_create_emits_nothing() -> None:
    t = tracker()
    events = t.apply(update("FAILED", "0", "0", "0"), 1)
    assert isinstance(events[-1], OrderClosed) and events[-1].status is OrderStatus.REJECTED
    r = tracker()
    r.refuse("INSUFFICIENT_FUND", 2)
    assert r.view().status is OrderStatus.REJECTED and r.view().reason == "INSUFFICIENT_FUND"


@given(
    dv=st.integers(min_value=1, max_value=10**16),
    dq=st.integers(min_value=1, max_value=10**14),
)
def test_the_fill_price_reproduces_the_venue_notional_exactly(dv: int, dq: int) -> None:
    value, qty = Decimal(dv) * Q, Decimal(dq) * Q
    f = Fill(
        fill_id="x",
        client_order_id="c",
        product="P-USD",
        side=Side.SELL,
        quantity=qty,
        price=fill_price(value, qty),
        fee=Decimal(0),
        liquidity="MAKER",
    )
    assert f.notional == value


# -- the property -------------------------------------------------------------------------------

TERMINAL = ("FILLED", "CANCELLED", "EXPIRED")


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[OrderUpdate], list[int], int | None]:
    """A true cumulative history, the order reports are delivered in, and a restart point."""
    steps = draw(
        st.lists(
            st.tuples(
                st.integers(min_value=1, max_value=5 * 10**8),
                st.integers(min_value=1, max_value=10**7),
            ),
            min_size=0,
            max_size=6,
        )
    )
    end = draw(st.sampled_from((*TERMINAL, "OPEN")))
    snaps = [
        ("PENDING", Decimal(0), Decimal(0), Decimal(0)),
        ("OPEN", Decimal(0), Decimal(0), Decimal(0)),
    ]
    qty = value = fees = Decimal(0)
    for q_units, cents in steps:
        q = Decimal(q_units) * Q
        price = Decimal(cents) / 100
        notional = (q * price).quantize(Q, rounding=ROUND_DOWN)
        qty, value = qty + q, value + notional
        fees += (notional * Decimal("0.006")).quantize(Q, rounding=ROUND_DOWN)
        snaps.append(("OPEN", qty, value, fees))
    if end != "OPEN":
        snaps.append((end, qty, value, fees))
    reports = []
    for status, q, v, f in snaps:
        # the same point may be written differently by REST ("0.50000000") and the channel ("0.5")
        text = draw(st.sampled_from(("plain", "padded")))
        shown = q.quantize(Q) if text == "padded" else q.normalize()
        reports.append(
            OrderUpdate(
                venue_order_id=VID,
                client_order_id="cj-1",
                status=status,
                filled_size=shown,
                filled_value=v,
                total_fees=f,
                source=draw(st.sampled_from(("user", "rest", "replay"))),
            )
        )
    n = len(reports)
    order = draw(st.lists(st.integers(min_value=0, max_value=n - 1), max_size=3 * n))
    order.append(n - 1)  # the venue's final state is eventually read (reconciliation)
    restart = draw(st.one_of(st.none(), st.integers(min_value=0, max_value=len(order) - 1)))
    return reports, order, restart


@settings(max_examples=300, deadline=None)
@given(histories())
def test_any_interleaving_duplication_or_replay_books_the_final_cumulative_once(
    case: tuple[list[OrderUpdate], list[int], int | None],
) -> None:
    reports, order, restart = case
    final = reports[-1]
    t = tracker()
    emitted: list[Message] = []
    ranks: list[int] = []
    journal: list[Fill] = []  # what the portfolio booked (deduplicated by fill id)
    for i, k in enumerate(order):
        if restart == i and not t.terminal:
            # a restart: a new tracker from the journal's fills, as ExecutionActor._track does
            t = tracker(venue_order_id=t.venue_order_id)
            t.restore(
                sum((f.quantity for f in journal), Decimal(0)),
                sum((f.notional for f in journal), Decimal(0)),
                sum((f.fee for f in journal), Decimal(0)),
            )
            ranks.append(-1)
        events = t.apply(reports[k], i)
        emitted.extend(events)
        for e in events:
            if isinstance(e, Fill) and e.fill_id not in {f.fill_id for f in journal}:
                journal.append(e)
        ranks.append(rank(t.status))
    fills = [e for e in emitted if isinstance(e, Fill)]
    assert len({f.fill_id for f in fills}) == len(fills)  # no point is booked twice
    assert fills == journal
    assert all(f.quantity > 0 and f.price > 0 and f.fee >= 0 for f in fills)
    assert sum((f.quantity for f in fills), Decimal(0)) == final.filled_size
    assert sum((f.notional for f in fills), Decimal(0)) == final.filled_value
    assert sum((f.fee for f in fills), Decimal(0)) == final.total_fees
    assert all(f.fill_id == fill_id(VID, Decimal(f.fill_id.split(":")[1])) for f in fills)
    segments: list[list[int]] = [[]]
    for r in ranks:
        if r == -1:
            segments.append([])
        else:
            segments[-1].append(r)
    assert all(seg == sorted(seg) for seg in segments)  # states never regress
    closes = [e for e in emitted if isinstance(e, OrderClosed)]
    accepted = [e for e in emitted if isinstance(e, OrderAccepted)]
    assert len(accepted) == 1
    if final.status in TERMINAL:
        assert len(closes) == 1 and closes[0].status == OrderStatus(final.status)
        assert closes[0].filled_quantity == final.filled_size
        last_fill = max((emitted.index(f) for f in fills), default=-1)
        assert emitted.index(closes[0]) > last_fill  # the close follows the completing fill
    else:
        assert closes == []
