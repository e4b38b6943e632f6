"""Audit a replay journal's risk figures independently of the daemon's own valuation.

Reads the journal with plain SQLite (fills in the order they were booked, the equity rows the
portfolio journalled, the risk events) and, with ``--data``, the market data, and recomputes:

* **marks**: the equity of every journalled equity row from the fills alone, each product
  marked at its latest price at that row's timestamp (quote mid, else bar close), and how far
  the journalled equity is from it (the share of rows off by more than 0.1 %);
* **daily losses** by the UTC day convention (README, "Risk levels"): a day runs from just
  after 00:00 to the next 00:00 inclusive; its reference equity is the last equity row at or
  before its opening 00:00. For every day whose loss reached ``--daily-loss-limit``: was the
  risk level HALTED that day (already in force or entered), and did the loss exceed the limit
  by more than the day's largest single-row fall (the largest move of one bar on bar data);
* **drawdown**: the largest fall from the equity high-water mark, when it first reached
  ``--max-drawdown`` and when the RiskActor journalled its ``drawdown_halt``;
* **costs**: fees paid, traded notional (turnover) and fees as a fraction of starting cash;
* **max position weight** (with ``--data``): the largest position value over equity at any
  market timestamp, positions from the fills stamped at or before it;
* **snapshot marks** (with ``--data`` and ``--trace``): every ``PortfolioSnapshot`` the
  RiskActor received, its equity against its own cash and positions valued at the data's
  latest price of each product at the snapshot's time (the share valued at mixed instants);
* **data age**: every plan's decisions against ``portfolio.quote_max_age_s`` of ``--config``
  (default ``config.yaml`` when present, else the default) or ``--quote-max-age``: a
  ``WARNING`` line and one line per decision made on an older quote
  (:mod:`cryptoj.portfolio.data_age`).

The journal is opened read-only, so a live daemon's journal can be audited while it runs.

Usage::

    python tools/risk_audit.py JOURNAL [--data NAME|CSV [--trace TRACE]] [--from D --to D] [--json]
        [--daily-loss-limit 0.02] [--max-drawdown 0.10] [--config FILE | --quote-max-age S]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sqlite3
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptoj.config import ConfigError, load_config
from cryptoj.marketdata.ticks import load_market_data
from cryptoj.models.market import Bar, Quote, Trade
from cryptoj.portfolio.data_age import audit_decisions, decisions_of, planned_steps

DAY_NS = 86_400 * 10**9
DEFAULT_CONFIG = "config.yaml"


def day_of(ts: int) -> int:
    """The UTC day of a market time: 00:00 closes the previous day."""
    return (ts - 1) // DAY_NS


def _rows(db: sqlite3.Connection, sql: str) -> list[tuple[Any, ...]]:
    return list(db.execute(sql))


def read(path: str) -> dict[str, Any]:
    """The journal's fills, equity rows, risk-level and drawdown events, starting cash."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        start = Decimal(_rows(db, "SELECT value FROM meta WHERE key = 'starting_cash'")[0][0])
        fills = [
            (int(ts), p, s, Decimal(q), Decimal(px), Decimal(fee))
            for ts, p, s, q, px, fee in _rows(
                db, "SELECT ts, product, side, quantity, price, fee FROM fills ORDER BY rowid"
            )
        ]
        equity = [
            (int(ts), float(e)) for ts, e in _rows(db, "SELECT ts, equity FROM equity ORDER BY ts")
        ]
        levels = [
            (int(ts), d.split(" -> ", 1)[1].split(":", 1)[0])
            for ts, d in _rows(
                db, "SELECT ts, detail FROM events WHERE kind = 'risk_level' ORDER BY seq"
            )
        ]
        halts = [
            int(ts) for (ts,) in _rows(db, "SELECT ts FROM events WHERE kind = 'drawdown_halt'")
        ]
        planned = planned_steps(db)
    finally:
        db.close()
    return {
        "start": start,
        "fills": fills,
        "equity": equity,
        "levels": levels,
        "halts": halts,
        "planned": planned,
    }


def daily(j: dict[str, Any], limit: float) -> dict[str, Any]:
    """Day losses by the convention and the checks on the days that reached ``limit``."""
    rows: list[tuple[int, float]] = j["equity"]
    levels: list[tuple[int, str]] = j["levels"]
    days: dict[int, dict[str, float]] = {}
    prev = float(j["start"])
    for ts, eq in rows:
        d = day_of(ts)
        if d not in days:
            days[d] = {"ref": prev, "loss": 0.0, "bar": 0.0, "last": prev}
        day = days[d]
        day["loss"] = max(day["loss"], (day["ref"] - eq) / day["ref"])
        day["bar"] = max(day["bar"], (day["last"] - eq) / day["ref"])
        day["last"] = prev = eq
    reached = []
    li = 0
    level = "NORMAL"
    for d in sorted(days):
        start_level = level
        entered = False
        while li < len(levels) and day_of(levels[li][0]) <= d:
            if day_of(levels[li][0]) == d and levels[li][1] == "HALTED":
                entered = True
            level = levels[li][1]
            li += 1
        info = days[d]
        if info["loss"] >= limit - 1e-12:
            reached.append(
                {
                    "day": str(dt.date(1970, 1, 1) + dt.timedelta(days=d)),
                    "loss": round(info["loss"], 6),
                    "halted": entered or start_level == "HALTED",
                    "excess": round(info["loss"] - limit, 6),
                    "largest_bar_fall": round(info["bar"], 6),
                    "excess_within_one_bar": info["loss"] - limit <= info["bar"] + 1e-12,
                }
            )
    return {
        "days": len(days),
        "worst_day_loss": round(max((v["loss"] for v in days.values()), default=0.0), 6),
        "limit_days": reached,
        "limit_days_halted": sum(r["halted"] for r in reached),
        "limit_days_excess_within_one_bar": sum(r["excess_within_one_bar"] for r in reached),
    }


def drawdown(j: dict[str, Any], limit: float) -> dict[str, Any]:
    """Largest fall from the high-water mark; when it first reached ``limit``; the halt."""
    hwm, worst, first = float(j["start"]), 0.0, None
    for ts, eq in j["equity"]:
        hwm = max(hwm, eq)
        dd = (hwm - eq) / hwm
        worst = max(worst, dd)
        if first is None and dd >= limit:
            first = ts
    halts = j["halts"]
    return {
        "max_drawdown": round(worst, 6),
        "drawdown_limit_reached_ts": first,
        "drawdown_halt_ts": halts[0] if halts else None,
        "halt_no_later_than_next_row": first is None or (bool(halts) and halts[0] <= first),
    }


def costs(j: dict[str, Any]) -> dict[str, Any]:
    """Fees, turnover (traded notional) and fees over starting cash."""
    fees = sum((f[5] for f in j["fills"]), Decimal(0))
    turnover = sum((f[3] * f[4] for f in j["fills"]), Decimal(0))
    return {
        "fills": len(j["fills"]),
        "fees_paid": round(float(fees), 2),
        "turnover": round(float(turnover), 2),
        "fees_fraction_of_start": round(float(fees / j["start"]), 6),
    }


def data_age(j: dict[str, Any], max_age_s: float) -> dict[str, Any]:
    """The plans' decisions against the data-age limit: the operator's line, and every
    decision made on an older quote (or without a recorded quote time)."""
    audit = audit_decisions(decisions_of(j["planned"]), int(max_age_s * 1e9))
    return {
        "decisions_checked": audit.checked,
        "decisions_on_stale_quotes": len(audit.problems),
        "oldest_quote_age_s": None if audit.oldest_ns is None else audit.oldest_ns / 1e9,
        "data_age": audit.line(),  # printed as it is, the stale decisions under it
        "stale_decisions": list(audit.problems),
    }


def quote_max_age(config: str | None, override: float | None) -> float:
    """The data-age limit: ``override``, else ``portfolio.quote_max_age_s`` of ``config``
    (``config.yaml`` when present, else the default configuration)."""
    if override is not None:
        return override
    if config is None and Path(DEFAULT_CONFIG).is_file():
        config = DEFAULT_CONFIG
    return load_config(config).portfolio.quote_max_age_s


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, got {text}")
    return value


def with_market(j: dict[str, Any], batches: list[tuple[Any, ...]]) -> dict[str, Any]:
    """Journalled equity against the recomputation, and the largest position weight."""
    quoted = {e.product for b in batches for e in b if isinstance(e, Quote)}
    fills = j["fills"]
    rows = j["equity"]
    marks: dict[str, Decimal] = {}
    cash: Decimal = j["start"]
    qty: dict[str, Decimal] = {}
    fi = ri = 0
    worst_w, worst_p = 0.0, None
    worst_dev, off, checked = 0.0, 0, 0

    def apply(upto: int) -> None:
        nonlocal fi, cash
        while fi < len(fills) and fills[fi][0] < upto:
            _, p, side, q, px, fee = fills[fi]
            signed = q if side == "BUY" else -q
            qty[p] = qty.get(p, Decimal(0)) + signed
            cash -= signed * px + fee
            fi += 1

    def value() -> Decimal:
        held = sum((q * marks.get(p, Decimal(0)) for p, q in qty.items()), Decimal(0))
        return Decimal(cash) + held

    for batch in batches:
        ts = batch[-1].ts
        # equity rows stamped before this batch: every fill booked before this batch counts
        while ri < len(rows) and rows[ri][0] < batch[0].ts:
            apply(batch[0].ts)
            recomputed = float(value())
            dev = abs(rows[ri][1] - recomputed) / recomputed if recomputed else 0.0
            worst_dev = max(worst_dev, dev)
            off += dev > 0.001
            checked += 1
            ri += 1
        for e in batch:
            if isinstance(e, Quote):
                marks[e.product] = (e.bid + e.ask) / 2
            elif isinstance(e, Bar) and e.product not in quoted:
                marks[e.product] = e.close
            elif isinstance(e, Trade) and e.product not in quoted:
                marks[e.product] = e.price
        apply(ts + 1)
        eq = value()
        if eq > 0:
            for p, q in qty.items():
                w = float(q * marks.get(p, Decimal(0)) / eq)
                if w > worst_w:
                    worst_w, worst_p = w, p
    return {
        "equity_rows_checked": checked,
        "equity_rows_off_by_over_0.1pct": off,
        "equity_rows_worst_deviation": round(worst_dev, 8),
        "max_position_weight": round(worst_w, 6),
        "max_position_product": worst_p,
    }


def trace_snapshots(path: str) -> list[dict[str, Any]]:
    """Every PortfolioSnapshot the RiskActor received, from a trace and its rotated files."""
    files = [Path(path)] + [Path(f"{path}.{n}") for n in range(1, 100)]
    out: list[tuple[int, dict[str, Any]]] = []
    for f in files:
        if not f.is_file():
            continue
        with f.open() as fh:
            for line in fh:
                if '"PortfolioSnapshot"' not in line:
                    continue
                rec = json.loads(line)
                if rec.get("kind") == "deliver" and rec.get("dst") == "risk":
                    out.append((int(rec["seq"]), rec["msg"]))
    return [m for _, m in sorted(out, key=lambda x: x[0])]


def snapshot_marks(snaps: list[dict[str, Any]], batches: list[tuple[Any, ...]]) -> dict[str, Any]:
    """Each snapshot's equity against its own cash and positions valued at the data's latest
    price of every product at the snapshot's time: how many were valued at mixed instants."""
    quoted = {e.product for b in batches for e in b if isinstance(e, Quote)}
    marks: dict[str, Decimal] = {}
    bi, off, worst = 0, 0, 0.0
    for snap in snaps:
        ts = int(snap["ts"])
        while bi < len(batches) and batches[bi][-1].ts <= ts:
            for e in batches[bi]:
                if isinstance(e, Quote):
                    marks[e.product] = (e.bid + e.ask) / 2
                elif isinstance(e, Bar) and e.product not in quoted:
                    marks[e.product] = e.close
                elif isinstance(e, Trade) and e.product not in quoted:
                    marks[e.product] = e.price
            bi += 1
        value = Decimal(str(snap["cash"])) + sum(
            (
                Decimal(str(p["quantity"])) * marks.get(p["product"], Decimal(0))
                for p in snap.get("positions") or ()
            ),
            Decimal(0),
        )
        dev = float(abs(Decimal(str(snap["equity"])) - value) / value) if value else 0.0
        worst = max(worst, dev)
        off += dev > 0.001
    return {
        "snapshots_checked": len(snaps),
        "snapshots_off_by_over_0.1pct": off,
        "snapshots_worst_deviation": round(worst, 8),
    }


def main(argv: list[str] | None = None) -> int:
    """Print the audit of one journal."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("journal")
    ap.add_argument("--data", default=None, help="market data (bundled name or CSV) of the run")
    ap.add_argument("--from", dest="start", type=dt.date.fromisoformat, default=None)
    ap.add_argument("--to", dest="end", type=dt.date.fromisoformat, default=None)
    ap.add_argument("--daily-loss-limit", type=float, default=0.02)
    ap.add_argument("--max-drawdown", type=float, default=0.10)
    ap.add_argument(
        "--trace", default=None, help="the run's trace: check every snapshot the risk actor saw"
    )
    ap.add_argument(
        "--config",
        default=None,
        help=f"the run's config: its portfolio.quote_max_age_s (default: {DEFAULT_CONFIG} "
        "when present)",
    )
    ap.add_argument(
        "--quote-max-age",
        type=_seconds,
        default=None,
        metavar="S",
        help="data-age limit in seconds (default: portfolio.quote_max_age_s of the config)",
    )
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    try:
        max_age_s = quote_max_age(args.config, args.quote_max_age)
    except ConfigError as e:
        print(f"risk_audit: {e}", file=sys.stderr)
        return 2
    j = read(args.journal)
    out: dict[str, Any] = {"journal": args.journal, "start_equity": float(j["start"])}
    out.update(costs(j))
    out.update(drawdown(j, args.max_drawdown))
    out.update(daily(j, args.daily_loss_limit))
    out.update(data_age(j, max_age_s))
    if args.data:
        batches = load_market_data(args.data, start=args.start, end=args.end)
        out.update(with_market(j, batches))
        if args.trace:
            out.update(snapshot_marks(trace_snapshots(args.trace), batches))
    if args.json:
        print(json.dumps(out, sort_keys=True))
        return 0
    for key, value in out.items():
        if key == "limit_days":
            print(f"{key}:")
            for r in value:
                print("  " + "  ".join(f"{k}={v}" for k, v in r.items()))
        elif key == "stale_decisions":
            for line in value:
                print(f"  {line}")
        elif key == "data_age":
            print(value)
        else:
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
