"""No order is decided on a price older than the stale threshold: the whole daemon (paper
venue, manual strategy) against the test's own hostile websocket server on 127.0.0.1.

For each hostile input the test changes the operator's BTC target while BTC is stale (so an
order is owed), checks that none is decided while it stays stale, releases the resync and
requires the owed order to be decided within a bounded wait, sized on a quote the server sent
after the release. The journal then says so for every decision
(:func:`cryptoj.portfolio.data_age.stale_decisions` with the stale threshold); ``/ready``
reports each stale period and the counters what was dropped.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cryptoj.daemon import Daemon
from cryptoj.journal import Journal
from cryptoj.portfolio.data_age import Decision, decision_ages, stale_decisions
from tests.hostile_ws import HostileServer, feed_settings, good_ticker, now_text
from tests.test_coinbase_fake import wait_until
from tests.test_ops import get_json, poll, request, running

PRODUCTS = ["BTC-USD", "ETH-USD"]
STALE_S = 1.0  # the stale threshold: heartbeat silence → stale; older quotes are not traded
DEADLINE_S = 20.0
#: the operator's BTC target alternates, so every round owes an order: a buy, then a sell (at
#: risk level CAUTION, where every stale period leaves the RiskActor for its 30 min cool-down,
#: they are halved: 0.04 and 0.01 of equity, further apart than the drift threshold)
WEIGHTS = (0.08, 0.02)
CAUTION = 0.5  # the size multiplier at CAUTION


def l2(price: str, size: str) -> Callable[[HostileServer], None]:
    def send(s: HostileServer) -> None:
        level = {"side": "bid", "event_time": now_text(), "price_level": price,
                 "new_quantity": size}  # fmt: skip
        s.send_frame("l2_data", [{"type": "update", "product_id": "BTC-USD", "updates": [level]}])

    return send


def trade(price: str, size: str) -> Callable[[HostileServer], None]:
    def send(s: HostileServer) -> None:
        t = {"product_id": "BTC-USD", "trade_id": f"bad-{price}-{size}", "price": price,
             "size": size, "time": now_text(), "side": "BUY"}  # fmt: skip
        s.send_frame("market_trades", [{"type": "update", "trades": [t]}])

    return send


def ticker(**bad: str) -> Callable[[HostileServer], None]:
    item = {**good_ticker("BTC-USD"), **bad}
    return lambda s: s.send_frame("ticker", [{"type": "update", "tickers": [item]}])


def raw(data: bytes) -> Callable[[HostileServer], None]:
    return lambda s: s.send_raw(data)


def flood(s: HostileServer) -> None:
    for i in range(2000):
        l2("NaN", str(i))(s)


#: (name, what the server sends, the drop reason counted, how many)
CASES: list[tuple[str, Callable[[HostileServer], None], str, int]] = [
    ("l2 NaN price", l2("NaN", "1"), "nonfinite_price", 1),
    ("l2 sNaN price", l2("sNaN", "1"), "nonfinite_price", 1),
    ("l2 NaN size", l2("99.5", "NaN"), "nonfinite_size", 1),
    ("l2 sNaN size", l2("99.5", "sNaN"), "nonfinite_size", 1),
    ("l2 negative size", l2("99.5", "-5"), "negative_size", 1),
    ("crossed book", l2("1000000", "1"), "crossed_book", 1),
    ("trade NaN price", trade("NaN", "0.1"), "nonfinite_price", 1),
    ("trade sNaN price", trade("sNaN", "0.1"), "nonfinite_price", 1),
    ("trade NaN size", trade("100", "NaN"), "nonfinite_size", 1),
    ("trade negative size", trade("100", "-5"), "negative_size", 1),
    ("100k-deep object", raw(b'{"a":' * 100_000 + b"1" + b"}" * 100_000), "undecodable", 1),
    ("10 MB frame", raw(b'{"channel":"l2_data","pad":"' + b"x" * (10 << 20) + b'"}'),
     "oversize", 1),
    ("flood of 2,000 bad frames", flood, "nonfinite_price", 2000),
]  # fmt: skip
#: with tickers giving the quotes (no level2 channel)
TICKER_CASES: list[tuple[str, Callable[[HostileServer], None], str, int]] = [
    ("ticker NaN bid", ticker(best_bid="NaN"), "nonfinite_price", 1),
    ("ticker sNaN ask", ticker(best_ask="sNaN"), "nonfinite_price", 1),
    ("ticker NaN size", ticker(best_bid_quantity="NaN"), "nonfinite_size", 1),
    ("ticker negative size", ticker(best_ask_quantity="-5"), "negative_size", 1),
    ("ticker crossed", ticker(best_bid="1000000"), "crossed_book", 1),
]


class Live:
    """The running daemon, its ops port and its journal."""

    def __init__(self, daemon: Daemon, journal: Path) -> None:
        self.daemon = daemon
        self.journal_path = journal
        assert daemon.endpoint is not None
        self.port = daemon.endpoint.port

    def feed(self) -> dict[str, Any]:
        return dict(get_json(self.port, "/status")[1]["feed"])

    def ready(self) -> tuple[int, dict[str, Any]]:
        code, body = get_json(self.port, "/ready")
        return code, body["checks"]["feed"]

    def target(self, weight: float) -> None:
        body = {"product": "BTC-USD", "weight": weight, "reason": "test"}
        code, _, text = request(self.port, "/control/target", method="POST", body=body)
        assert code == 202, text

    def intents(self) -> list[dict[str, Any]]:
        journal = Journal(str(self.journal_path))
        try:
            return [i for i in journal.intents() if i["product"] == "BTC-USD"]
        finally:
            journal.close()

    def plan_for(self, target: float, since: int) -> Decision | None:
        """The first BTC plan decided at or after ``since`` with this target weight."""
        journal = Journal(str(self.journal_path))
        try:
            steps = [r for r in journal.txn_steps() if r["step"] == "planned"]
            ages = {(d.txn_id, d.product): d for d in decision_ages(journal)}
        finally:
            journal.close()
        for r in steps:
            detail = json.loads(r["detail"])
            t = detail["targets"].get("BTC-USD")
            if r["ts"] >= since and t is not None and abs(t - target) < 1e-6:
                return ages[(r["txn_id"], "BTC-USD")]
        return None

    def explain(self) -> str:
        """What the journal holds about BTC (when an owed order never came)."""
        journal = Journal(str(self.journal_path))
        try:
            recent = [(i["side"], i["quantity"], i["status"], i["ts"]) for i in self.intents()]
            lines = [f"intents: {recent[-4:]}"]
            lines += [
                f"step {r['txn_id']} {r['step']} {r['state']} {r['detail'][:300]}"
                for r in journal.txn_steps()[-6:]
            ]
            lines += [
                f"event {e['actor']} {e['kind']} {e['detail'][:200]}" for e in journal.events()[-8:]
            ]
            lines += [f"position {journal.position_history()[-1:]}"]
        finally:
            journal.close()
        return "\n".join(lines)

    def audit(self) -> tuple[list[str], list[Any]]:
        journal = Journal(str(self.journal_path))
        try:
            return stale_decisions(journal, int(STALE_S * 1e9)), decision_ages(journal)
        finally:
            journal.close()


@pytest.fixture
def live(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Live, HostileServer]]:
    """The daemon on the hostile server; ``request.param``: the feed's channels."""
    server = HostileServer(market_s=0.05).start()
    feed = {
        "source": "coinbase",
        "products": PRODUCTS,
        "tick_bar_size": 4,
        "coinbase": feed_settings(
            server,
            auth="never",
            channels=list(request.param),
            heartbeat_timeout_s=STALE_S,
            drop_log_interval_s=600.0,
        ),
    }
    sections = {
        "feed": feed,
        "strategy": {"kind": "manual"},
        "paper": {"starting_cash": 100.0},
        # the operator's weight as it is (no cost band, no minimum size to fall under)
        "portfolio": {"weighting": "signal", "quote_max_age_s": STALE_S, "cost_band_multiple": 0.0},
        "risk": {"min_position_size": 0.0},
        "shutdown": {"triggers": {"feed_stale": "normal"}},
    }
    try:
        with running(tmp_path, sections=sections) as r:
            yield Live(r.daemon, tmp_path / "journal.sqlite"), server
        assert r.result.get("code") == 0
    finally:
        server.stop()


def settled(lv: Live) -> bool:
    """Every BTC intent closed (the next decision is not held by one in flight)."""
    return all(i["status"] != "open" for i in lv.intents())


def hostile_round(
    lv: Live, server: HostileServer, send: Callable[[HostileServer], None], reason: str,
    count: int, weight: float,
) -> dict[str, Any]:  # fmt: skip
    """BTC stale → a new target owed → nothing decided while stale → release → decided on a
    quote sent after the release. Returns what was observed."""
    poll(lambda: settled(lv), "the last BTC order closed", DEADLINE_S)
    dropped0 = lv.feed()["dropped"].get(reason, 0)
    server.hold_snapshots = True
    send(server)
    poll(lambda: "BTC-USD" in lv.feed()["stale_products"], "BTC stale", DEADLINE_S)
    _, check = poll(lambda: (r := lv.ready())[0] == 503 and r, "/ready 503", DEADLINE_S)
    assert check["detail"] == "stale", check
    poll(
        lambda: any(h["event"] == "stale" and h["source"] == "actor"
                    for h in lv.feed()["history"][-20:]),
        "the FeedActor forwarded the stale status", DEADLINE_S,
    )  # fmt: skip
    before = len(lv.intents())  # counted once the portfolio has the stale status
    lv.target(weight)  # an order is owed from now on; BTC is stale, so not yet
    assert not wait_until(lambda: len(lv.intents()) > before, 0.3), "decided while stale"
    st = lv.feed()
    assert st["dropped"][reason] - dropped0 == count, st["dropped"]
    assert st["thread_crashes"] == 0 and "BTC-USD" in st["stale_products"]
    released = time.time_ns()
    server.release()
    poll(lambda: lv.ready()[1]["ok"], "ready again after the resync", DEADLINE_S)
    wanted = weight * CAUTION
    assert wait_until(lambda: lv.plan_for(wanted, released) is not None, DEADLINE_S), lv.explain()
    plan = lv.plan_for(wanted, released)
    assert plan is not None
    decided = lv.intents()[before:]
    assert decided and all(i["ts"] >= released for i in decided), ("decided while stale", decided)
    assert plan.quote_ts is not None and plan.quote_ts >= released, plan  # the resynced book
    assert plan.age_ns is not None and plan.age_ns <= STALE_S * 1e9, plan
    return {
        "input": reason,
        "dropped": count,
        "orders_after_release": len(decided),
        "decided_after_release_ms": round((plan.decided_ns - released) / 1e6, 1),
        "quote_age_ms": round(plan.age_ns / 1e6, 1),
    }


@pytest.mark.parametrize(
    ("live", "cases"),
    [(("level2", "market_trades"), CASES), (("ticker", "market_trades"), TICKER_CASES)],
    ids=["level2", "ticker"],
    indirect=["live"],
)
def test_no_order_is_decided_on_stale_data_and_trading_resumes_after_each_hostile_input(
    live: tuple[Live, HostileServer],
    cases: list[tuple[str, Callable[[HostileServer], None], str, int]],
) -> None:
    lv, server = live
    poll(lambda: lv.ready()[1]["ok"], "feed ready", DEADLINE_S)
    lv.target(WEIGHTS[1])
    assert wait_until(lambda: lv.plan_for(WEIGHTS[1], 0) is not None, DEADLINE_S), lv.explain()
    for i, (name, send, reason, count) in enumerate(cases):
        o = hostile_round(lv, server, send, reason, count, WEIGHTS[i % 2])
        print(name, json.dumps(o))
    problems, ages = lv.audit()
    assert ages and problems == [], problems
    print(f"{len(ages)} decisions audited, oldest data {max(a.age_ns for a in ages) / 1e6:.1f} ms")
