"""The emergency programme's pure logic: priority, targets, slicing, queue, monitors, response.

No actors, no threads: :mod:`cryptoj.unwind` is tested directly, with Hypothesis for the
ordering ("higher risk contribution never unwinds later") and the slice bounds.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cryptoj.config import MonitorConfig, RecoveryConfig
from cryptoj.models.market import Quote
from cryptoj.models.risk import RiskLevel, RiskParameters
from cryptoj.models.unwind import (
    ExposureView,
    MonitorReport,
    ResponseLevel,
    UnwindPlan,
    UnwindTarget,
)
from cryptoj.unwind.book import UnwindBook
from cryptoj.unwind.monitors import Monitors, monitor_report, risk_figures
from cryptoj.unwind.priority import (
    Exposure,
    book_correlations,
    order_exposures,
    plan_targets,
    risk_contribution,
)
from cryptoj.unwind.queue import UnwindItem, UnwindQueue
from cryptoj.unwind.response import Programme
from cryptoj.unwind.slicing import (
    SliceRules,
    adverse_move_bps,
    books_left,
    next_slice,
    slippage_bps,
    urgency,
)

D = Decimal
S = 1_000_000_000
L = ResponseLevel

# -- priority and targets --------------------------------------------------------------------


def test_the_worked_example_of_the_priority_module() -> None:
    btc = Exposure("BTC-USD", D(1), D(8000), volatility=0.02, correlation=0.9)
    eth = Exposure("ETH-USD", D(20), D(300), volatility=0.03, correlation=0.9)
    assert risk_contribution(btc) == pytest.approx(144.0)
    assert risk_contribution(eth) == pytest.approx(162.0)
    targets = plan_targets([btc, eth], D(100_000), target_exposure=0.05)
    assert [(t.product, t.quantity) for t in targets] == [
        ("ETH-USD", D(0)),
        ("BTC-USD", D("0.625")),  # 5,000 of 8,000 kept
    ]


def test_a_position_alone_counts_as_fully_correlated_and_hedges_go_last() -> None:
    alone = Exposure("BTC-USD", D(1), D(100), volatility=0.01, correlation=0.0)
    assert order_exposures([alone])[0].product == "BTC-USD"
    assert plan_targets([alone], D(1000), target_exposure=0.0)[0].priority == pytest.approx(1.0)
    big_hedge = Exposure("A-USD", D(100), D(100), volatility=0.05, correlation=-0.5)
    small = Exposure("B-USD", D(1), D(100), volatility=0.01, correlation=0.5)
    assert [e.product for e in order_exposures([big_hedge, small])] == ["B-USD", "A-USD"]


def test_a_systemic_ordering_takes_the_most_correlated_first_and_size_the_largest() -> None:
    a = Exposure("A-USD", D(10), D(100), volatility=0.05, correlation=0.6)
    b = Exposure("B-USD", D(1), D(100), volatility=0.01, correlation=0.95)
    assert [e.product for e in order_exposures([a, b], "risk")] == ["A-USD", "B-USD"]
    assert [e.product for e in order_exposures([a, b], "correlation")] == ["B-USD", "A-USD"]
    assert [e.product for e in order_exposures([b, a], "size")] == ["A-USD", "B-USD"]
    with pytest.raises(ValueError, match="unknown priority"):
        order_exposures([a, b], "alphabetical")


def test_flatten_targets_everything_and_a_book_under_the_target_needs_nothing() -> None:
    book = [
        Exposure("A-USD", D(1), D(1000), 0.01, 0.5),
        Exposure("B-USD", D(2), D(1000), 0.01, 0.5),
    ]
    assert {t.quantity for t in plan_targets(book, D(10_000), target_exposure=0.0)} == {D(0)}
    assert plan_targets(book, D(100_000), target_exposure=0.05) == []


exposures = st.lists(
    st.builds(
        Exposure,
        product=st.sampled_from([f"P{i}-USD" for i in range(8)]),
        quantity=st.decimals(D("0.01"), D(1000), places=2),
        mid=st.decimals(D("0.1"), D(50_000), places=2),
        volatility=st.floats(0.0, 0.2),
        correlation=st.floats(-1.0, 1.0),
    ),
    min_size=1,
    max_size=8,
    unique_by=lambda e: e.product,
)


@settings(max_examples=200, deadline=None)
@given(exposures, st.floats(0.0, 0.5), st.sampled_from(["risk", "correlation", "size"]))
def test_targets_come_out_in_priority_order_and_cut_exactly_the_excess(
    book: list[Exposure], target: float, mode: str
) -> None:
    equity = D(1_000_000)
    targets = plan_targets(book, equity, target_exposure=target, mode=mode)
    priorities = [t.priority for t in targets]
    assert priorities == sorted(priorities, reverse=True)
    by_product = {e.product: e for e in book}
    kept = sum(
        (
            (t.quantity * by_product[t.product].mid if t.product in by_product else D(0))
            for t in targets
        ),
        D(0),
    )
    untouched = sum((e.value for e in book if e.product not in {t.product for t in targets}), D(0))
    gross_after = kept + untouched
    gross = sum((e.value for e in book), D(0))
    limit = D(repr(target)) * equity
    assert gross_after <= max(limit, D(0)) or (not targets and gross <= limit)
    flooring = sum((e.mid for e in book), D(0)) * D("0.00000001")  # quantities floor to 1e-8
    assert gross_after >= min(gross, limit) - flooring  # nothing cut beyond the excess
    for t in targets:
        assert 0 <= t.quantity <= by_product[t.product].quantity


def _simulate(book: list[Exposure], depth: Decimal, k: int) -> dict[str, tuple[int, int]]:
    """Run the queue with one slice of ``depth`` per active product per step: the step at
    which each product got its first slice and the step at which it was done."""
    queue = UnwindQueue()
    ordered = plan_targets(book, D(1), target_exposure=0.0)
    queue.replace_plan(
        [UnwindItem(t.product, t.quantity, t.priority, "p", "test") for t in ordered]
    )
    left = {e.product: e.quantity for e in book}
    first: dict[str, int] = {}
    done: dict[str, int] = {}
    step = 0
    while len(queue) and step < 10_000:
        step += 1
        for item in queue.active(k, now_ns=0):
            first.setdefault(item.product, step)
            dec = next_slice(
                left[item.product],
                [(D(1), depth)],
                None,
                SliceRules(depth_fraction=1.0),
                now_ns=0,
                deadline_ns=None,
            )
            assert dec is not None
            left[item.product] -= dec.quantity
            if left[item.product] <= 0:
                queue.remove(item.product)
                done[item.product] = step
    return {p: (first[p], done[p]) for p in first}


@settings(max_examples=200, deadline=None)
@given(exposures, st.decimals(D(20), D(500), places=2), st.integers(1, 3))
def test_a_higher_risk_contribution_never_unwinds_later(
    book: list[Exposure], depth: Decimal, k: int
) -> None:
    steps = _simulate(book, depth, k)
    alone = len(book) == 1
    for a in book:
        for b in book:
            if risk_contribution(a, alone) > risk_contribution(b, alone):
                assert steps[a.product][0] <= steps[b.product][0], (a, b, steps)
                if k == 1:  # one at a time: a is finished before b starts
                    assert steps[a.product][1] < steps[b.product][0], (a, b, steps)


# -- slicing ---------------------------------------------------------------------------------


def test_the_worked_example_of_the_slicing_module() -> None:
    rules = SliceRules(depth_fraction=0.5, max_participation=0.1)
    levels = [(D(9990), D(2))]
    dec = next_slice(D(5), levels, D(30), rules, now_ns=0, deadline_ns=10)
    assert dec is not None and dec.quantity == D(1) and not dec.at_market
    assert slippage_bps(D(10_000), D(9990)) == pytest.approx(10.0)


def test_participation_caps_a_slice_when_volume_is_thin_and_depth_counts_levels() -> None:
    rules = SliceRules(depth_fraction=1.0, max_participation=0.1, depth_levels=2)
    levels = [(D(100), D(3)), (D(99), D(3)), (D(98), D(3))]
    assert next_slice(D(50), levels, None, rules, now_ns=0, deadline_ns=None).quantity == D(6)  # type: ignore[union-attr]
    dec = next_slice(D(50), levels, D(20), rules, now_ns=0, deadline_ns=None)
    assert dec is not None and dec.quantity == D(2) and "volume" in dec.why


def test_no_depth_no_slice_but_the_deadline_sends_the_rest_at_market() -> None:
    rules = SliceRules()
    assert next_slice(D(5), [(D(100), D(0))], None, rules, now_ns=5, deadline_ns=10) is None
    dec = next_slice(D(5), [(D(100), D(0))], None, rules, now_ns=10, deadline_ns=10)
    assert dec is not None and dec.quantity == D(5) and dec.at_market and "deadline" in dec.why
    assert next_slice(D(0), [(D(100), D(9))], None, rules, now_ns=0, deadline_ns=None) is None


def test_immediate_mode_sells_everything_at_once() -> None:
    dec = next_slice(
        D(7), [(D(100), D(1))], D(1), SliceRules(mode="immediate"), now_ns=0, deadline_ns=None
    )
    assert dec is not None and dec.quantity == D(7) and dec.at_market


def test_bad_rules_are_refused() -> None:
    with pytest.raises(ValueError):
        SliceRules(mode="twap")
    with pytest.raises(ValueError):
        SliceRules(depth_fraction=0.0)
    with pytest.raises(ValueError, match="coarse_depth_multiple"):
        SliceRules(coarse_depth_multiple=0.0)
    with pytest.raises(ValueError, match="volatile_multiplier"):
        SliceRules(volatile_multiplier=0.5)


# -- the deadline in market time and the speed-up ---------------------------------------------

MINUTE, FOUR_HOURS = 60 * S, 4 * 3600 * S
DEADLINE = 900 * S  # shutdown.unwind.max_duration_s


def _run_unwind(
    position: Decimal,
    interval: int,
    mids: list[Decimal] | None = None,
    *,
    interval_known: bool = False,
) -> list[tuple[int, Decimal, bool]]:
    """Sell ``position`` on books every ``interval`` ns from t = 0 (the decision) through
    :func:`next_slice`, each slice filling completely; the (time, quantity, at market) of each.
    Books hold 1 unit at the touch; ``mids`` (per book) move the price, else it stays. The
    interval is known from the second book on, or from the first with ``interval_known``
    (books were seen before the decision)."""
    rules, left, out, k = SliceRules(), position, [], 0
    start = mids[0] if mids else D(100)
    while left > 0:
        assert k < 1000, "the unwind never ends"
        now = k * interval
        mid = mids[min(k, len(mids) - 1)] if mids else D(100)
        dec = next_slice(
            left,
            [(mid - D("0.05"), D(1))],
            None,
            rules,
            now_ns=now,
            deadline_ns=DEADLINE,
            interval_ns=interval if k > 0 or interval_known else None,
            adverse_bps=adverse_move_bps(start, mid),
            started_ns=0,
        )
        if dec is not None:
            out.append((now, dec.quantity, dec.at_market))
            left -= dec.quantity
        k += 1
    return out


def test_on_bars_finer_than_the_deadline_the_unwind_ends_within_it_paced() -> None:
    slices = _run_unwind(D(40), MINUTE)  # 40 units, 0.5 a book at the touch: 80 books
    assert sum(q for _, q, _ in slices) == D(40)
    assert slices[-1][0] <= DEADLINE  # ended within max_duration_s of market time
    assert slices[0][1] == D("0.5")  # first book: interval unknown, the depth cap
    # then the pace: 1/15 of the remainder at 60 s, 1/14 at 120 s, ... (above the depth cap)
    assert slices[1] == (MINUTE, (D("39.5") / 15).quantize(D("0.00000001"), "ROUND_DOWN"), False)
    assert all(not m for t, _, m in slices if t < DEADLINE)
    assert len(slices) == 16 and slices[-1][2]  # the book at the deadline takes the rest


def test_on_bars_coarser_than_the_deadline_the_unwind_ends_within_one_bar() -> None:
    # the decision's book (interval not yet known) takes its depth cap; the next book comes
    # after the deadline and completes the unwind at market
    slices = _run_unwind(D(40), FOUR_HOURS)
    assert slices == [(0, D("0.5"), False), (FOUR_HOURS, D("39.5"), True)]
    # with the interval known (books seen before the decision), the decision's book is the
    # only one before the deadline: it sells 3 × the visible top (coarse_depth_multiple) at
    # market, and the next book the rest
    slices = _run_unwind(D(40), FOUR_HOURS, interval_known=True)
    assert slices == [(0, D(3), True), (FOUR_HOURS, D(37), True)]
    rules, book = SliceRules(), [(D(100), D(1))]

    def first(remaining: Decimal, adverse: float = 0.0, volatile: bool = False) -> Decimal:
        dec = next_slice(
            remaining, book, None, rules, now_ns=0, deadline_ns=DEADLINE,
            interval_ns=FOUR_HOURS, adverse_bps=adverse, volatile=volatile, started_ns=0,
        )  # fmt: skip
        assert dec is not None and dec.at_market and "coarser than the deadline" in dec.why
        return dec.quantity

    assert first(D(2)) == D(2)  # a small position goes whole
    assert first(D(40), volatile=True) == D(6)  # VOLATILE: × 2
    assert first(D(40), adverse=50.0) == D(6)  # 50 bps against it: urgency 2
    # on fine books the last one before the deadline is not the decision's: it takes it all
    dec = next_slice(
        D(40), book, None, rules, now_ns=DEADLINE - 30 * S, deadline_ns=DEADLINE,
        interval_ns=MINUTE, started_ns=0,
    )  # fmt: skip
    assert dec is not None and dec.quantity == D(40) and dec.at_market
    assert "last book before the deadline" in dec.why


def test_books_left_counts_the_books_up_to_the_deadline_in_market_time() -> None:
    assert books_left(0, DEADLINE, MINUTE) == 16
    assert books_left(14 * MINUTE + 1, DEADLINE, MINUTE) == 1
    assert books_left(0, DEADLINE, FOUR_HOURS) == 1
    assert books_left(0, None, MINUTE) is None and books_left(0, DEADLINE, None) is None


def test_the_unwind_speeds_up_when_the_price_moves_against_it() -> None:
    rules = SliceRules(depth_fraction=0.5, max_participation=0.1, adverse_move_bps=50.0)
    book = [(D(99), D(4))]

    def size(adverse: float, volatile: bool = False) -> Decimal:
        dec = next_slice(
            D(100), book, None, rules, now_ns=0, deadline_ns=None, adverse_bps=adverse,
            volatile=volatile,
        )  # fmt: skip
        assert dec is not None
        return dec.quantity

    assert size(0.0) == D(2)  # half the touch
    assert size(100.0) == D(6)  # 100 bps against: urgency 1 + 100 / 50 = 3
    assert size(0.0, volatile=True) == D(4)  # VOLATILE: × volatile_multiplier 2
    assert size(-300.0) == D(2)  # a move in the unwind's favour does not slow it below base
    assert adverse_move_bps(D(100), D(99)) == pytest.approx(100.0)
    assert adverse_move_bps(D(100), D(101)) == 0.0 and adverse_move_bps(None, D(1)) == 0.0
    # with the pace binding (1-minute books, 10 left, a thin touch), a fall raises the pace too
    paced = next_slice(
        D(10), [(D(99), D(1))], None, rules, now_ns=10 * MINUTE, deadline_ns=DEADLINE,
        interval_ns=MINUTE, adverse_bps=100.0,
    )  # fmt: skip
    assert paced is not None and paced.quantity == D(5)  # 10 × 3 / 6 books left


def test_a_falling_price_ends_the_unwind_sooner() -> None:
    flat = _run_unwind(D(40), MINUTE)
    falling = _run_unwind(D(40), MINUTE, [D(100) - D("0.5") * k for k in range(100)])
    assert falling[-1][0] < flat[-1][0] and len(falling) < len(flat)


@settings(max_examples=200, deadline=None)
@given(
    adverse=st.floats(0, 2_000),
    more=st.floats(0, 2_000),
    volatile=st.booleans(),
    remaining=st.decimals(D(1), D(1_000), places=8),
)
def test_urgency_never_shrinks_a_slice_as_the_move_against_it_grows(
    adverse: float, more: float, volatile: bool, remaining: Decimal
) -> None:
    rules = SliceRules()
    assert urgency(rules, adverse, volatile) >= 1

    def size(a: float) -> Decimal:
        dec = next_slice(
            remaining, [(D(99), D(3))], D(50), rules, now_ns=0, deadline_ns=DEADLINE,
            interval_ns=MINUTE, adverse_bps=a, volatile=volatile,
        )  # fmt: skip
        assert dec is not None
        return dec.quantity

    assert size(adverse) <= size(adverse + more) <= remaining


def test_the_book_tracks_the_interval_and_the_move_since_the_unwind_started() -> None:
    book = UnwindBook(SliceRules(), 900 * S, 0.05)

    def q(ts: int, mid: int) -> Quote:
        return Quote(
            ts=ts, product="BTC-USD", bid=D(mid) - D("0.5"), ask=D(mid) + D("0.5"),
            bid_size=D(4), ask_size=D(4),
        )  # fmt: skip

    book.on_quote(q(0, 1000))
    plan = UnwindPlan(
        ts=0, plan_id="p", level=L.FLATTEN, trigger="t", reason="r",
        targets=(UnwindTarget(product="BTC-USD", quantity=D(0), priority=1.0),),
        deadline_ns=DEADLINE, depth_fraction=0.5,
    )  # fmt: skip
    assert book.apply_plan(plan, {"BTC-USD": D(100)}, {"BTC-USD": D(1000)}, 0) == ["BTC-USD"]
    due = book.due("BTC-USD", D(100), q(0, 1000), 0)
    assert due is not None and due[1].quantity == D(2)  # interval unknown: half the touch
    book.sent(due[0], "c1", due[1], q(0, 1000), 0)
    book.on_fill("c1", D(2), D("999.5"), D("1.2"))
    report = book.on_close("c1", D(98), D(1000), "FILLED", 0)
    assert report is not None and report.fee == D("1.2")
    # shortfall with the fee: (1000 − (1999 − 1.2) / 2) / 1000 = 11 bps; slippage 5 bps
    assert report.shortfall_bps == pytest.approx(11.0) and report.slippage_bps == pytest.approx(5)
    book.on_quote(q(4 * 3600 * S, 990))  # 4 h later, 100 bps lower: past the deadline
    assert book.intervals["BTC-USD"] == 4 * 3600 * S
    due = book.due("BTC-USD", D(98), q(4 * 3600 * S, 990), 4 * 3600 * S)
    assert due is not None and due[1].quantity == D(98) and due[1].at_market


@settings(max_examples=300, deadline=None)
@given(
    remaining=st.decimals(D("0.00000001"), D(10_000), places=8),
    sizes=st.lists(st.decimals(D(0), D(500), places=8), min_size=1, max_size=5),
    volume=st.none() | st.decimals(D(0), D(100_000), places=8),
    fraction=st.floats(0.01, 1.0),
    participation=st.floats(0.01, 1.0),
    levels=st.integers(1, 5),
)
def test_a_slice_never_exceeds_the_remainder_the_depth_or_the_participation(
    remaining: Decimal,
    sizes: list[Decimal],
    volume: Decimal | None,
    fraction: float,
    participation: float,
    levels: int,
) -> None:
    rules = SliceRules(
        depth_fraction=fraction, max_participation=participation, depth_levels=levels
    )
    book = [(D(100) - i, s) for i, s in enumerate(sizes)]
    dec = next_slice(remaining, book, volume, rules, now_ns=0, deadline_ns=1)
    if dec is None:
        return
    assert 0 < dec.quantity <= remaining and not dec.at_market
    assert dec.quantity <= D(repr(fraction)) * sum((s for _, s in book[:levels]), D(0))
    if volume is not None and volume > 0:
        assert dec.quantity <= D(repr(participation)) * volume


# -- the queue -------------------------------------------------------------------------------


def _item(product: str, priority: float, **kw: object) -> UnwindItem:
    return UnwindItem(product, D(0), priority, "plan", "test", **kw)  # type: ignore[arg-type]


def test_urgent_items_go_first_and_survive_a_new_plan_with_their_progress() -> None:
    q = UnwindQueue()
    q.replace_plan([_item("B-USD", 9.0), _item("A-USD", 5.0)])  # the plan's order
    assert [i.product for i in q.active(1, 0)] == ["B-USD"]
    stop = q.push_urgent(_item("A-USD", 0.0))
    stop.slices = 3
    assert [i.product for i in q.ordered()] == ["A-USD", "B-USD"]
    assert [i.product for i in q.active(1, 0)] == ["A-USD", "B-USD"]  # urgent is extra
    q.replace_plan([_item("C-USD", 1.0)])
    assert [i.product for i in q.ordered()] == ["A-USD", "C-USD"]
    assert q.get("A-USD") is stop and stop.slices == 3


def test_past_the_deadline_every_item_is_active() -> None:
    q = UnwindQueue()
    q.replace_plan([_item(p, float(i), deadline_ns=100) for i, p in enumerate("ABCD")])
    assert len(q.active(1, 99)) == 1
    assert len(q.active(1, 100)) == 4


# -- monitors --------------------------------------------------------------------------------


def _report(equity: str, closed: int = 0, rejected: int = 0, latency_s: float = 0) -> MonitorReport:
    return MonitorReport(
        equity=D(equity),
        positions=(ExposureView(product="BTC-USD", quantity=D(1), mid=D(100)),),
        risk_level="NORMAL",
        closed=closed,
        rejected=rejected,
        latency_ns=int(latency_s * S),
    )


def test_the_drawdown_monitor_keeps_its_peak_and_breaches_once_per_peak() -> None:
    m = Monitors(MonitorConfig(max_drawdown=0.10, max_error_rate=0, max_latency_s=0))
    assert m.observe(_report("100")) == []
    (sig,) = m.observe(_report("89"))
    assert (sig.name, sig.kind) == ("drawdown", "breach") and "11.00%" in sig.reason
    assert m.observe(_report("85")) == []  # still judged from 100, but one breach per peak
    m.reset()  # a recovery keeps the peak
    assert m.peak == D(100)
    assert m.observe(_report("95")) == []
    assert m.observe(_report("101")) == []  # a new peak re-arms the monitor
    (again,) = m.observe(_report("90"))  # 10.9 % below 101, not measured from the low of 85
    assert "10.89%" in again.reason and "peak 101.00" in again.reason


def test_the_error_rate_monitor_needs_a_full_window() -> None:
    m = Monitors(MonitorConfig(max_drawdown=0, max_error_rate=0.5, error_window=4, max_latency_s=0))
    assert m.observe(_report("100", closed=2, rejected=2)) == []  # only 2 of 4 orders seen
    (sig,) = m.observe(_report("100", closed=2, rejected=0))
    assert sig.name == "error_rate" and "2 of the last 4" in sig.reason
    assert m.observe(_report("100", closed=4, rejected=1)) == []  # window cleared


def test_the_latency_monitor_is_a_condition() -> None:
    m = Monitors(MonitorConfig(max_drawdown=0, max_error_rate=0, max_latency_s=5))
    (slow,) = m.observe(_report("100", closed=1, latency_s=9))
    (fast,) = m.observe(_report("100", closed=1, latency_s=1))
    (stuck,) = m.observe(_report("100", latency_s=6))  # an order open for 6 s, none closed
    (idle,) = m.observe(_report("100"))  # nothing open, nothing closed: clears
    assert (slow.kind, slow.active, fast.active) == ("condition", True, False)
    assert (stuck.active, idle.active) == (True, False)
    assert Monitors(MonitorConfig()).observe(_report("100", latency_s=99)) == []  # off


# -- the response level ----------------------------------------------------------------------


def test_levels_only_rise_on_triggers_and_recover_after_the_cool_down() -> None:
    p = Programme(recovery=RecoveryConfig(cooldown_s=60))
    t = p.condition(0, "risk_reducing", L.REDUCE, "drawdown")
    assert t is not None and (t.previous, t.level) == (L.NORMAL, L.REDUCE)
    assert p.condition(1, "feed_stale", L.NO_ENTRIES, "stale") is None  # lower: no change
    p.condition(2, "feed_stale", None)
    assert p.recovery_check(3 * S, True) is None and "risk_reducing" in p.blocked_by
    p.condition(4 * S, "risk_reducing", None)
    assert p.recovery_check(5 * S, False, "volatile regime") is None
    assert p.recovery_check(10 * S, True) is None  # the cool-down starts
    assert p.breach(20 * S, "drawdown", L.NORMAL, "") is None  # a breach restarts it
    assert p.recovery_check(30 * S, True) is None
    assert p.recovery_check(89 * S, True) is None
    t = p.recovery_check(90 * S, True)
    assert t is not None and t.recovered and t.level is L.NORMAL and p.recoveries == 1


def test_operator_and_fault_causes_are_held_until_resume() -> None:
    p = Programme(recovery=RecoveryConfig(cooldown_s=0))
    t = p.operator(0, "flatten", "desk says so", L.FLATTEN)
    assert t is not None and t.level is L.FLATTEN and p.held
    assert p.recovery_check(10**12, True) is None and "held" in p.blocked_by
    t = p.operator(1, "resume", "", L.FLATTEN)
    assert t is not None and t.level is L.NORMAL and not p.held and not t.recovered
    assert p.breach(2, "error_rate", L.NO_ENTRIES, "errors") is not None and p.held
    hold = Programme()
    t = hold.operator(0, "hold", "", L.FLATTEN)
    assert t is not None and t.level is L.NO_ENTRIES and hold.held
    with pytest.raises(ValueError):
        hold.operator(0, "panic", "", L.FLATTEN)


def test_recovery_can_be_switched_off() -> None:
    p = Programme(recovery=RecoveryConfig(automatic=False, cooldown_s=0))
    p.breach(0, "drawdown", L.FLATTEN, "dd")
    assert p.recovery_check(10**12, True) is None


# -- wind-down by risk contribution with the book's correlation ------------------------------


def test_book_correlation_worked_example_and_its_effect_on_the_wind_down_order() -> None:
    values = {"BTC-USD": 8000.0, "ETH-USD": 6000.0, "SOL-USD": 2000.0}
    vols = {"BTC-USD": 0.02, "ETH-USD": 0.03, "SOL-USD": 0.05}
    rho = {("BTC-USD", "ETH-USD"): 0.8, ("BTC-USD", "SOL-USD"): 0.2, ("SOL-USD", "ETH-USD"): 0.5}
    book = book_correlations(values, vols, rho)
    assert book["BTC-USD"] == pytest.approx(164 / 245.8, abs=1e-3)
    assert book["ETH-USD"] > book["BTC-USD"] > book["SOL-USD"] > 0
    assert book_correlations({"BTC-USD": 1.0}, {"BTC-USD": 0.02}, {}) == {"BTC-USD": 0.0}
    assert book_correlations({"BTC-USD": 1.0}, {}, {}) == {}  # no volatility: no answer
    # the ordering uses V·σ·ρ: ETH (180 × 0.87) before BTC (160 × 0.67) before SOL (100 × 0.38)
    exposures = [
        Exposure(p, D(1), D(str(v)), volatility=vols[p], correlation=book[p])
        for p, v in values.items()
    ]
    assert [e.product for e in order_exposures(exposures)] == ["ETH-USD", "BTC-USD", "SOL-USD"]


@settings(max_examples=200, deadline=None, database=None)
@given(
    values=st.lists(st.floats(0.0, 1e6, allow_nan=False), min_size=1, max_size=4),
    vols=st.lists(st.floats(0.0, 0.2, allow_nan=False), min_size=4, max_size=4),
    pairs=st.lists(st.floats(-1.0, 1.0, allow_nan=False), min_size=6, max_size=6),
)
def test_book_correlations_are_bounded(
    values: list[float], vols: list[float], pairs: list[float]
) -> None:
    names = ["A", "B", "C", "D"][: len(values)]
    keys = [(a, b) for i, a in enumerate("ABCD") for b in "ABCD"[i + 1 :]]
    book = book_correlations(
        dict(zip(names, values, strict=True)),
        dict(zip("ABCD", vols, strict=True)),
        dict(zip(keys, pairs, strict=True)),
    )
    assert all(-1.0 <= r <= 1.0 for r in book.values())
    assert set(book) <= set(names)


def test_the_monitor_report_carries_each_positions_correlation_with_the_rest_of_the_book() -> None:
    params = RiskParameters(
        ts=0,
        version=3,
        level=RiskLevel.NORMAL,
        max_weight=(("BTC-USD", 0.1), ("ETH-USD", 0.1), ("LTC-USD", 0.1)),
        stop_loss=0.05,
        min_position_size=0.02,
        size_multiplier=1.0,
        volatility=(("BTC-USD", 0.02), ("ETH-USD", 0.03), ("LTC-USD", 0.04)),
        correlation=(("BTC-USD", 0.5), ("ETH-USD", 0.5), ("LTC-USD", 0.5)),
        pairs=(
            ("BTC-USD", "ETH-USD", 0.9),
            ("BTC-USD", "LTC-USD", 0.1),
            ("ETH-USD", "LTC-USD", 0.1),
        ),
    )
    holdings = {"BTC-USD": D(1), "ETH-USD": D(20)}  # LTC not held
    marks = {"BTC-USD": D(7000), "ETH-USD": D(500), "LTC-USD": D(100)}
    report = monitor_report(
        0, D(100_000), holdings, marks, risk_figures(params), closed=0, rejected=0, latency_ns=0
    )
    corr = dict(report.correlation)
    assert corr["BTC-USD"] == pytest.approx(0.9) and corr["ETH-USD"] == pytest.approx(0.9)
    assert corr["LTC-USD"] == 0.5  # not held: the snapshot's average
