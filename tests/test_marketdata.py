"""Tests of the bundled market data and its loader (cryptoj.marketdata)."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import hashlib
import json
from decimal import Decimal
from importlib import resources
from itertools import pairwise
from pathlib import Path

import pytest

from cryptoj.marketdata import (
    LONG_CSV_COLUMNS,
    DataError,
    get_dataset,
    list_datasets,
    load_events,
)
from cryptoj.models.market import Bar, Quote

ONE_MINUTE = "coinbase-1m-2018-04"
FOUR_HOURS = "coinbase-4h-2016-2025"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "market" / "csv" / "candles"
HEADER = ",".join(LONG_CSV_COLUMNS)


def ns(iso: str) -> int:
    """``2018-04-04T00:01`` (UTC) → epoch nanoseconds."""
    return int(dt.datetime.fromisoformat(iso).replace(tzinfo=dt.UTC).timestamp()) * 10**9


def ms(iso: str) -> int:
    return ns(iso) // 10**6


@pytest.fixture(scope="module")
def minute_batches() -> list[tuple[Bar | Quote, ...]]:
    return load_events(ONE_MINUTE)


def write_csv(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# --- catalogue and files ----------------------------------------------------------------------


def test_list_datasets_returns_both_sets_with_their_instruments_and_date_ranges() -> None:
    sets = {info.name: info for info in list_datasets()}

    assert set(sets) == {ONE_MINUTE, FOUR_HOURS}
    minute, four_hours = sets[ONE_MINUTE], sets[FOUR_HOURS]
    assert minute.instruments == ("BTC-USD", "ETH-USD", "LTC-USD")
    assert (minute.resolution, minute.interval_s) == ("1m", 60)
    assert (minute.start, minute.end) == ("2018-04-04T00:00:00Z", "2018-04-05T23:59:00Z")
    assert minute.licence == "Apache-2.0"
    assert four_hours.instruments == ("BTC-USD", "ETH-USD")
    assert (four_hours.resolution, four_hours.interval_s) == ("4h", 14_400)
    assert (four_hours.start, four_hours.end) == ("2016-05-18T00:00:00Z", "2025-10-28T00:00:00Z")
    assert four_hours.licence == "MIT"


def test_get_dataset_returns_the_named_set() -> None:
    assert get_dataset(FOUR_HOURS).file == "coinbase-4h-2016-2025.csv.gz"


def test_bundled_files_match_the_row_counts_and_checksums_in_datasets_json() -> None:
    bundled = resources.files("cryptoj.marketdata").joinpath("bundled")
    entries = json.loads(bundled.joinpath("datasets.json").read_text(encoding="utf-8"))

    for entry in entries["datasets"]:
        text = gzip.decompress(bundled.joinpath(entry["file"]).read_bytes())
        assert hashlib.sha256(text).hexdigest() == entry["csv_sha256"]
        lines = text.decode("ascii").splitlines()
        assert lines[0] == HEADER
        assert len(lines) - 1 == entry["rows"] == get_dataset(entry["name"]).rows


def test_provenance_note_names_every_bundled_file_and_its_upstream_commit() -> None:
    note = (
        resources.files("cryptoj.marketdata")
        .joinpath("bundled", "PROVENANCE.md")
        .read_text(encoding="utf-8")
    )

    for info in list_datasets():
        assert f"`{info.file}`" in note
    assert "24863901deffa9ec7985e21ef8fbdb0258efb9e4" in note  # QuantConnect/Lean
    assert "42e1a941ebdf4f8b122b12ab65bfd012c6bee7f3" in note  # ta4j/ta4j
    assert "Apache License" in note and "MIT License" in note


# --- loading the bundled sets -----------------------------------------------------------------


def test_loading_the_1m_set_gives_bars_and_quotes_for_all_three_products(
    minute_batches: list[tuple[Bar | Quote, ...]],
) -> None:
    events = [event for batch in minute_batches for event in batch]
    kinds = {(type(e).__name__, e.product) for e in events}

    assert kinds == {(k, p) for k in ("Bar", "Quote") for p in ("BTC-USD", "ETH-USD", "LTC-USD")}
    assert len(minute_batches) == 2 * 1440 - 1  # 2018-04-04 23:59 has no row for any product
    assert sum(isinstance(e, Bar) for e in events) == 7_343
    assert sum(isinstance(e, Quote) for e in events) == 8_626


def test_batches_are_in_strictly_increasing_time_and_share_one_timestamp_each(
    minute_batches: list[tuple[Bar | Quote, ...]],
) -> None:
    stamps = [batch[0].ts for batch in minute_batches]

    assert all(len({event.ts for event in batch}) == 1 for batch in minute_batches)
    assert all(a < b for a, b in pairwise(stamps))
    assert stamps[0] == ns("2018-04-04T00:01")  # close of the first bar
    assert stamps[-1] == ns("2018-04-06T00:00")  # close of the 23:59 bar


def test_events_in_a_batch_are_sorted_by_product_with_the_bar_before_the_quote(
    minute_batches: list[tuple[Bar | Quote, ...]],
) -> None:
    for batch in minute_batches:
        order = [(e.product, 0 if isinstance(e, Bar) else 1) for e in batch]
        assert order == sorted(order)
        assert len(order) == len(set(order))


def test_first_1m_events_are_the_recorded_coinbase_values(
    minute_batches: list[tuple[Bar | Quote, ...]],
) -> None:
    close = ns("2018-04-04T00:01")
    btc_bar, btc_quote, eth_bar, eth_quote, ltc_bar, ltc_quote = minute_batches[0]

    assert btc_bar == Bar(ts=close, product="BTC-USD", open=Decimal("7424.91"),
                          high=Decimal("7424.91"), low=Decimal("7422"), close=Decimal("7422"),
                          volume=Decimal("7.14319709"), interval_s=60)  # fmt: skip
    assert btc_quote == Quote(ts=close, product="BTC-USD", bid=Decimal("7424.9"),
                              bid_size=Decimal("1.88483821"), ask=Decimal("7424.91"),
                              ask_size=Decimal("33.35399601000002"))  # fmt: skip
    assert (eth_bar.open, eth_bar.close, eth_bar.volume) == (
        Decimal("416.29"), Decimal("416.15"), Decimal("46.33579289"))  # fmt: skip
    assert (eth_quote.bid, eth_quote.ask) == (Decimal("416.15"), Decimal("416.16"))
    assert (ltc_bar.high, ltc_bar.low) == (Decimal("134.13"), Decimal("134.01"))
    assert (ltc_quote.bid_size, ltc_quote.ask_size) == (
        Decimal("83.92313369"), Decimal("120.78767427"))  # fmt: skip


def library_rows(name: str) -> list[dict[str, str]]:
    """Rows of a ``shared/data/market/csv/candles`` file inside the bundled 1m days."""
    path = SHARED / name
    if not path.exists():
        pytest.skip("the shared market-data library is not next to the repository")
    first, last = ms("2018-04-04T00:00"), ms("2018-04-05T23:59")
    with path.open(newline="") as stream:
        return [r for r in csv.DictReader(stream) if first <= int(r["open_time_ms"]) <= last]


def test_1m_set_agrees_with_the_shared_library_csv_conversions(
    minute_batches: list[tuple[Bar | Quote, ...]],
) -> None:
    events = [e for batch in minute_batches for e in batch if e.product == "BTC-USD"]
    bars = {e.ts: e for e in events if isinstance(e, Bar)}
    quotes = {e.ts: e for e in events if isinstance(e, Quote)}
    trade_rows = library_rows("coinbase_BTC-USD_1m_trade_20161007_20180406.csv")
    quote_rows = library_rows("coinbase_BTC-USD_1m_quote_20170903_20180405.csv")

    assert sorted(bars) == [(int(r["open_time_ms"]) + 60_000) * 10**6 for r in trade_rows]
    for r in trade_rows:
        bar = bars[(int(r["open_time_ms"]) + 60_000) * 10**6]
        values = (bar.open, bar.high, bar.low, bar.close, bar.volume)
        assert values == tuple(Decimal(r[c]) for c in ("open", "high", "low", "close", "volume"))
    assert sorted(quotes) == [(int(r["open_time_ms"]) + 60_000) * 10**6 for r in quote_rows]
    for r in quote_rows:
        quote = quotes[(int(r["open_time_ms"]) + 60_000) * 10**6]
        assert (quote.bid, quote.ask) == (Decimal(r["bid_close"]), Decimal(r["ask_close"]))
        # The library CSV wrote sizes as 15-significant-digit floats; the bundle keeps Lean's
        # original text (e.g. 33.35399601000002), so sizes agree to 1e-12 relative.
        for ours, theirs in (
            (quote.bid_size, r["bid_size_last"]),
            (quote.ask_size, r["ask_size_last"]),
        ):
            assert abs(ours - Decimal(theirs)) <= Decimal(theirs) * Decimal("1e-12")


def test_4h_set_covers_the_march_2020_crash_with_its_recorded_lows() -> None:
    batches = load_events(FOUR_HOURS, start=dt.date(2020, 3, 12), end=dt.date(2020, 3, 13))
    bars = [e for batch in batches for e in batch]

    assert len(batches) == 12 and len(bars) == 24
    assert all(isinstance(e, Bar) and e.interval_s == 14_400 for e in bars)
    eth_low = min(e.low for e in bars if isinstance(e, Bar) and e.product == "ETH-USD")
    assert eth_low == Decimal("90")  # 2020-03-13 00:00 bar
    assert batches[0][0].ts == ns("2020-03-12T04:00")


def test_loading_the_full_4h_set_gives_every_bar_of_both_products() -> None:
    batches = load_events(FOUR_HOURS)
    counts = {"BTC-USD": 0, "ETH-USD": 0}
    for batch in batches:
        for event in batch:
            counts[event.product] += 1

    assert counts == {"BTC-USD": 20_695, "ETH-USD": 20_675}
    assert batches[-1][0].ts == ns("2025-10-28T04:00")


# --- filters ----------------------------------------------------------------------------------


def test_product_filter_keeps_only_the_requested_products() -> None:
    batches = load_events(ONE_MINUTE, products=["LTC-USD", "ETH-USD"])

    assert {e.product for batch in batches for e in batch} == {"ETH-USD", "LTC-USD"}


def test_date_filter_keeps_whole_utc_days_by_bar_open_time() -> None:
    batches = load_events(ONE_MINUTE, products=["BTC-USD"], start=dt.date(2018, 4, 5),
                          end=dt.date(2018, 4, 5))  # fmt: skip

    assert batches[0][0].ts == ns("2018-04-05T00:01")  # the 00:00 bar
    assert batches[-1][0].ts == ns("2018-04-06T00:00")  # the 23:59 bar, end day included
    assert len(batches) == 1440


def test_unknown_product_in_the_filter_is_an_error_that_lists_the_products() -> None:
    with pytest.raises(DataError, match=r"products filter: XRP-USD not in the file.*BTC-USD"):
        load_events(ONE_MINUTE, products=["BTC-USD", "XRP-USD"])


def test_a_date_filter_that_leaves_nothing_says_it_was_the_date_filter() -> None:
    with pytest.raises(DataError, match=r"date filter start=2019-01-01 end=None leaves no rows"):
        load_events(ONE_MINUTE, start=dt.date(2019, 1, 1))


def test_wrongly_typed_or_contradictory_arguments_are_rejected() -> None:
    with pytest.raises(TypeError, match="sequence of product ids"):
        load_events(ONE_MINUTE, products="BTC-USD")
    with pytest.raises(ValueError, match="after end"):
        load_events(ONE_MINUTE, start=dt.date(2018, 4, 5), end=dt.date(2018, 4, 4))
    with pytest.raises(ValueError, match="interval_s=60"):
        load_events(ONE_MINUTE, interval_s=300)


# --- errors -----------------------------------------------------------------------------------


def test_an_unknown_set_name_is_an_error_that_lists_the_known_sets() -> None:
    with pytest.raises(
        DataError, match=f"unknown data set 'coinbase-1s'.*{ONE_MINUTE}, {FOUR_HOURS}"
    ):
        load_events("coinbase-1s")


def test_a_missing_file_is_an_error_naming_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"

    with pytest.raises(DataError, match="no such file") as caught:
        load_events(str(missing))

    assert caught.value.path == str(missing)


def test_a_missing_required_column_is_reported_on_line_1(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "a.csv", "product,open,high,low,close,volume", "BTC-USD,1,1,1,1,1")

    with pytest.raises(DataError) as caught:
        load_events(path)

    assert str(caught.value) == f"{path}:1: missing required column 'open_time_ms'"


def test_a_partial_column_group_is_a_missing_required_column(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "a.csv", "product,open_time_ms,bid,ask", "BTC-USD,1522800000000,1,2"
    )

    with pytest.raises(DataError, match=r"a.csv:1: missing required column 'bid_size'"):
        load_events(path)


GOOD_ROW = "BTC-USD,1522800000000,100,110,90,105,2.5,104,1,106,3"


@pytest.mark.parametrize(
    ("bad_row", "problem"),
    [
        ("BTC-USD,1522800060000,100,110,9O,105,2.5,104,1,106,3", "low: cannot parse '9O'"),
        ("BTC-USD,1522800060000,100,110,90,105,2.5,104,1,1_06,3", "ask: cannot parse '1_06'"),
        ("BTC-USD,1522800060000,NaN,110,90,105,2.5,104,1,106,3", "open: expected a finite number"),
        ("BTC-USD,1522800060000,100,inf,90,105,2.5,104,1,106,3", "high: expected a finite number"),
        ("BTC-USD,1522800060000,100,110,90,105,2.5,-104,1,106,3", "bid: expected a price > 0"),
        ("BTC-USD,1522800060000,100,110,90,0,2.5,104,1,106,3", "close: expected a price > 0"),
        (
            "BTC-USD,1522800060000,100,110,90,105,-2.5,104,1,106,3",
            "volume: expected a quantity >= 0",
        ),
        (
            "BTC-USD,1522800060000,100,110,90,105,2.5,107,1,106,3",
            "crossed quote: bid 107 > ask 106",
        ),
        ("BTC-USD,1522800060000,100,110,90,111,2.5,104,1,106,3", "inconsistent bar"),
        (
            "BTC-USD,1522800060000,100,110,90,105,,104,1,106,3",
            "volume empty: a trade bar needs all of open,high,low,close,volume",
        ),
        ("BTC-USD,1522800060000,,,,,,,,,", "neither a trade bar (OHLCV) nor a quote"),
        ("BTC-USD,2018-04-04,100,110,90,105,2.5,104,1,106,3", "open_time_ms: expected epoch"),
        ("BTC-USD,1522800060,100,110,90,105,2.5,104,1,106,3", "looks like seconds"),
        ("BTC-USD,1522800000000,100,110,90,105,2.5,104,1,106,3", "duplicate row for BTC-USD"),
        ("BTC-USD,1522800060000,100,110,90,105,2.5,104,1,106", "expected 11 fields"),
        (",1522800060000,100,110,90,105,2.5,104,1,106,3", "product is empty"),
    ],
)
def test_a_malformed_row_is_reported_with_file_line_and_problem(
    tmp_path: Path, bad_row: str, problem: str
) -> None:
    later_row = GOOD_ROW.replace("1522800000000", "1522800120000")
    path = write_csv(tmp_path / "bad.csv", HEADER, GOOD_ROW, bad_row, later_row)

    with pytest.raises(DataError) as caught:
        load_events(path)

    assert caught.value.path == str(path)
    assert caught.value.line == 3
    assert str(caught.value).startswith(f"{path}:3: ")
    assert problem in caught.value.problem


def test_a_malformed_row_is_an_error_even_when_the_filters_exclude_it(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "bad.csv", HEADER, GOOD_ROW,
                     "ETH-USD,1522800000000,1,1,1,1,1,5,1,4,1")  # fmt: skip

    with pytest.raises(DataError, match=r"bad.csv:3: crossed quote"):
        load_events(path, products=["BTC-USD"])


def test_a_gzip_file_that_is_truncated_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(gzip.compress(f"{HEADER}\n{GOOD_ROW}\n".encode())[:-12])

    with pytest.raises(DataError, match="cannot decompress"):
        load_events(path, interval_s=60)


def test_a_file_without_data_rows_is_reported(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "empty.csv", HEADER)

    with pytest.raises(DataError, match=r"empty\.csv: the file has no data rows"):
        load_events(path, interval_s=60)


def test_the_interval_cannot_be_inferred_from_a_single_bar_per_product(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "one.csv", HEADER, GOOD_ROW)

    with pytest.raises(DataError, match="cannot infer the bar interval"):
        load_events(path)
    assert load_events(path, interval_s=300)[0][0].ts == (1522800000000 + 300_000) * 10**6


def test_bars_closer_together_than_the_interval_are_an_overlap_error(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "o.csv", HEADER, GOOD_ROW, GOOD_ROW.replace("800000000", "800060000")
    )

    with pytest.raises(DataError, match=r"o.csv:3: BTC-USD bars overlap: opens 60 s after line 2"):
        load_events(path, interval_s=300)


# --- user CSV ---------------------------------------------------------------------------------


def test_a_user_csv_written_from_loaded_events_loads_back_identically(
    tmp_path: Path, minute_batches: list[tuple[Bar | Quote, ...]]
) -> None:
    original = minute_batches[:120]
    rows: dict[tuple[str, int], dict[str, str]] = {}
    for batch in original:
        for event in batch:
            open_ms = event.ts // 10**6 - 60_000
            row = rows.setdefault((event.product, open_ms), dict.fromkeys(LONG_CSV_COLUMNS, ""))
            row.update(product=event.product, open_time_ms=str(open_ms))
            if isinstance(event, Bar):
                row.update(
                    {c: str(getattr(event, c)) for c in ("open", "high", "low", "close", "volume")}
                )
            else:
                row.update(
                    {c: str(getattr(event, c)) for c in ("bid", "bid_size", "ask", "ask_size")}
                )
    path = tmp_path / "mine.csv.gz"
    with gzip.open(path, "wt", newline="") as stream:
        writer = csv.DictWriter(stream, LONG_CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(reversed(list(rows.values())))  # unsorted on purpose

    assert load_events(path) == original  # interval inferred: 60 s
    assert load_events(str(path), products=["ETH-USD"]) == [
        tuple(e for e in batch if e.product == "ETH-USD") for batch in original
    ]


def test_a_candles_only_user_csv_with_extra_columns_loads_exact_decimals(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "candles.csv",
        "open_time_utc,product,open_time_ms,open,high,low,close,volume",
        "2020-03-12T00:00:00Z,BTC-USD,1583971200000,7935.01,7966.21,7600,7700.1,6.527e-05",
        "2020-03-12T04:00:00Z,BTC-USD,1583985600000,7700.1,7700.1,7611,7633.98,0.1",
    )

    (first,), (second,) = load_events(path)

    assert isinstance(first, Bar) and isinstance(second, Bar)
    assert first.interval_s == 14_400 and first.ts == ns("2020-03-12T04:00")
    assert first.volume == Decimal("0.00006527") and second.volume == Decimal("0.1")
    assert str(first.close) == "7700.1"
