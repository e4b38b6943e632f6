"""tools/candles_to_long_csv.py: the shared library's candle CSV → the long CSV the replay reads."""

from __future__ import annotations

import gzip
import sys
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import candles_to_long_csv as tool  # noqa: E402

from cryptoj.marketdata.loader import load_events  # noqa: E402
from cryptoj.models.market import Bar  # noqa: E402

HEADER = "open_time_ms,open_time_utc,open,high,low,close,volume\n"
ROWS = (  # format-conversion fixture: two hand-written rows, not recorded data
    "1640991660000,2021-12-31T23:01:00.000Z,100,103,99,102,3040\n"
    "1640991720000,2021-12-31T23:02:00.000Z,102,104,101,103,0\n"
)


def test_volume_in_quote_becomes_base_units_and_the_replay_loader_reads_the_result(
    tmp_path: Path,
) -> None:
    src, out = tmp_path / "in.csv", tmp_path / "out.csv.gz"
    src.write_text(HEADER + ROWS)
    assert tool.main([str(src), str(out), "--product", "BTC-USD", "--volume-in-quote"]) == 0
    with gzip.open(out, "rt") as f:
        lines = f.read().splitlines()
    assert lines[0] == ",".join(tool.COLUMNS)
    assert lines[1] == "BTC-USD,1640991660000,100,103,99,102,30.00000000,,,,"  # 3040 / 101.33
    bars = [e for b in load_events(str(out)) for e in b if isinstance(e, Bar)]
    assert [b.close for b in bars] == [Decimal(102), Decimal(103)]
    assert bars[0].ts == 1640991660000 * 1_000_000 + 60 * 10**9  # stamped at the bar's close


def test_a_file_without_the_candle_columns_is_refused_with_one_line(
    tmp_path: Path,
) -> None:
    src = tmp_path / "bad.csv"
    src.write_text("a,b\n1,2\n")
    assert tool.main([str(src), str(tmp_path / "o.csv"), "--product", "BTC-USD"]) == 2
