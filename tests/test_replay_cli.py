"""``cryptoj replay`` end to end, through the real command line in a subprocess.

The summary is checked against the journal itself (opened with ``sqlite3``, not through
:mod:`cryptoj.journal`) and against the last quotes of the data (read from the CSV text).
"""

from __future__ import annotations

import gzip
import json
import os
import sqlite3
import subprocess
import sys
from decimal import ROUND_DOWN, Decimal
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ["coinbase-1m-2018-04", "coinbase-4h-2016-2025"]
DEFAULT_DATA = "coinbase-1m-2018-04"
REQUIRED = {
    "events",
    "orders",
    "fills",
    "rejections",
    "start_equity",
    "final_equity",
    "fees_paid",
    "turnover",
    "fees_pct",
    "max_drawdown",
    "restarts",
    "dead_letters",
    "wall_seconds",
    "events_per_second",
    "escalations",
    "invariants_ok",
}
TIMING = {"wall_seconds", "events_per_second"}
Q8 = Decimal("0.00000001")
FAST_CONFIG = """\
strategy:
  fast_period: 3
  slow_period: 8
  entry_band: 0.0005
risk:
  volatility_halflife_bars: 5
  max_daily_turnover: 5  # the slice flips often: this run must end holding something
"""


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "cryptoj", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def summary_of(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    lines = proc.stdout.strip().splitlines()
    assert lines, f"no output; stderr: {proc.stderr}"
    summary = json.loads(lines[-1])
    assert isinstance(summary, dict)
    missing = REQUIRED - set(summary)
    assert not missing, f"summary lacks {sorted(missing)}"
    return summary


def bundled_text(name: str) -> str:
    raw = resources.files("cryptoj.marketdata").joinpath("bundled", f"{name}.csv.gz").read_bytes()
    return gzip.decompress(raw).decode("utf-8")


def last_mids(csv_text: str) -> dict[str, Decimal]:
    """Mid of the last quote of each product, straight from the long-format CSV text."""
    header, *rows = csv_text.splitlines()
    col = {name: i for i, name in enumerate(header.split(","))}
    last: dict[str, tuple[int, Decimal]] = {}
    for row in rows:
        f = row.split(",")
        if not f[col["bid"]]:
            continue
        t = int(f[col["open_time_ms"]])
        product = f[col["product"]]
        if product not in last or t > last[product][0]:
            mid = (Decimal(f[col["bid"]]) + Decimal(f[col["ask"]])) / 2
            last[product] = (t, mid)
    return {p: mid for p, (_, mid) in last.items()}


def count_events(csv_text: str) -> int:
    """Bars plus quotes in the CSV text (a row may have either or both)."""
    header, *rows = csv_text.splitlines()
    col = {name: i for i, name in enumerate(header.split(","))}
    return sum(
        bool(f[col["close"]]) + bool(f[col["bid"]]) for f in (row.split(",") for row in rows)
    )


def books_from_journal(path: Path) -> tuple[Decimal, Decimal, dict[str, Decimal], int]:
    """(starting cash, cash, positions, fill count) recomputed from the raw journal tables."""
    db = sqlite3.connect(path)
    try:
        (start,) = db.execute("SELECT value FROM meta WHERE key = 'starting_cash'").fetchone()
        rows = db.execute("SELECT side, quantity, price, fee, product FROM fills").fetchall()
    finally:
        db.close()
    cash = Decimal(start)
    positions: dict[str, Decimal] = {}
    for side, qty, price, fee, product in rows:
        notional = (Decimal(qty) * Decimal(price)).quantize(Q8, rounding=ROUND_DOWN)
        if side == "BUY":
            cash -= notional + Decimal(fee)
            positions[product] = positions.get(product, Decimal(0)) + Decimal(qty)
        else:
            assert side == "SELL", side
            cash += notional - Decimal(fee)
            positions[product] = positions.get(product, Decimal(0)) - Decimal(qty)
    return Decimal(start), cash, positions, len(rows)


def assert_equity_matches_journal(summary: dict[str, Any], journal: Path, csv_text: str) -> None:
    start, cash, positions, n_fills = books_from_journal(journal)
    mids = last_mids(csv_text)
    final = cash + sum((q * mids[p] for p, q in positions.items() if q), Decimal(0))
    assert summary["fills"] == n_fills
    assert summary["start_equity"] == float(start)
    assert summary["final_equity"] == pytest.approx(float(final), rel=1e-12, abs=1e-6)
    assert {p: Decimal(q) for p, q in summary["positions"].items()} == {
        p: q for p, q in positions.items() if q
    }
    assert all(q >= 0 for q in positions.values())
    assert cash >= 0
    db = sqlite3.connect(journal)
    try:
        rows = db.execute("SELECT quantity, price, fee FROM fills").fetchall()
    finally:
        db.close()
    fees = sum((Decimal(f) for _, _, f in rows), Decimal(0))
    traded = sum((Decimal(q) * Decimal(p) for q, p, _ in rows), Decimal(0))
    assert summary["fees_paid"] == pytest.approx(float(fees), abs=0.005)
    assert summary["fees_pct"] == pytest.approx(float(fees / start), abs=1e-6)
    assert summary["turnover"] == pytest.approx(float(traded / start), abs=1e-4)


@pytest.fixture(scope="module")
def fast_inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 120-minute slice of the bundled recorded set and a config that trades within minutes."""
    d = tmp_path_factory.mktemp("cli-inputs")
    header, *rows = bundled_text(DEFAULT_DATA).splitlines()
    first = min(int(r.split(",", 2)[1]) for r in rows)
    keep = [r for r in rows if int(r.split(",", 2)[1]) < first + 120 * 60_000]
    csv = d / "slice.csv"
    csv.write_text("\n".join([header, *keep]) + "\n", encoding="utf-8")
    cfg = d / "config.yaml"
    cfg.write_text(FAST_CONFIG, encoding="utf-8")
    return csv, cfg


def test_replay_json_summary_agrees_with_the_journal_and_the_data(
    tmp_path: Path, fast_inputs: tuple[Path, Path]
) -> None:
    csv, cfg = fast_inputs
    proc = cli(
        "replay",
        "--json",
        "--config",
        str(cfg),
        "--data",
        str(csv),
        "--seed",
        "3",
        "--journal",
        "journal.sqlite",
        "--trace",
        "trace.jsonl",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    s = summary_of(proc)
    assert s["invariants_ok"], s["invariant_problems"]
    assert s["fills"] > 0 and s["orders"] > 0
    assert s["events"] == count_events(csv.read_text())
    assert s["positions"], "the run should end holding something, so marking is exercised"
    assert s["restarts"] == 0 and s["escalations"] == 0 and s["dead_letters"] == 0
    assert 0 <= s["max_drawdown"] < 1
    assert s["wall_seconds"] > 0 and s["events_per_second"] > 0
    assert_equity_matches_journal(s, tmp_path / "journal.sqlite", csv.read_text())
    trace = (tmp_path / "trace.jsonl").read_bytes().splitlines()
    assert len(trace) == s["trace_records"] > 0
    assert json.loads(trace[0])["seq"] == 1


def test_same_seed_twice_gives_the_same_trace_bytes_and_summary(tmp_path: Path) -> None:
    runs = []
    for name in ("first", "second"):
        d = tmp_path / name
        d.mkdir()
        args = ("--journal", "journal.sqlite", "--trace", "trace.jsonl")
        proc = cli("replay", "--json", "--seed", "7", *args, cwd=d)
        assert proc.returncode == 0, proc.stderr
        s = summary_of(proc)
        assert s["invariants_ok"] and s["fills"] > 0
        runs.append(({k: v for k, v in s.items() if k not in TIMING}, (d / "trace.jsonl")))
    (s1, t1), (s2, t2) = runs
    assert s1 == s2
    assert t1.read_bytes() == t2.read_bytes()
    assert s1["data"] == DEFAULT_DATA and s1["seed"] == 7


def test_chaos_20_restarts_and_keeps_the_invariants(tmp_path: Path) -> None:
    proc = cli(
        "replay",
        "--json",
        "--chaos",
        "20",
        "--journal",
        "journal.sqlite",
        "--trace",
        "",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    s = summary_of(proc)
    assert s["invariants_ok"], s["invariant_problems"]
    assert s["restarts"] >= 20
    assert s["chaos_injected"] == 20
    assert s["escalations"] == 0
    assert s["trace"] is None and not (tmp_path / "var").exists()
    assert_equity_matches_journal(s, tmp_path / "journal.sqlite", bundled_text(DEFAULT_DATA))


def test_chaos_storm_ends_in_an_emergency_with_exit_3(tmp_path: Path) -> None:
    proc = cli(
        "replay",
        "--json",
        "--chaos-storm",
        "--journal",
        "journal.sqlite",
        "--trace",
        "trace.jsonl",
        cwd=tmp_path,
    )
    assert proc.returncode == 3, proc.stderr
    s = summary_of(proc)
    assert s["exit_code"] == 3
    assert s["escalations"] >= 1
    assert s["open_orders"] == 0
    assert s["emergency"]
    db = sqlite3.connect(tmp_path / "journal.sqlite")
    try:
        kinds = [k for (k,) in db.execute("SELECT kind FROM events WHERE actor = 'shutdown'")]
    finally:
        db.close()
    assert "emergency" in kinds and "emergency_cancelled" in kinds
    assert "feed_finished" not in kinds  # it stopped before the end of the data


def test_list_data_lists_both_bundled_sets(tmp_path: Path) -> None:
    proc = cli("replay", "--list-data", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    names = [line.split("\t")[0] for line in proc.stdout.splitlines() if line.strip()]
    assert names == BUNDLED


def test_unknown_data_name_exits_2_naming_it(tmp_path: Path) -> None:
    proc = cli(
        "replay", "--json", "--data", "coinbase-1m-1999-01", "--journal", "j.sqlite", cwd=tmp_path
    )
    assert proc.returncode == 2
    assert "coinbase-1m-1999-01" in proc.stderr
    assert "coinbase-1m-2018-04" in proc.stderr  # it lists what exists
    assert proc.stdout.strip() == ""
    assert "Traceback" not in proc.stderr
