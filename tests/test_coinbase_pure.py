"""Pure parts of the Coinbase feed on a virtual clock: book, sequence tracking, backoff schedule,
rate limit, circuit breaker, conflation, raw-frame buffer, shards and config."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from cryptoj.adapters.coinbase.book import OrderBook, book_digest
from cryptoj.adapters.coinbase.buffer import RawFrameBuffer, read_frames, segments
from cryptoj.adapters.coinbase.circuit import CLOSED, HALF_OPEN, OPEN, CircuitBreaker
from cryptoj.adapters.coinbase.conflate import Conflator, FeedEvent, QuoteWindow
from cryptoj.adapters.coinbase.fake.sim import MarketSim, clean
from cryptoj.adapters.coinbase.policy import RateLimiter, ReconnectPolicy, StateHistory
from cryptoj.adapters.coinbase.schemas import L2Update
from cryptoj.adapters.coinbase.sequence import Gap, SequenceTracker
from cryptoj.adapters.coinbase.stats import LatencyStats
from cryptoj.config import Config, validate
from cryptoj.config.coinbase import CoinbaseFeedConfig, level2_shards
from cryptoj.marketdata import load_events
from cryptoj.models.market import Bar, FeedStatus, Quote, Trade
from cryptoj.supervision.spec import Backoff

S = 1_000_000_000
MS = 1_000_000
D = Decimal


# -- book --------------------------------------------------------------------------------------


def test_book_best_prices_survive_deleting_the_best_level() -> None:
    b = OrderBook("X")
    for p in ("10", "11", "12"):
        b.apply("bid", D(p), D(1))
    for p in ("13", "14"):
        b.apply("offer", D(p), D(2))
    assert b.top() == (D(12), D(1), D(13), D(2))
    b.apply("bid", D(12), D(0))
    b.apply("offer", D(13), D("0.000"))
    assert b.top() == (D(11), D(1), D(14), D(2))
    b.apply("bid", D("11.5"), D(3))  # better than the (recomputed) best
    assert b.best_bid() == D("11.5")
    assert b.apply("middle", D(1), D(1)) is False
    assert b.apply("ask", D(15), D(1)) and b.apply("buy", D(9), D(1))  # aliases


def test_book_crossed_gives_no_top_and_digest_ignores_formatting() -> None:
    b = OrderBook("X")
    b.apply("bid", D(10), D(1))
    b.apply("offer", D(9), D(1))
    assert b.crossed() and b.top() is None
    assert book_digest({D("1.50"): D("2.0")}, {}) == book_digest({D("1.5"): D(2)}, {})
    assert book_digest({D(1): D(2)}, {}) != book_digest({}, {D(1): D(2)})


# -- sequence ----------------------------------------------------------------------------------


def test_sequence_in_order_duplicates_and_first_baseline() -> None:
    t: SequenceTracker[str] = SequenceTracker(window=4, hold_ns=100 * MS)
    assert t.push(5, "a", 0) == ["a"]  # first number seen is the baseline
    assert t.push(6, "b", 0) == ["b"]
    assert t.push(6, "b again", 0) == [] and t.push(2, "old", 0) == []
    assert t.dropped == 2 and t.gaps == 0


def test_sequence_reorders_inside_the_window() -> None:
    t: SequenceTracker[str] = SequenceTracker(window=4, hold_ns=100 * MS)
    t.push(0, "a", 0)
    assert t.push(2, "c", 1) == []  # held
    assert t.push(1, "b", 2) == ["b", "c"]
    assert t.reordered == 1 and t.gaps == 0


def test_sequence_gap_when_window_overflows_marker_comes_first() -> None:
    t: SequenceTracker[str] = SequenceTracker(window=2, hold_ns=S)
    t.push(0, "a", 0)
    assert t.push(2, "c", 0) == [] and t.push(3, "d", 0) == []
    assert t.push(4, "e", 0) == [Gap(1, 1), "c", "d", "e"]
    assert t.gaps == 1 and t.missing == 1
    assert t.push(1, "late", 0) == []  # arrives after being declared lost: dropped


def test_sequence_gap_when_hold_time_expires() -> None:
    t: SequenceTracker[str] = SequenceTracker(window=8, hold_ns=100 * MS)
    t.push(10, "a", 0)
    t.push(13, "d", 5 * MS)
    assert t.expire(50 * MS) == []
    assert t.expire(105 * MS) == [Gap(11, 12), "d"]
    assert t.missing == 2 and t.expected == 14


def test_sequence_window_zero_reports_every_jump_at_once() -> None:
    t: SequenceTracker[str] = SequenceTracker(window=0, hold_ns=0)
    t.push(0, "a", 0)
    assert t.push(2, "c", 0) == [Gap(1, 1), "c"]
    t.reset()
    assert t.push(0, "new connection", 0) == ["new connection"]


# -- backoff, rate limit, history --------------------------------------------------------------


def policy(**kw: int) -> ReconnectPolicy:
    return ReconnectPolicy(Backoff(S // 2, 8 * S, 0.2), **kw)


def test_backoff_schedule_doubles_up_to_the_cap_with_jitter_bounds() -> None:
    p = policy()
    mid = [p.down(0, 0.5) for _ in range(7)]  # unit_random 0.5 = no jitter
    assert mid == [S // 2, S, 2 * S, 4 * S, 8 * S, 8 * S, 8 * S]
    lo, hi = policy(), policy()
    assert lo.down(0, 0.0) == int(0.5 * S * 0.8)
    assert (hi.down(0, 0.999999) or 0) < int(0.5 * S * 1.2)
    assert p.bound_ns(0) == int(0.5 * S * 1.2) and p.bound_ns(10) == int(8 * S * 1.2)


def test_backoff_resets_after_a_stable_connection_only() -> None:
    p = policy(reset_after_ns=30 * S)
    p.down(0, 0.5)
    p.down(0, 0.5)
    p.up(10 * S)
    assert p.down(20 * S, 0.5) == 2 * S  # up for 10 s: no reset
    p.up(100 * S)
    assert p.down(131 * S, 0.5) == S // 2  # up for 31 s: back to the minimum


def test_max_retries_gives_up() -> None:
    p = policy(max_retries=2)
    assert p.down(0, 0.5) is not None and p.down(0, 0.5) is not None
    assert p.down(0, 0.5) is None


def test_connection_rate_limit_is_eight_per_second() -> None:
    r = RateLimiter(8.0)
    waits = [r.reserve(0) for _ in range(10)]
    assert waits[:8] == [0] * 8 and waits[8] == S // 8 and waits[9] == 2 * S // 8
    assert RateLimiter(8.0).reserve(5 * S) == 0


def test_state_history_records_changes_and_is_bounded() -> None:
    h = StateHistory(maxlen=3)
    assert h.record(1, "cb0", "connecting", "u")
    assert not h.record(2, "cb0", "connecting", "u")  # same state and reason
    for i, st in enumerate(["live", "disconnected", "backoff"]):
        h.record(3 + i, "cb0", st)
    assert [e["state"] for e in h.as_list()] == ["live", "disconnected", "backoff"]
    assert h.current["cb0"].state == "backoff" and h.counts["connecting"] == 1


# -- circuit breaker ---------------------------------------------------------------------------


def test_circuit_opens_at_threshold_and_probes_half_open() -> None:
    c = CircuitBreaker(3, open_ns=10 * S, open_max_ns=30 * S)
    for t in range(2):
        assert c.allow(t)
        c.failure(t, "refused")
    assert c.state == CLOSED
    c.failure(2, "refused")
    assert c.state == OPEN and c.retry_at() == 2 + 10 * S
    assert not c.allow(5 * S) and not c.would_allow(5 * S)
    assert c.would_allow(11 * S) and c.state == OPEN  # would_allow does not change state
    assert c.allow(11 * S) and c.state == HALF_OPEN
    assert not c.allow(11 * S)  # one probe at a time
    c.failure(12 * S, "still down")
    assert c.state == OPEN and c.open_ns == 20 * S  # doubled
    assert c.allow(32 * S)
    c.failure(32 * S)
    assert c.open_ns == 30 * S  # capped
    assert c.allow(62 * S)
    c.success(63 * S)
    assert c.state == CLOSED and c.open_ns == 10 * S and c.failures == 0
    assert [t.state for t in c.transitions] == [
        OPEN,
        HALF_OPEN,
        OPEN,
        HALF_OPEN,
        OPEN,
        HALF_OPEN,
        CLOSED,
    ]


def test_circuit_success_resets_the_failure_count() -> None:
    c = CircuitBreaker(2, open_ns=S)
    c.failure(0)
    c.success(1)
    c.failure(2)
    assert c.state == CLOSED


# -- conflation --------------------------------------------------------------------------------


def q(product: str, bid: int, ts: int = 0) -> Quote:
    return Quote(ts=ts, product=product, bid=D(bid), bid_size=D(1), ask=D(bid + 1), ask_size=D(1))


def tr(product: str, tid: str) -> Trade:
    return Trade(product=product, price=D(1), quantity=D(1), taker_side="BUY", trade_id=tid)


def test_quote_window_keeps_the_newest_quote_per_product_and_never_holds_trades() -> None:
    w = QuoteWindow(50 * MS)
    assert w.push([q("A", 1)], 0) == [q("A", 1)]  # first in its window: at once
    assert w.push([q("A", 2), q("A", 3), q("B", 1)], 10 * MS) == [q("B", 1)]
    assert w.conflated == 1
    assert w.due(40 * MS) == []
    assert w.due(50 * MS) == [q("A", 3)]
    assert w.push([q("A", 4)], 60 * MS) == []  # A's window restarted at 50 ms
    w2 = QuoteWindow(50 * MS)
    w2.push([q("A", 1)], 0)
    out = w2.push([q("A", 2), tr("A", "t1"), tr("B", "t2")], 1 * MS)
    assert out == [q("A", 2), tr("A", "t1"), tr("B", "t2")]  # the held quote goes before its trade
    stale = FeedStatus(products=("A",), state="stale")
    w2.push([q("A", 5)], 2 * MS)
    assert w2.push([stale], 3 * MS) == [q("A", 5), stale]
    assert QuoteWindow(0).push([q("A", 1), q("A", 2)], 0) == [q("A", 1), q("A", 2)]


def test_quote_window_merges_a_products_trades_only_when_read_late() -> None:
    def t(product: str, i: int) -> Trade:
        return Trade(ts=i, product=product, price=D(100 + i), quantity=D(i),
                     taker_side="BUY" if i % 2 else "SELL", trade_id=str(i))  # fmt: skip

    batch: list[FeedEvent] = [t("A", 1), t("B", 2), q("A", 5), t("A", 3), t("A", 4)]
    w = QuoteWindow(0, merge_lag_ns=250 * MS)
    assert w.push(batch, 0, lag_ns=250 * MS) == batch  # not later than the bound: as they came
    out = w.push(batch, 0, lag_ns=251 * MS)
    merged = Trade(ts=4, product="A", price=D(104), quantity=D(8), taker_side="SELL", trade_id="4")
    assert out == [t("B", 2), q("A", 5), merged] and w.merged == 2  # the newest's place
    stale = FeedStatus(products=("A",), state="stale")
    out = w.push([t("A", 1), stale, t("A", 3), t("A", 4)], 0, lag_ns=S)
    assert out == [t("A", 1), stale, Trade(ts=4, product="A", price=D(104), quantity=D(7),
                                           taker_side="SELL", trade_id="4")]  # fmt: skip
    assert QuoteWindow(0).push(batch, 0, lag_ns=10 * S) == batch  # merge_lag_ns 0: never
    # with a quote window: the held quote of A is released before A's merged trade
    w2 = QuoteWindow(50 * MS, merge_lag_ns=MS)
    w2.push([q("A", 1)], 0)
    assert w2.push([q("A", 2), t("A", 1), t("A", 3)], 10 * MS, lag_ns=S) == [
        q("A", 2), Trade(ts=3, product="A", price=D(103), quantity=D(4), taker_side="BUY",
                         trade_id="3"),
    ]  # fmt: skip


def test_conflator_backlog_supersedes_pending_quotes_and_keeps_order() -> None:
    c = Conflator(max_events=3)
    c.put(q("A", 1))
    c.put(tr("A", "1"))
    c.put(q("A", 2))
    assert c.conflated == 1 and len(c) == 2  # the first quote is gone
    c.put(q("B", 1))
    c.put(tr("C", "3"))  # full, but C's first trade: accepted
    c.put(q("A", 3))  # superseding takes no extra room
    c.put(FeedStatus(products=("C",), state="stale"))  # statuses always accepted
    out = c.take()
    assert [type(e).__name__ for e in out] == ["Trade", "Quote", "Trade", "Quote", "FeedStatus"]
    assert [e.bid for e in out if isinstance(e, Quote)] == [D(1), D(3)]  # B's, then A's newest
    assert len(c) == 0 and c.merged == 0
    plain = Conflator(conflate=False)
    plain.put(q("A", 1))
    plain.put(q("A", 2))
    assert len(plain.take()) == 2


def test_conflator_merges_trades_beyond_the_bound_and_loses_no_volume() -> None:
    def t(product: str, i: int) -> Trade:  # time, price, size and side differ per trade
        side = "BUY" if i % 2 else "SELL"
        return Trade(ts=i, product=product, price=D(100 + i), quantity=D(i) / 10,
                     taker_side=side, trade_id=str(i))  # fmt: skip

    c = Conflator(max_events=2)
    c.put(t("A", 1))
    c.put(t("A", 2))  # below the bound: every trade as it came
    assert len(c) == 2 and c.merged == 0
    c.put(q("B", 1))
    c.put(t("A", 3))  # beyond: merged with the pending "2", which leaves its place
    c.put(t("B", 4))  # B's first trade: accepted
    c.put(t("A", 6))
    assert c.merged == 2 and len(c) == 5 - 1
    out = c.take()
    assert [(type(e).__name__, getattr(e, "trade_id", "")) for e in out] == [
        ("Trade", "1"), ("Quote", ""), ("Trade", "4"), ("Trade", "6"),
    ]  # fmt: skip
    merged = out[-1]
    assert merged == Trade(ts=6, product="A", price=D(106), quantity=D("1.1"), taker_side="SELL",
                           trade_id="6")  # fmt: skip  # the newest's, with 0.2 + 0.3 + 0.6
    volume = sum((e.quantity for e in out if isinstance(e, Trade)), D(0))
    assert volume == D("0.1") + D("0.2") + D("0.3") + D("0.4") + D("0.6")  # nothing lost
    # without conflation, quotes beyond the bound supersede the pending one too
    plain = Conflator(conflate=False, max_events=1)
    for i in range(1, 5):
        plain.put(q("A", i))
    assert [e.bid for e in plain.take() if isinstance(e, Quote)] == [D(4)] and plain.conflated == 3


# -- raw frame buffer --------------------------------------------------------------------------


def test_raw_buffer_round_trip_rotation_and_bound(tmp_path: Path) -> None:
    buf = RawFrameBuffer(tmp_path, max_bytes=3000, segment_bytes=1000)
    for i in range(40):
        buf.append(i, "cb0", b'{"n":%d,"pad":"%s"}' % (i, b"x" * 80))
    buf.close()
    files = segments(tmp_path)
    assert 2 <= len(files) <= 4 and sum(f.stat().st_size for f in files) <= 3000 + 1000
    got = list(read_frames(tmp_path))
    assert got and got[-1].recv_ns == 39 and got[-1].connection == "cb0"
    assert [r.recv_ns for r in got] == list(range(got[0].recv_ns, 40))  # oldest deleted, in order
    with files[-1].open("ab") as f:
        f.write(b"\x01\x02\x03")  # a truncated record after a crash
    assert list(read_frames(tmp_path))[-1].recv_ns == 39


# -- config and shards -------------------------------------------------------------------------


def test_latency_stats_quantiles_of_recent_samples_and_cumulative_buckets() -> None:
    st = LatencyStats(reservoir=4)
    assert st.as_dict()["p50_s"] is None and st.buckets()["+Inf"] == 0
    for ms in (1, 3, 30, 700, -2):  # -2: exchange clock ahead of ours
        st.add(ms * MS)
    d = st.as_dict()
    assert d["count"] == 5 and d["recent"] == 4  # the reservoir keeps the last 4
    assert d["p50_s"] == 0.03 and d["max_s"] == 0.7 and d["last_s"] == -0.002
    assert d["sum_s"] == pytest.approx(0.732)
    b = st.buckets()
    assert list(b)[-1] == "+Inf" and b["+Inf"] == 5
    assert (b["0.001"], b["0.005"], b["0.025"], b["0.05"], b["0.5"], b["1.0"]) == (2, 3, 3, 4, 4, 5)
    assert list(b.values()) == sorted(b.values())  # cumulative


def test_level2_shards_at_most_fifteen_per_connection() -> None:
    products = tuple(f"P{i:02d}-USD" for i in range(32))
    shards = level2_shards(products + products[:3], 15)
    assert [len(s) for s in shards] == [15, 15, 2]
    assert level2_shards((), 15) == []
    with pytest.raises(ValueError):
        level2_shards(products, 0)


def test_feed_config_validates_every_problem() -> None:
    problems = validate(
        {"ws_urls": ["http://x"], "max_products_per_connection": 32, "channels": ["heartbeat"]},
        CoinbaseFeedConfig,
        "feed.coinbase",
    )
    assert len(problems) == 3
    assert any(p.startswith("feed.coinbase.max_products_per_connection") for p in problems)
    assert validate({}, CoinbaseFeedConfig, "feed.coinbase") == []


# -- the example config and the fake's market model --------------------------------------------


def test_example_config_feed_section_is_valid() -> None:
    raw = yaml.safe_load(
        (Path(__file__).parents[1] / "examples" / "fake-exchange.yaml").read_text()
    )
    section = raw["feed"]["coinbase"]
    assert validate(section, CoinbaseFeedConfig, "feed.coinbase") == []
    assert set(section) == set(CoinbaseFeedConfig.__struct_fields__)  # every field documented
    rest = {k: v for k, v in raw.items() if k != "feed"}
    assert validate(rest, Config, "") == []


def test_fake_market_top_of_book_is_the_recorded_quote_and_trades_the_bar_volume() -> None:
    batches = load_events("coinbase-1m-2018-04", products=["ETH-USD"])
    sim = MarketSim(batches)
    recorded = [e for b in batches for e in b if isinstance(e, Quote)]
    bars = [e for b in batches for e in b if isinstance(e, Bar)]
    book = OrderBook("ETH-USD")
    book.apply_levels(_levels(sim.snapshot("ETH-USD")))
    assert book.top() == (  # sizes as clean decimals, as Coinbase sends them (no float noise)
        recorded[0].bid,
        clean(recorded[0].bid_size),
        recorded[0].ask,
        clean(recorded[0].ask_size),
    )
    assert book.digest() == sim.digest("ETH-USD")
    volume = D(0)
    for i in range(1, 200):
        step = sim.advance()["ETH-USD"]
        volume += sum((D(size) for _, _, size, _ in step.trades), D(0))
        book.apply_levels(_levels(step.l2))
        top = book.top()
        assert top is not None and (top[0], top[2]) == (recorded[i].bid, recorded[i].ask)
        assert book.digest() == sim.digest("ETH-USD")
    assert volume == sum((b.volume for b in bars[1:200]), D(0))


def _levels(
    levels: tuple[tuple[str, str, str], ...] | list[tuple[str, str, str]],
) -> list[L2Update]:
    return [L2Update(side=s, event_time="t", price_level=p, new_quantity=q) for s, p, q in levels]
