"""The portfolio's valuation: figures kept between changes are the figures computed afresh, and
the order outcomes a MonitorReport takes."""

from __future__ import annotations

from decimal import Decimal

from cryptoj.models.orders import Fill, Side
from cryptoj.portfolio.books import books_snapshot
from cryptoj.portfolio.ledger import Ledger
from cryptoj.portfolio.valuation import OrderOutcomes, Valuation
from tests.stubs import quote, risk_params

D = Decimal
T0 = 1_522_800_060_000_000_000


def _fill(product: str, quantity: str, price: str) -> Fill:
    return Fill(
        ts=T0,
        fill_id=f"f-{product}-{quantity}",
        client_order_id="c1",
        product=product,
        side=Side.BUY,
        quantity=D(quantity),
        price=D(price),
        fee=D("0.5"),
        liquidity="TAKER",
    )


def _fresh(ledger: Ledger, v: Valuation) -> tuple[Decimal, bool, dict[str, Decimal]]:
    marks = {p: q.mid for p, q in v.quotes.items()}
    marked = all(p in v.quotes for p, h in ledger.holdings.items() if h.quantity)
    return ledger.equity(marks), marked, marks


def test_kept_figures_follow_every_quote_and_fill() -> None:
    ledger = Ledger(D(10_000))
    v = Valuation(ledger)
    assert v.equity() == D(10_000) and v.fully_marked() and v.newest() == -1
    steps = [
        ("quote", quote("BTC-USD", "7000", "7002", ts=T0)),
        ("fill", _fill("BTC-USD", "0.5", "7001")),
        ("fill", _fill("ETH-USD", "2", "400")),  # held, not quoted yet
        ("quote", quote("BTC-USD", "7100", "7102", ts=T0 + 1)),
        ("quote", quote("ETH-USD", "410", "411", ts=T0 + 2)),
    ]
    for kind, item in steps:
        if kind == "quote":
            v.quotes_moved()
            v.quotes[item.product] = item  # type: ignore[union-attr]
        else:
            ledger.apply_fill(item)  # type: ignore[arg-type]
            v.books_moved()
        equity, marked, marks = _fresh(ledger, v)
        for _ in range(2):  # the kept figures, asked for twice
            assert (v.equity(), v.fully_marked(), v.marks()) == (equity, marked, marks)
        assert v.newest() == max(q.ts for q in v.quotes.values())
        assert v.snapshot(T0) == books_snapshot(ledger, marks, T0)
    # cash 10,000 - 3,500.5 - 800 - 1 in fees; 0.5 BTC at 7,101 and 2 ETH at 410.5
    assert v.fully_marked() and v.equity() == D(10_070)


def test_a_new_ledger_is_valued_from_scratch() -> None:
    v = Valuation(Ledger(D(5)))
    assert v.equity() == D(5)
    v.books_moved(Ledger(D(7)))
    assert v.equity() == D(7)


def test_the_report_takes_the_outcomes_since_the_last_one() -> None:
    v = Valuation(Ledger(D(1000)))
    outcomes = OrderOutcomes()
    outcomes.sent("a", 100)
    outcomes.sent("b", 150)
    outcomes.close("a", False, 400)  # 300 ns round trip; b is still open
    outcomes.close("x", True, 410)  # an order this instance never sent: counted, no latency
    report = v.monitor_report(T0, risk_params(), outcomes, 500)
    assert (report.closed, report.rejected, report.latency_ns) == (2, 1, 350)  # b is 350 old
    assert report.risk_level == "NORMAL" and report.equity == D(1000)
    outcomes.close("b", False, 600)
    again = v.monitor_report(T0, None, outcomes, 700)
    assert (again.closed, again.rejected, again.latency_ns) == (1, 0, 450)
    assert again.risk_level is None
    quiet = v.monitor_report(T0, None, outcomes, 800)
    assert (quiet.closed, quiet.rejected, quiet.latency_ns) == (0, 0, 0)
