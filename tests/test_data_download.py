"""``cryptoj data download`` end to end against the local fake exchange (loopback HTTPS only),
the catalog it fills, and ``replay --data catalog:…`` reading it back."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from cryptoj.adapters.coinbase.fake import FakeCoinbase
from cryptoj.cli import main
from cryptoj.marketdata import load_events
from cryptoj.marketdata.catalog import Catalog, list_sets, load_catalog_events
from cryptoj.marketdata.catalog_fast import fast_candle_events
from cryptoj.marketdata.download import (
    DownloadError,
    Plan,
    PublicClient,
    download,
    gaps_of,
    parse_candles,
)
from cryptoj.marketdata.loader import DataError
from cryptoj.models.market import Bar

DAYS = (dt.date(2018, 4, 4), dt.date(2018, 4, 5))
PRODUCTS = ("BTC-USD", "ETH-USD")
WHAT = "GET /x?start=0"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeCoinbase]:
    with FakeCoinbase(step_s=0, products=["BTC-USD", "ETH-USD", "LTC-USD"]) as f:
        yield f


def client(fake: FakeCoinbase, waits: list[float]) -> PublicClient:
    """A real client against the fake; its waits are recorded instead of slept."""
    return PublicClient(fake.rest_url, ca_file=fake.ca_file, rate=1000.0, sleep=waits.append)


def recorded_bars(products: tuple[str, ...]) -> dict[tuple[str, int], Bar]:
    """The bundled recording the fake serves: (product, open ms) → bar."""
    return {
        (e.product, e.ts // 1_000_000 - 60_000): e
        for batch in load_events("coinbase-1m-2018-04", products=list(products))
        for e in batch
        if isinstance(e, Bar)
    }


def stored_rows(root: Path) -> dict[tuple[str, int], tuple[Decimal, ...]]:
    out: dict[tuple[str, int], tuple[Decimal, ...]] = {}
    for f in sorted(root.glob("*/candles-1m/*.parquet")):
        t = pq.read_table(f).to_pydict()
        for i, product in enumerate(t["product"]):
            key = (product, t["open_time_ms"][i])
            assert key not in out, f"duplicate row {key}"
            out[key] = tuple(Decimal(t[c][i]) for c in ("open", "high", "low", "close", "volume"))
    return out


def test_download_survives_429s_and_stores_the_recorded_bars(
    fake: FakeCoinbase, tmp_path: Path
) -> None:
    waits: list[float] = []
    before = fake.counts.get("public_429_injected", 0)
    fake.inject("public_429", count=2, retry_after=3)
    plan = Plan(PRODUCTS, ("ONE_MINUTE",), False, *DAYS)
    stats = download(plan, Catalog(tmp_path), client(fake, waits))
    assert fake.counts["public_429_injected"] - before == 2
    assert stats.rate_limited == 2 and stats.retries == 2
    assert waits == [3.0, 3.0]  # Retry-After honoured (above the 1 s, 2 s backoff)
    # 1,440 minutes a day, 300 per request: 5 pages per product and day, plus the 2 retried
    assert stats.requests == 2 * 2 * 5 + 2
    bars = recorded_bars(PRODUCTS)
    rows = stored_rows(tmp_path)
    assert rows.keys() == bars.keys()
    for key, b in bars.items():
        assert rows[key] == (b.open, b.high, b.low, b.close, rows[key][4])
        assert abs(rows[key][4] - b.volume) < Decimal("1e-8")  # sent rounded to 1e-8
    # nothing filled in: every minute without a recorded bar is a gap of the index
    entries = Catalog(tmp_path).entries()
    assert len(entries) == 4
    for e in entries.values():
        first = int(dt.datetime.fromisoformat(e.day).replace(tzinfo=dt.UTC).timestamp())
        have = sorted(
            ms // 1000 for p, ms in bars if p == e.product and first <= ms // 1000 < first + 86_400
        )
        assert e.rows == len(have)
        assert list(e.gaps) == gaps_of(have, first, first + 86_400 - 60, 60)
        assert e.missing(60) == 1440 - len(have)
    assert stats.gaps == sum(1440 - e.rows for e in entries.values()) > 0


class _Killed(Exception):
    pass


class _DiesAfter(PublicClient):
    """The real client, killed (as by Ctrl-C) before its n-th request."""

    def __init__(self, n: int, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.left = n

    def get(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        self.left -= 1
        if self.left < 0:
            raise _Killed
        return super().get(path, params)


def test_an_interrupted_download_resumes_without_refetching(
    fake: FakeCoinbase, tmp_path: Path
) -> None:
    plan = Plan(PRODUCTS, ("ONE_MINUTE",), False, *DAYS)
    waits: list[float] = []
    killed = _DiesAfter(7, fake.rest_url, ca_file=fake.ca_file, rate=1000.0, sleep=waits.append)
    with pytest.raises(_Killed):
        download(plan, Catalog(tmp_path), killed)
    # 5 pages per day: the first day is stored, the second was 2 pages in when killed
    assert [e.key for e in Catalog(tmp_path).entries().values()] == [
        "BTC-USD/candles-1m/2018-04-04"
    ]
    before = fake.counts["public_candles"]
    stats = download(plan, Catalog(tmp_path), client(fake, waits))
    assert stats.days_skipped == 1 and stats.days_fetched == 3
    assert fake.counts["public_candles"] - before == 3 * 5  # only the missing days
    assert stored_rows(tmp_path).keys() == recorded_bars(PRODUCTS).keys()  # no duplicates
    again = download(plan, Catalog(tmp_path), client(fake, waits))
    assert again.requests == 0 and again.days_skipped == 4


def test_coarse_granularities_are_fetched_several_days_per_request(
    fake: FakeCoinbase, tmp_path: Path
) -> None:
    waits: list[float] = []
    plan = Plan(("LTC-USD",), ("ONE_HOUR", "ONE_DAY"), True, *DAYS)
    stats = download(plan, Catalog(tmp_path), client(fake, waits))
    # one request per granularity (2 days fit in 300 candles); trades: 4 prints a bar, paged
    entries = Catalog(tmp_path).entries()
    assert {e.kind for e in entries.values()} == {"candles-1h", "candles-1d", "trades"}
    day = entries["LTC-USD/candles-1d/2018-04-04"]
    assert day.rows == 1 and not day.gaps
    one_day = pq.read_table(tmp_path / str(day.file)).to_pydict()
    bars = [b for (p, ms), b in recorded_bars(("LTC-USD",)).items() if ms < 1522886400000]
    assert Decimal(one_day["high"][0]) == max(b.high for b in bars)
    assert Decimal(one_day["low"][0]) == min(b.low for b in bars)
    trades = pq.read_table(tmp_path / str(entries["LTC-USD/trades/2018-04-04"].file)).to_pydict()
    assert len(trades["trade_id"]) == len(set(trades["trade_id"])) == 4 * len(bars)
    assert trades["time_ns"] == sorted(trades["time_ns"])
    counts = [entries[f"LTC-USD/trades/{d}"].rows for d in DAYS]
    assert stats.requests == 2 + sum(trade_pages(n) for n in counts)
    assert trade_pages(5760) == 6


def trade_pages(n: int) -> int:
    """Requests for n trades: 1,000 a page, each next page repeating the oldest second's one."""
    pages, left = 1, n - 1000
    while left >= 999:
        pages, left = pages + 1, left - 999
    return pages + (1 if left >= 0 else 0)


def candle(**over: Any) -> dict[str, Any]:
    """A valid candle at 60 s with some fields replaced."""
    return {
        "start": "60",
        "low": "1",
        "high": "2",
        "open": "1",
        "close": "1.5",
        "volume": "1",
    } | over


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        (candle(low="2", high="1"), "inconsistent"),
        (candle(open="NaN"), "finite price"),
        (candle(volume="-1"), "quantity >= 0"),
        (candle(start="61"), "misaligned"),
        (candle(start="1e3"), "Unix seconds"),
        (candle(low=1), "decimal string"),
        (candle(start="600000"), "outside"),
    ],
)
def test_a_malformed_candle_is_an_error_naming_the_request(
    row: dict[str, Any], problem: str
) -> None:
    with pytest.raises(DownloadError, match=problem) as e:
        parse_candles(WHAT, {"candles": [row]}, 0, 600, 60)
    assert str(e.value).startswith(WHAT)
    with pytest.raises(DownloadError, match="no 'candles' list"):
        parse_candles(WHAT, {"candle": []}, 0, 600, 60)


def test_cli_downloads_lists_and_replays_the_catalog(
    fake: FakeCoinbase, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cat = str(tmp_path / "cat")
    args = ["--rest-url", fake.rest_url, "--ca-file", fake.ca_file, "--catalog", cat]
    span = ["--from", "2018-04-04", "--to", "2018-04-05"]
    fake.inject("public_429", count=1, retry_after=0)
    assert (
        main(
            [
                "data",
                "download",
                "--products",
                *PRODUCTS,
                "--granularity",
                "ONE_MINUTE",
                *span,
                *args,
                "--rate",
                "1000",
            ]
        )
        == 0
    )
    assert "4 day(s) fetched" in capsys.readouterr().out
    # unknown product: one clear line, exit 2
    assert main(["data", "download", "--products", "XRP-USD", *span, *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "XRP-USD" in err[0] and "404" in err[0]
    # a certificate the client does not trust fails at once (no retries), a missing CA file is
    # bad usage
    fresh = str(tmp_path / "fresh")
    untrusted = ["--products", "BTC-USD", *span, "--rest-url", fake.rest_url, "--catalog", fresh]
    assert main(["data", "download", *untrusted]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "CERTIFICATE_VERIFY_FAILED" in err[0] and "--ca-file" in err[0]
    assert main(["data", "download", *untrusted, "--ca-file", str(tmp_path / "no.pem")]) == 2
    assert "no such file" in capsys.readouterr().err
    # a range with no data: one line, exit 2 (and the empty days are indexed, with their gaps)
    empty = ["--from", "2019-01-01", "--to", "2019-01-01"]
    assert main(["data", "download", "--products", "BTC-USD", *empty, *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no data" in err[0]
    assert Catalog(cat).entries()["BTC-USD/candles-1m/2019-01-01"].gaps == (
        (1546300800, 1546300800 + 86_400 - 60),
    )
    assert main(["replay", "--list-data", "--catalog", cat]) == 0
    listed = capsys.readouterr().out
    assert "coinbase-1m-2018-04" in listed
    set_line = "catalog:BTC-USD,ETH-USD/1m\tBTC-USD,ETH-USD\t1m\t2018-04-04 .. 2019-01-01\t"
    assert f"{set_line}3 day(s), 4896 rows, gaps {864 + 1440}" in listed  # the empty day: gaps
    assert main(["data", "list", "--catalog", cat]) == 0
    assert capsys.readouterr().out.startswith(set_line)
    journal = str(tmp_path / "j.sqlite")
    run = ["replay", "--catalog", cat, "--journal", journal, "--trace", "", "--json"]
    one_day = ["--from", "2018-04-05", "--to", "2018-04-05"]
    report = tmp_path / "report"
    data = ["--data", "catalog:BTC-USD,ETH-USD/1m"]
    assert main([*run, *data, *one_day, "--report", str(report)]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["invariants_ok"] and summary["events"] > 0
    assert summary["report"] == str(report / "index.html") and (report / "index.html").is_file()
    # a range with no data, and a corrupt Parquet file: one line, exit 2
    assert (
        main([*run, "--data", "catalog:BTC-USD/1m", "--from", "2019-01-01", "--to", "2019-01-02"])
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no 1m candles stored for BTC-USD" in err[0]
    broken = next(Path(cat).glob("ETH-USD/candles-1m/*.parquet"))
    broken.write_bytes(broken.read_bytes()[:200])
    assert main([*run, "--data", "catalog:ETH-USD/1m"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(broken) in err[0] and "Parquet" in err[0]


def test_a_catalog_replay_equals_the_same_bars_as_a_csv(
    fake: FakeCoinbase, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cat = tmp_path / "cat"
    download(Plan(PRODUCTS, ("ONE_MINUTE",), False, *DAYS), Catalog(cat), client(fake, []))
    csv = tmp_path / "same.csv.gz"
    lines = ["product,open_time_ms,open,high,low,close,volume"]
    for f in sorted(cat.glob("*/candles-1m/*.parquet")):
        t = pq.read_table(f).to_pydict()
        for i in range(len(t["product"])):
            cells = [
                t[c][i]
                for c in ("product", "open_time_ms", "open", "high", "low", "close", "volume")
            ]
            lines.append(",".join(str(c) for c in cells))
    csv.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    assert load_catalog_events("catalog:BTC-USD,ETH-USD/1m", cat) == load_events(csv)
    entries = sorted(Catalog(cat).entries().values(), key=lambda e: e.key)
    tables = [(e.product, e.day, Catalog(cat).read_table(e)) for e in entries]
    assert fast_candle_events(tables, 60, None, None) == load_events(csv)  # the columnar path
    summaries = []
    for data in ("catalog:BTC-USD,ETH-USD/1m", str(csv)):
        journal = str(tmp_path / f"j{len(summaries)}.sqlite")
        run = ["replay", "--data", data, "--catalog", str(cat), "--journal", journal]
        assert main([*run, "--trace", "", "--json"]) == 0
        summaries.append(json.loads(capsys.readouterr().out.strip().splitlines()[-1]))
    varying = {"wall_seconds", "events_per_second", "data", "journal"}
    a, b = ({k: v for k, v in s.items() if k not in varying} for s in summaries)
    assert a == b and a["events"] > 0
    sets = list_sets(cat)
    assert [(s.name, s.rows, s.days) for s in sets] == [
        ("catalog:BTC-USD,ETH-USD/1m", sum(1 for _ in lines[1:]), 2)
    ]


def test_the_fake_serves_candles_with_coinbase_limits(fake: FakeCoinbase) -> None:
    import ssl
    import urllib.error
    import urllib.request

    ctx = ssl.create_default_context(cafile=fake.ca_file)
    base = f"{fake.rest_url}/api/v3/brokerage/market/products"

    def get(path: str) -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(f"{base}/{path}", context=ctx, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    start = 1522800000  # 2018-04-04 00:00 UTC
    status, body = get(
        f"BTC-USD/candles?start={start}&end={start + 350 * 60}&granularity=ONE_MINUTE"
    )
    opens = [int(c["start"]) for c in body["candles"]]
    assert status == 200 and opens == sorted(opens, reverse=True)  # newest first
    assert start <= min(opens) and max(opens) < start + 350 * 60 and len(opens) <= 350
    status, body = get(
        f"BTC-USD/candles?start={start}&end={start + 351 * 60}&granularity=ONE_MINUTE"
    )
    assert status == 400 and body["error"] == "INVALID_ARGUMENT"
    status, body = get(f"BTC-USD/candles?start={start}&end={start + 600}&granularity=TEN_MINUTE")
    assert status == 400 and "granularity" in body["message"]
    status, body = get(f"DOGE-USD/candles?start={start}&end={start + 600}&granularity=ONE_MINUTE")
    assert status == 404
    status, body = get(f"BTC-USD/ticker?start={start}&end={start + 3600}&limit=10")
    times = [t["time"] for t in body["trades"]]
    assert status == 200 and len(times) == 10 and times == sorted(times, reverse=True)


T0 = 1522800000  # 2018-04-04 00:00 UTC


def day_columns(**over: list[Any]) -> dict[str, list[Any]]:
    """Three 1-minute BTC-USD candles of 2018-04-04 with some columns replaced."""
    cols: dict[str, list[Any]] = {
        "product": ["BTC-USD"] * 3,
        "open_time_ms": [(T0 + 60 * i) * 1000 for i in range(3)],
        "open": ["10", "11", "12"],
        "high": ["11", "12.5", "13"],
        "low": ["9.5", "10", "11"],
        "close": ["11", "12", "12.5"],
        "volume": ["1", "0", "2.50000001"],
    }
    return cols | over


@pytest.mark.parametrize(
    ("over", "problem"),
    [
        ({}, None),
        ({"open_time_ms": [(T0 + 60 * i) * 1000 + 7 for i in range(3)]}, None),  # misaligned: ok
        ({"open": ["10", "11", " 12"]}, None),  # the loader strips blanks: so does the result
        ({"high": ["11", "9", "13"]}, "inconsistent bar"),
        ({"volume": ["1", "-1", "2"]}, "volume: expected a quantity >= 0"),
        ({"close": ["11", "NaN", "12"]}, "close: expected a finite number"),
        ({"open_time_ms": [T0 * 1000, T0 * 1000, (T0 + 120) * 1000]}, "duplicate row"),
    ],
)
def test_the_columnar_read_equals_the_loader_or_defers_to_it(
    tmp_path: Path, over: dict[str, list[Any]], problem: str | None
) -> None:
    cat = Catalog(tmp_path)
    cols = day_columns(**over)
    cat.write_day("BTC-USD", "candles-1m", DAYS[0], cols, [], "test")
    csv = tmp_path / "same.csv"
    header = ",".join(cols)
    rows = [",".join(map(str, r)) for r in zip(*cols.values(), strict=True)]
    csv.write_text("\n".join([header, *rows]))
    entry = cat.entries()["BTC-USD/candles-1m/2018-04-04"]
    fast = fast_candle_events([("BTC-USD", entry.day, cat.read_table(entry))], 60, None, None)
    if problem is None:
        expected = load_events(csv, interval_s=60)
        assert load_catalog_events("catalog:BTC-USD/1m", tmp_path) == expected
        assert fast == (expected if not over else None)  # only clean files take the fast path
    else:
        assert fast is None
        with pytest.raises(DataError, match=problem) as e:
            load_catalog_events("catalog:BTC-USD/1m", tmp_path)
        assert e.value.path == str(tmp_path / str(entry.file)) and e.value.line in (2, 3, 4)


def test_a_killed_download_process_resumes_fetching_only_what_is_missing(
    fake: FakeCoinbase, tmp_path: Path
) -> None:
    """The real command in a subprocess, SIGKILLed once a day is stored, then run again."""
    import os
    import signal
    import subprocess
    import sys
    import time

    cat = tmp_path / "cat"
    cmd = [sys.executable, "-m", "cryptoj", "data", "download", "--products", *PRODUCTS]
    cmd += ["--from", "2018-04-04", "--to", "2018-04-05", "--catalog", str(cat), "--quiet"]
    cmd += ["--rest-url", fake.rest_url, "--ca-file", fake.ca_file]
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(root))
    proc = subprocess.Popen([*cmd, "--rate", "4"], env=env, cwd=root)  # 20 requests: ~5 s
    try:
        deadline = time.monotonic() + 60
        while not (cat / "index.json").exists() and time.monotonic() < deadline:
            assert proc.poll() is None, "the download ended before it could be killed"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    stored = len(Catalog(cat).entries())
    assert 1 <= stored < 4
    done = subprocess.run(
        [*cmd, "--rate", "1000"], env=env, cwd=root, timeout=120, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    missing = 4 - stored  # only the missing days are fetched, 5 requests each
    assert f"{missing} day(s) fetched, {stored} already stored" in done.stdout
    assert f"; {missing * 5} requests (0 rate-limited" in done.stdout
    assert len(Catalog(cat).entries()) == 4
    assert stored_rows(cat).keys() == recorded_bars(PRODUCTS).keys()  # no duplicates
