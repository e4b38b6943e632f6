"""Overload shows in ``/ready``, ``/status`` and ``/metrics``: a stale event handled by the
FeedActor (its age is the feed lag) makes a running daemon report ``overloaded``; no timing is
asserted (the event is minutes old)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from cryptoj.models.market import Trade
from tests.test_ops import get_json, poll, request, running


def test_a_stale_feed_makes_ready_503_and_status_report_overload(tmp_path: Path) -> None:
    with running(tmp_path) as r:
        rt = r.daemon.rt
        assert rt is not None
        assert get_json(r.port, "/status")[1]["load"]["state"] == "ok"
        stale = Trade(
            ts=rt.clock.now() - 300 * 1_000_000_000,  # five minutes old when it arrives
            product="BTC-USD",
            price=Decimal("7000"),
            quantity=Decimal("0.1"),
            taker_side="BUY",
            trade_id="late-1",
        )
        rt.tell("feed", stale, sender="coinbase")
        _, ready = poll(
            lambda: (res := get_json(r.port, "/ready"))[0] == 503 and res, "overload reported"
        )
        load = ready["checks"]["load"]
        assert load["ok"] is False and "feed lag p99" in load["detail"]
        status = get_json(r.port, "/status")[1]["load"]
        assert status["state"] == "overloaded" and status["feed_lag"]["p99_s"] >= 299
        assert status["largest_mailbox"]["depth"] >= 0 and status["merged_trades"] == 0
        text = request(r.port, "/metrics")[2].decode()
        assert "cryptoj_overloaded 1.0" in text
        assert 'cryptoj_feed_actor_lag_seconds{quantile="0.99"}' in text
