"""No order is decided on stale market data, as a property of the product (no threads, no
sockets): the PortfolioActor's age rule, the journal audit
(:mod:`cryptoj.portfolio.data_age`), the order in which a resync's quote and its ``recovered``
status leave the feed session, and the manual strategy's targets across a stale period.
The end-to-end check against a hostile websocket server is in
``tests/test_feed_hostile_orders.py``. What an operator sees of the audit (``tools/risk_audit.py``
and the report, with the config's ``portfolio.quote_max_age_s``) is checked on journals the
product wrote: a replay's, and a portfolio's that traded a 10 s old quote."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from cryptoj.actors.portfolio import PortfolioActor
from cryptoj.actors.strategy import StrategyActor
from cryptoj.adapters.coinbase.session import SessionSettings
from cryptoj.cli import main
from cryptoj.config import parse_config
from cryptoj.journal import Journal
from cryptoj.models.market import FeedStatus, Quote
from cryptoj.models.orders import Side, SubmitOrder
from cryptoj.models.signals import OperatorTarget, TargetWeight
from cryptoj.portfolio.data_age import decision_ages, stale_decisions
from cryptoj.report.data import load_report_data
from cryptoj.report.html import render_html, summary_rows
from tests.stubs import FakeCtx, quote, risk_params
from tests.test_coinbase_session import MS, T0, Harness

S = 1_000_000_000
MAX_AGE_S = 5.0
REPO = Path(__file__).resolve().parents[1]


def portfolio(tmp_path: Path, *, live: bool) -> tuple[PortfolioActor, FakeCtx, str]:
    """A portfolio with 100,000 cash, risk parameters and one BTC quote at ``T0``."""
    raw: dict[str, object] = {
        "portfolio": {"quote_max_age_s": MAX_AGE_S, "weighting": "signal",
                      "cost_band_multiple": 0.0},
    }  # fmt: skip
    if live:
        raw["feed"] = {"source": "coinbase", "products": ["BTC-USD"]}
    path = str(tmp_path / "journal.sqlite")
    j = Journal(path)
    j.set_meta("starting_cash", "100000")
    j.close()
    p = PortfolioActor(parse_config(raw), path)
    ctx = FakeCtx(time_ns=T0)
    p.on_start(ctx)
    p.receive(risk_params(), ctx)
    p.receive(quote(ts=T0), ctx)
    return p, ctx, path


def orders(ctx: FakeCtx) -> list[SubmitOrder]:
    return [m for m in ctx.to("execution") if isinstance(m, SubmitOrder)]


def target(weight: float, ts: int) -> TargetWeight:
    return TargetWeight(ts=ts, strategy_id="t", product="BTC-USD", weight=weight, reason="test")


def audit(path: str) -> tuple[list[str], list[int | None]]:
    j = Journal(path)
    try:
        return stale_decisions(j, int(MAX_AGE_S * S)), [d.age_ns for d in decision_ages(j)]
    finally:
        j.close()


def test_live_a_frozen_quote_is_not_traded_once_older_than_the_limit(tmp_path: Path) -> None:
    p, ctx, path = portfolio(tmp_path, live=True)
    ctx.time_ns = T0 + 10 * S  # the feed froze: no stale status, no new quote for 10 s
    p.receive(target(0.05, ctx.time_ns), ctx)
    assert orders(ctx) == []  # every quote is 10 s old by the clock: nothing is decided
    p.receive(quote(ts=ctx.time_ns - 100 * MS), ctx)  # data flows again
    (order,) = orders(ctx)
    assert order.side == Side.BUY
    assert audit(path) == ([], [100 * MS])  # decided on a quote 0.1 s old, and journalled so


def test_in_a_replay_the_data_is_the_clock_and_the_audit_names_an_old_decision(
    tmp_path: Path,
) -> None:
    p, ctx, path = portfolio(tmp_path, live=False)
    ctx.time_ns = T0 + 10 * S  # a replay's quote is as old as its bar: still tradable
    p.receive(target(0.05, ctx.time_ns), ctx)
    assert len(orders(ctx)) == 1
    problems, ages = audit(path)
    assert ages == [10 * S]
    assert problems == [
        f"{problems[0].split()[0]} BTC-USD: decided on a quote 10.000 s old (limit 5.000 s)"
    ]


def test_a_quote_from_before_a_stale_period_is_not_traded_after_the_recovery(
    tmp_path: Path,
) -> None:
    p, ctx, path = portfolio(tmp_path, live=True)
    stale = FeedStatus(ts=T0, products=("BTC-USD",), state="stale", reason="dropped frame")
    p.receive(stale, ctx)
    ctx.time_ns = T0 + S
    p.receive(FeedStatus(ts=ctx.time_ns, products=("BTC-USD",), state="recovered"), ctx)
    p.receive(target(0.05, ctx.time_ns), ctx)
    assert orders(ctx) == []  # the only quote is the pre-outage one (1 s old, under the limit)
    p.receive(quote(bid="7100", ask="7101", ts=ctx.time_ns), ctx)  # the resynced book
    (order,) = orders(ctx)
    assert order.side == Side.BUY
    j = Journal(path)
    try:
        (decision,) = decision_ages(j)
    finally:
        j.close()
    assert decision.quote_ts == T0 + S


def test_the_audit_refuses_a_plan_without_a_quote_time_and_a_negative_limit(
    tmp_path: Path,
) -> None:
    path = tmp_path / "journal.sqlite"
    Journal(str(path)).close()
    with sqlite3.connect(path) as db:  # a plan journalled before quote_ts was recorded
        db.execute(
            "INSERT INTO rebalance_steps (txn_id, ts, step, state, detail) VALUES "
            '(\'txn-1\', 1, \'planned\', \'PLANNED\', \'{"legs": [["c1", "BTC-USD", "BUY", '
            '"1", "MARKET"]]}\')'
        )
    j = Journal(str(path))
    try:
        assert stale_decisions(j, S) == ["txn-1 BTC-USD: decided without a recorded quote time"]
        with pytest.raises(ValueError, match="max_age_ns"):
            stale_decisions(j, -1)
    finally:
        j.close()


@pytest.mark.parametrize("channels", [("level2", "market_trades"), ("ticker",)])
def test_a_resynced_book_gives_its_quote_before_the_recovered_status(
    channels: tuple[str, ...],
) -> None:
    h = Harness(SessionSettings(channels=channels), products=("BTC-USD",))
    h.s.opened(T0)
    h.s.frame(h.w.ack({"heartbeats": ["heartbeats"], channels[0]: ["BTC-USD"]}), T0)
    tick = {"type": "ticker", "product_id": "BTC-USD", "price": "100.5", "best_bid": "100",
            "best_bid_quantity": "1", "best_ask": "101", "best_ask_quantity": "3"}  # fmt: skip

    def book() -> bytes:
        if channels[0] == "ticker":
            return h.w.frame("ticker", [{"type": "snapshot", "tickers": [tick]}])
        return h.w.snapshot("BTC-USD")

    h.s.frame(book(), T0)
    if channels[0] == "ticker":
        bad = h.w.frame("ticker", [{"type": "update", "tickers": [{**tick, "best_bid": "NaN"}]}])
    else:
        bad = h.w.l2("update", "BTC-USD", [("bid", "NaN", "1")])
    h.s.frame(bad, T0 + MS)
    assert h.statuses()[-1] == ("stale", ("BTC-USD",))
    mark = len(h.events)
    h.s.frame(book(), T0 + 2 * MS)  # the same top as before the outage: still a new quote
    after = h.events[mark:]
    assert [type(e) for e in after] == [Quote, FeedStatus], after
    assert isinstance(after[1], FeedStatus) and after[1].state == "recovered"


def test_a_manual_target_set_while_stale_is_stated_when_the_product_recovers() -> None:
    cfg = parse_config({"strategy": {"kind": "manual"}}).strategy
    s = StrategyActor(cfg)
    ctx = FakeCtx(time_ns=T0)
    s.on_start(ctx)
    s.receive(FeedStatus(ts=T0, products=("BTC-USD",), state="stale", reason="x"), ctx)
    s.receive(OperatorTarget(ts=T0, product="BTC-USD", weight=0.05, reason="test"), ctx)
    assert ctx.to("portfolio") == []  # no new target on stale data
    s.receive(FeedStatus(ts=T0 + S, products=("BTC-USD",), state="recovered"), ctx)
    (msg,) = ctx.to("portfolio")
    assert isinstance(msg, TargetWeight) and (msg.product, msg.weight) == ("BTC-USD", 0.05)
    s.receive(FeedStatus(ts=T0 + S, products=("ETH-USD",), state="recovered"), ctx)
    assert len(ctx.to("portfolio")) == 1  # a product that was not stale: nothing restated


def risk_audit(journal: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``tools/risk_audit.py JOURNAL ARGS`` in a child process."""
    return subprocess.run(
        [sys.executable, "tools/risk_audit.py", journal, *args],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip


def config_file(tmp_path: Path, max_age_s: float) -> str:
    """A config with ``portfolio.quote_max_age_s`` (two products, the report tests' band)."""
    cfg = tmp_path / f"config-{max_age_s:g}.yaml"
    cfg.write_text(
        "feed:\n  products: [BTC-USD, ETH-USD]\nstrategy:\n  entry_band: 0.0005\n"
        f"portfolio:\n  quote_max_age_s: {max_age_s}\n"
    )
    return str(cfg)


def test_the_audit_of_a_replay_journal_shows_no_stale_decision(tmp_path: Path) -> None:
    cfg, journal = config_file(tmp_path, 30), str(tmp_path / "replay.sqlite")
    day = ["--from", "2018-04-04", "--to", "2018-04-04"]
    assert main(["replay", *day, "--config", cfg, "--journal", journal, "--trace", ""]) == 0
    shown = json.loads(risk_audit(journal, "--config", cfg, "--json").stdout)
    checked = shown["decisions_checked"]
    assert checked == len(audit(journal)[1]) > 0
    assert (shown["decisions_on_stale_quotes"], shown["stale_decisions"]) == (0, [])
    assert shown["data_age"] == (
        f"decisions on stale quotes: none of {checked} (limit 30 s, oldest quote 0.000 s)"
    )  # a replay's clock is its data: each plan is decided at its quotes' own time
    d = load_report_data(journal)
    assert ("data age of the decisions", shown["data_age"]) in summary_rows(d)
    assert "WARNING" not in render_html(d, [], "replay")


def test_the_audit_names_a_decision_on_a_quote_older_than_the_configs_limit(
    tmp_path: Path,
) -> None:
    p, ctx, path = portfolio(tmp_path, live=False)
    ctx.time_ns = T0 + 10 * S  # a replay's quote is as old as its bar: traded 10 s old
    p.receive(target(0.05, ctx.time_ns), ctx)
    p.on_stop(ctx)
    assert len(orders(ctx)) == 1
    problems, _ = audit(path)
    txn = problems[0].split()[0]
    stale = f"{txn} BTC-USD: decided on a quote 10.000 s old (limit 5.000 s)"
    warning = (
        "WARNING: 1 of 1 decisions were made on stale quotes or without a recorded quote time "
        "(limit 5 s, oldest quote 10.000 s)"
    )
    out = risk_audit(path, "--config", config_file(tmp_path, MAX_AGE_S)).stdout
    assert f"{warning}\n  {stale}\n" in out
    lenient = json.loads(risk_audit(path, "--config", config_file(tmp_path, 20), "--json").stdout)
    assert (lenient["decisions_on_stale_quotes"], lenient["oldest_quote_age_s"]) == (0, 10.0)
    assert json.loads(risk_audit(path, "--quote-max-age", "9", "--json").stdout)[
        "stale_decisions"
    ] == [stale.replace("5.000", "9.000")]
    out_dir = tmp_path / "report"
    args = ["report", path, "--out", str(out_dir), "--data", "coinbase-1m-2018-04"]
    assert main([*args, "--config", config_file(tmp_path, MAX_AGE_S)]) == 0
    page = (out_dir / "index.html").read_text(encoding="utf-8")
    assert f'<p class="bad">{warning}:</p><ul class="bad"><li>{stale}</li></ul>' in page
    assert main([*args, "--config", config_file(tmp_path, 20)]) == 0
    assert "WARNING" not in (out_dir / "index.html").read_text(encoding="utf-8")
