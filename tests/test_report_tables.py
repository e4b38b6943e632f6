"""The report's summaries: decided vs child orders, per product, events, log scale, markers."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from cryptoj.cli import main
from cryptoj.report.charts import trades, wide_range
from cryptoj.report.tables import event_counts, order_counts, product_rows, short

T0 = 1_522_800_060_000_000_000


def _orders() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "client_order_id": ["cj-1", "cj-1-c1", "cj-1-c2", "cj-2", "cj-3"],
            "product": ["BTC-USD", "BTC-USD", "BTC-USD", "ETH-USD", "BTC-USD"],
            "status": ["FILLED", "FILLED", "FILLED", "FILLED", "REJECTED"],
        }
    )


def _fills() -> pd.DataFrame:
    rows = [
        ("cj-1", "BTC-USD", "BUY", "0.1", "100", "0.01", 0),
        ("cj-1", "BTC-USD", "BUY", "0.2", "103", "0.02", 60),
        ("cj-2", "ETH-USD", "SELL", "1", "10", "0.01", 120),
    ]
    f = pd.DataFrame(
        rows, columns=["client_order_id", "product", "side", "quantity", "price", "fee", "ts"]
    )
    return f.assign(time=pd.to_datetime(f["ts"] + T0, utc=True), slippage_bps=[1.0, 3.0, None])


def test_decided_and_child_orders_are_counted_apart() -> None:
    assert order_counts(_orders()) == (3, {"FILLED": 2, "REJECTED": 1}, 2)
    assert order_counts(pd.DataFrame()) == (0, {}, 0)


def test_the_per_product_rows() -> None:
    rows = product_rows(["BTC-USD", "ETH-USD", "LTC-USD"], _orders(), _fills())
    assert rows[0] == [
        "BTC-USD", "2", "2", "2", "2 / 0", "0.3 / 0", "30.60", "0.03", "2.00", "0.3",
    ]  # fmt: skip
    assert rows[1][:6] == ["ETH-USD", "1", "0", "1", "0 / 1", "0 / 1"]
    assert rows[1][-1] == "-1"
    assert rows[2] == ["LTC-USD", "0", "0", "0", "0 / 0", "–", "0.00", "0.00", "–", "0"]


def test_events_are_counted_by_kind_and_json_details_shortened() -> None:
    ev = pd.DataFrame(
        {"ts": [T0, T0 + 60 * 10**9, T0], "kind": ["risk_level", "risk_level", "split_plan"]}
    )
    assert event_counts(ev) == [
        ["risk_level", "2", "2018-04-04 00:01", "2018-04-04 00:02"],
        ["split_plan", "1", "2018-04-04 00:01", "2018-04-04 00:01"],
    ]
    detail = json.dumps({"order": {"client_order_id": "cj-7", "x": 1}, "children": [1, 2], "n": 3})
    assert short(detail) == "order=cj-7 children=[2] n=3"
    assert short("a  b\nc") == "a b c"
    assert len(short("x" * 500)) == 160


def test_a_wide_range_switches_to_a_log_axis() -> None:
    narrow, wide = pd.Series([100_000.0, 212_000.0]), pd.Series([100_000.0, 30_000_000.0])
    assert not wide_range(narrow)
    assert wide_range(narrow, wide)
    assert not wide_range(pd.Series(dtype=float))


def test_one_trade_marker_per_decided_order_at_its_average_price() -> None:
    fills = _fills().assign(client_order_id=["cj-1-c1", "cj-1-c2", "cj-2"])
    marks = trades(fills)
    assert list(marks.index) == ["cj-1", "cj-2"]
    assert marks.loc["cj-1", "price"] == pytest.approx((0.1 * 100 + 0.2 * 103) / 0.3)
    assert marks.loc["cj-1", "time"] == pd.Timestamp(T0, unit="ns", tz="UTC")


def test_the_page_labels_orders_summarises_events_and_links_them_all(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r"
    args = ["replay", "--journal", str(tmp_path / "j.sqlite"), "--trace", ""]
    assert main([*args, "--report", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    page = (out / "index.html").read_text(encoding="utf-8")
    label = "decided orders (by the portfolio; a split order counts once)"
    assert f"<th>{label}</th><td>{summary['orders']} (" in page
    assert f"<td>{summary['child_orders']}</td>" in page
    assert "<h2>Per product</h2>" in page and '<a href="events.csv">' in page
    events = pd.read_csv(out / "events.csv")
    assert len(events) >= 1 and list(events.columns) == ["seq", "ts", "actor", "kind", "detail"]
