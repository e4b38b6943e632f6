"""The ExecutionActor on the Coinbase venue against the local fake (127.0.0.1), and the live
opt-in: a restart in the middle of an unknown outcome, a restart after a lost close, timers,
reconcile requests, the refusals before any actor starts, and the daemon trading the fake."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from cryptoj.actors.execution import ExecutionActor
from cryptoj.adapters.coinbase.execution.venue import CoinbaseVenue
from cryptoj.adapters.coinbase.fake import FakeCoinbase
from cryptoj.adapters.coinbase.fake.auth import ApiKey, generate_api_key, write_key_file
from cryptoj.config import Config, parse_config
from cryptoj.daemon import Daemon
from cryptoj.journal import Journal
from cryptoj.models.orders import (
    Fill,
    OrderClosed,
    OrderStatusReport,
    OrderType,
    ReconcileVenue,
    Side,
    SubmitOrder,
)
from cryptoj.models.system import Tick
from cryptoj.ops.config import OpsConfig
from cryptoj.runtime.assemble import LiveTradingUnavailable, assemble
from tests.stubs import FakeCtx
from tests.test_coinbase_exec_fake import Events, make_venue, new_id

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fake_key() -> Iterator[tuple[FakeCoinbase, ApiKey]]:
    key = generate_api_key("Ed25519")
    fake = FakeCoinbase(
        products=["BTC-USD", "ETH-USD"],
        step_s=0.05,
        heartbeat_s=0.2,
        jwt_key_name=key.name,
        jwt_public_key=key.public_pem,
        balances={"USD": "250000", "ETH": "3"},
    ).start()
    yield fake, key
    fake.stop()


def journal_at(tmp_path: Path) -> str:
    path = str(tmp_path / "journal.sqlite")
    j = Journal(path)
    j.set_meta("starting_cash", "250000")
    j.close()
    return path


def order(coid: str, qty: str = "0.03") -> SubmitOrder:
    return SubmitOrder(
        client_order_id=coid,
        product="BTC-USD",
        side=Side.BUY,
        order_type=OrderType.MARKET,
        quantity=Decimal(qty),
    )


def drain(actor: ExecutionActor, events: Events, ctx: FakeCtx) -> None:
    """Deliver what the venue pushed, as the runtime would."""
    while events.items:
        actor.receive(events.items.pop(0), ctx)


def orders_at_fake(fake: FakeCoinbase, coid: str) -> int:
    return int(fake.state()["exchange"]["orders_per_client_order_id"].get(coid, 0))


def test_a_restart_in_the_middle_of_an_unknown_outcome_resolves_it_by_client_order_id(
    tmp_path: Path, fake_key: tuple[FakeCoinbase, ApiKey]
) -> None:
    fake, key = fake_key
    path, coid = journal_at(tmp_path), new_id("restart")
    venue1, _, _ = make_venue(fake, key, place_attempts=2)
    venue1.balances()
    actor1, ctx1 = ExecutionActor(venue1, path), FakeCtx()
    actor1.on_start(ctx1)
    fake.inject("drop_after_commit", count=2)  # processed, answers lost (the resend too)
    fake.inject("rest_5xx", count=6, endpoint="list", status=503)  # lookups fail
    actor1.receive(order(coid), ctx1)
    j = Journal(path)
    assert j.order(coid)["status"] == "PENDING"  # type: ignore[index]
    assert any(coid in e["detail"] for e in j.events("outcome_unknown"))
    assert ctx1.to("portfolio") == []  # the reservation stays: nothing is reported yet
    assert any(isinstance(m, Tick) and "execution.outcome" in m.kind for _, m in ctx1.scheduled)
    # the process dies here (no on_stop); a new process starts on the same journal
    venue2, events2, _ = make_venue(fake, key)
    actor2, ctx2 = ExecutionActor(venue2, path), FakeCtx()
    actor2.on_start(ctx2)
    drain(actor2, events2, ctx2)
    row = j.order(coid)
    assert row is not None and row["status"] == "FILLED" and row["venue_order_id"]
    to_portfolio = ctx2.to("portfolio")
    fills = [m for m in to_portfolio if isinstance(m, Fill)]
    assert fills and {f.fill_id for f in fills} == {fills[0].fill_id}  # copies share one id
    assert fills[0].quantity == Decimal("0.03")
    report = next(m for m in to_portfolio if isinstance(m, OrderStatusReport))
    assert report.known and report.status is not None and report.status.value == "FILLED"
    assert orders_at_fake(fake, coid) == 1  # never a second order
    assert venue2.counters()["unknown_outcomes_resolved"] == 1
    assert venue2.counters()["unknown_outcomes_pending"] == 0
    resolved = [e["detail"] for e in j.events("outcome_resolved")]
    assert any(d.startswith(f"{coid}: found") for d in resolved)  # the trail in the journal
    assert any(coid in e["detail"] for e in j.events("outcome_pending"))
    j.close()


def test_a_restart_after_a_lost_close_books_no_fill_twice(
    tmp_path: Path, fake_key: tuple[FakeCoinbase, ApiKey]
) -> None:
    fake, key = fake_key
    path, coid = journal_at(tmp_path), new_id("baseline")
    venue1, events1, _ = make_venue(fake, key)
    actor1, ctx1 = ExecutionActor(venue1, path), FakeCtx()
    actor1.on_start(ctx1)
    actor1.receive(order(coid), ctx1)
    fill = next(m for m in events1.items if isinstance(m, Fill))
    actor1.receive(fill, ctx1)  # the fill is handled and booked by the portfolio ...
    j = Journal(path)
    j.record_fill(fill, fill.quantity, fill.price, Decimal("250000") + fill.cash_delta)
    # ... and the process dies before the OrderClosed is handled: the journal still says OPEN
    assert j.order(coid)["status"] == "OPEN"  # type: ignore[index]
    venue2, events2, _ = make_venue(fake, key)
    actor2, ctx2 = ExecutionActor(venue2, path), FakeCtx()
    actor2.on_start(ctx2)
    assert not any(isinstance(m, Fill) for m in events2.items)  # nothing beyond the baseline
    assert [type(m) for m in events2.items if not isinstance(m, ReconcileVenue)] == [OrderClosed]
    drain(actor2, events2, ctx2)
    assert j.order(coid)["status"] == "FILLED"  # type: ignore[index]
    assert not any(isinstance(m, Fill) for m in ctx2.to("portfolio"))
    j.close()


def test_timers_reconcile_and_ignore_an_earlier_incarnation(
    tmp_path: Path, fake_key: tuple[FakeCoinbase, ApiKey]
) -> None:
    fake, key = fake_key
    venue, _, _ = make_venue(fake, key, reconcile_interval_s=7.0)
    actor, ctx = ExecutionActor(venue, journal_at(tmp_path)), FakeCtx()
    assert actor.remote is venue  # a ReconcilingVenue (the paper venue is not: remote is None)
    actor.on_start(ctx)
    ((delay, tick),) = ctx.scheduled
    assert delay == 7_000_000_000 and isinstance(tick, Tick)
    before = venue.counters()["reconciles"]
    actor.receive(Tick(kind="execution.reconcile:timers-old-000001"), ctx)
    assert venue.counters()["reconciles"] == before and len(ctx.scheduled) == 1
    actor.receive(tick, ctx)
    assert venue.counters()["reconciles"] == before + 1 and ctx.scheduled[-1] == (delay, tick)
    actor.receive(ReconcileVenue(reason="user channel reconnected (connection 2)"), ctx)
    assert venue.counters()["reconciles"] == before + 2


# -- live opt-in -------------------------------------------------------------------------------


def live_config(tmp_path: Path, fake: FakeCoinbase, key_file: Path | None, **top: Any) -> Config:
    raw: dict[str, Any] = {
        "mode": "live",
        "live_trading_confirmed": True,
        "feed": {
            "source": "coinbase",
            "products": ["BTC-USD", "ETH-USD"],
            "tick_bar_size": 4,
            "coinbase": {
                "ws_urls": [fake.ws_url],
                "rest_url": fake.rest_url,
                "ca_file": fake.ca_file,
                "heartbeat_timeout_s": 1.0,
                "backoff_min_s": 0.05,
                "backoff_max_s": 0.2,
            },
        },
        "coinbase": {
            "key_file": str(key_file) if key_file else None,
            "api_key_env": "TEST_NO_SUCH_KEY",
            "api_secret_env": "TEST_NO_SUCH_SECRET",
            "rest_url": fake.rest_url,
            "user_ws_url": fake.ws_url,
            "ca_file": fake.ca_file,
            "timeout_s": 2.0,
            "reconcile_interval_s": 1.0,
        },
        "journal": {"path": str(tmp_path / "journal.sqlite")},
        "trace": {"enabled": False},
        "strategy": {"fast_period": 2, "slow_period": 3},
    }
    raw.update(top)
    return parse_config(raw)


def test_live_trading_needs_both_the_config_and_the_command_line(
    tmp_path: Path, fake_key: tuple[FakeCoinbase, ApiKey]
) -> None:
    fake, key = fake_key
    kf = write_key_file(key, tmp_path / "key.json")
    cfg = live_config(tmp_path, fake, kf)
    journal = str(tmp_path / "j.sqlite")
    with pytest.raises(LiveTradingUnavailable, match="--live was not given"):
        assemble(cfg, [], journal, fresh_journal=True, live=False)
    with pytest.raises(
        LiveTradingUnavailable, match="--live was given but the config says mode: paper"
    ):
        assemble(Config(), [], journal, fresh_journal=True, live=True)
    assert not Path(journal).exists()  # refused before anything was written


def test_missing_or_exposed_keys_are_refused_before_any_actor(
    tmp_path: Path, fake_key: tuple[FakeCoinbase, ApiKey]
) -> None:
    fake, key = fake_key
    journal = str(tmp_path / "j.sqlite")
    with pytest.raises(LiveTradingUnavailable, match="live trading needs a Coinbase API key"):
        assemble(
            live_config(tmp_path, fake, None),
            [],
            journal,
            fresh_journal=True,
            live=True,
            environ={},
        )
    kf = write_key_file(key, tmp_path / "key.json")
    kf.chmod(0o644)
    with pytest.raises(
        LiveTradingUnavailable, match=r"key\.json is accessible by its group or others"
    ) as e:
        assemble(live_config(tmp_path, fake, kf), [], journal, fresh_journal=True, live=True)
    assert str(kf) in str(e.value)
    other = generate_api_key("ES256", name=key.name)
    bad = write_key_file(other, tmp_path / "other.json")
    with pytest.raises(LiveTradingUnavailable, match="Coinbase refused the API key") as e:
        assemble(live_config(tmp_path, fake, bad), [], journal, fresh_journal=True, live=True)
    for line in other.private_pem.splitlines()[1:-1]:
        assert line not in str(e.value)


def test_a_live_system_starts_from_the_account_balance(
    tmp_path: Path, fake_key: tuple[FakeCoinbase, ApiKey]
) -> None:
    fake, key = fake_key
    kf = write_key_file(key, tmp_path / "key.json")
    cfg = live_config(tmp_path, fake, kf)
    system = assemble(cfg, [], cfg.journal.path, fresh_journal=True, live=True)
    assert isinstance(system.venue, CoinbaseVenue)
    j = Journal(cfg.journal.path)
    usd = system.venue.balances()["USD"]
    assert Decimal(j.get_meta("starting_cash") or "0") == usd
    assert any("ETH" in e["detail"] for e in j.events("live_start"))
    j.close()


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cryptoj", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )


def test_the_command_line_refuses_live_trading_with_exit_2_and_says_why(tmp_path: Path) -> None:
    paper = tmp_path / "paper.yaml"
    paper.write_text(f"journal:\n  path: {tmp_path / 'p.sqlite'}\ntrace:\n  enabled: false\n")
    r = run_cli("run", "--live", "--config", str(paper))
    assert r.returncode == 2 and "--live was given but the config says mode: paper" in r.stderr
    live = tmp_path / "live.yaml"
    live.write_text(
        "mode: live\nlive_trading_confirmed: true\n"
        "feed:\n  source: coinbase\n  products: [BTC-USD]\n"
        f"journal:\n  path: {tmp_path / 'l.sqlite'}\ntrace:\n  enabled: false\n"
        "ops:\n  enabled: false\n"
    )
    r = run_cli("run", "--config", str(live))
    assert r.returncode == 2 and "--live was not given" in r.stderr
    unconfirmed = tmp_path / "unconfirmed.yaml"
    unconfirmed.write_text("mode: live\n")
    r = run_cli("run", "--live", "--config", str(unconfirmed))
    assert r.returncode == 2 and "live_trading_confirmed: true" in r.stderr


def test_the_daemon_trades_the_fake_live_and_its_books_equal_the_account(
    tmp_path: Path, fake_key: tuple[FakeCoinbase, ApiKey]
) -> None:
    fake, key = fake_key
    kf = write_key_file(key, tmp_path / "key.json")
    cfg = live_config(tmp_path, fake, kf)
    d = Daemon(cfg, ops=OpsConfig(enabled=False), live=True)
    result: dict[str, int] = {}
    thread = threading.Thread(target=lambda: result.setdefault("code", d.run()), daemon=True)
    thread.start()
    try:
        assert d.ready.wait(30), "daemon did not start"
        assert d.system is not None and isinstance(d.system.venue, CoinbaseVenue)
        venue = d.system.venue
        uc = venue.user_channel
        assert uc is not None
        assert _wait(lambda: uc.is_live and venue.counters()["reconciles"] >= 2, 15)
        # the strategy (2/3-bar EMAs on 4-trade bars) trades within seconds of the first bars
        assert _wait(lambda: venue.counters()["fills"] >= 1, 20), venue.counters()
    finally:
        d.request_stop("test")
        thread.join(30)
    assert result.get("code") == 0
    assert uc is not None and not uc.is_alive()
    j = Journal(cfg.journal.path)
    events = [e["kind"] for e in j.events()]
    assert "reconcile_failed" not in events
    # what the strategy traded: the journal's cash and positions equal the fake's balances
    start = Decimal(j.get_meta("starting_cash") or "0")
    fills = j.fills()
    assert fills
    cash = start + sum((f.cash_delta for f in fills), Decimal(0))
    balances = venue.balances()
    assert cash == balances["USD"]  # holds of open orders are part of the total
    eth = sum(
        (
            f.quantity if f.side is Side.BUY else -f.quantity
            for f in fills
            if f.product == "ETH-USD"
        ),
        Decimal(0),
    )
    assert balances["ETH"] - Decimal(3) == eth
    assert json.dumps(fake.state()["exchange"]["duplicate_client_order_ids"]) == "[]"
    j.close()


def _wait(cond: Any, timeout_s: float) -> bool:
    import time

    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return bool(cond())
