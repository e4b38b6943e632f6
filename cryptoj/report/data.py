"""The figures of a report, from a journal file and the market data it traded on.

Everything comes from the journal (``equity``, ``fills``, ``position_changes``, ``orders``,
``events``, ``meta``; opened read-only, so a live daemon's journal can be reported while it
runs) plus the recorded prices of the same data set
(:func:`cryptoj.marketdata.ticks.load_market_data`):

* **prices**: each product's mid where the data has quotes, else its bar close, else its
  last trade price (tick data);
* **benchmark**: equal-weight buy-and-hold of the products over the same period from the same
  data: the starting equity split equally at the first timestamp, never rebalanced, no fees;
* **exposure**: each position (from ``position_changes``) valued at the price of each
  timestamp, as a fraction of the journalled equity;
* **risk levels**: the ``risk_level`` events (``"A -> B: why"``), NORMAL before the first;
* **slippage** of each fill against the mid at its timestamp, in basis points (positive =
  paid more than mid on a buy, received less on a sell);
* **data age**: every plan's decisions (``rebalance_steps``, step ``planned``) checked against
  ``portfolio.quote_max_age_s`` (:func:`cryptoj.portfolio.data_age.audit_decisions`).
"""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pandas as pd

from cryptoj.config import PortfolioConfig
from cryptoj.marketdata.ticks import load_market_data
from cryptoj.models.market import Bar, Quote, Trade
from cryptoj.portfolio.data_age import AgeAudit, audit_decisions, decisions_of, planned_steps

LEVELS = ("NORMAL", "CAUTION", "REDUCING", "HALTED")
_LEVEL_EVENT = re.compile(r"^\s*(\w+)\s*->\s*(\w+)")


class ReportError(Exception):
    """The journal cannot be reported (missing, not a cryptoj journal)."""


@dataclass
class ReportData:
    """Aligned time series and tables of one session (index: UTC timestamps)."""

    journal: str
    data: str
    products: list[str]
    start_cash: float
    equity: pd.Series
    benchmark: pd.Series
    prices: pd.DataFrame
    exposure: pd.DataFrame  # weight of equity per product
    levels: pd.Series  # rank 0..3
    fills: pd.DataFrame
    orders: pd.DataFrame
    events: pd.DataFrame
    data_age: AgeAudit  # the plans' quote ages against portfolio.quote_max_age_s
    extra: dict[str, Any] = field(default_factory=dict)


def _ro(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise ReportError(f"{path}: no such journal")
    return sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=ro", uri=True, timeout=5.0)


def _frame(db: sqlite3.Connection, sql: str) -> pd.DataFrame:
    try:
        cur = db.execute(sql)
    except sqlite3.DatabaseError as e:
        raise ReportError(f"not a cryptoj journal: {e}") from e
    cols = [d[0] for d in cur.description]
    return pd.DataFrame(cur.fetchall(), columns=cols)


def _times(ns: pd.Series | Sequence[int]) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(pd.to_datetime(np.asarray(ns, dtype="int64"), unit="ns", utc=True))


def journal_meta(path: str | Path) -> dict[str, str]:
    """The journal's ``meta`` table (starting cash, and the data set when recorded)."""
    db = _ro(Path(path))
    try:
        return {
            str(k): str(v)
            for k, v in _frame(db, "SELECT key, value FROM meta").itertuples(index=False)
        }
    finally:
        db.close()


def read_journal(path: str | Path) -> dict[str, Any]:
    """The journal's tables as frames, and its meta values."""
    p = Path(path)
    db = _ro(p)
    try:
        meta = dict(_frame(db, "SELECT key, value FROM meta").itertuples(index=False))
        return {
            "meta": meta,
            "equity": _frame(db, "SELECT ts, equity, cash FROM equity ORDER BY ts"),
            "fills": _frame(
                db,
                "SELECT fill_id, client_order_id, product, side, quantity, price, fee, liquidity,"
                " ts FROM fills ORDER BY ts, rowid",
            ),
            "changes": _frame(
                db, "SELECT ts, product, quantity FROM position_changes ORDER BY seq"
            ),
            "orders": _frame(db, "SELECT * FROM orders ORDER BY created_ts, client_order_id"),
            "events": _frame(db, "SELECT seq, ts, actor, kind, detail FROM events ORDER BY seq"),
            "planned": planned_steps(db),
        }
    finally:
        db.close()


def load_prices(
    data: str,
    products: Sequence[str] | None,
    start_ns: int | None,
    end_ns: int | None,
    catalog: str = "data",
) -> pd.DataFrame:
    """Price per product and timestamp over [start, end]: the mid where the data has quotes,
    else the bar close, else the last trade price (tick data)."""

    def day(ns: int) -> dt.date:
        return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).date()

    batches = load_market_data(
        data,
        products=list(products) if products else None,
        start=None if start_ns is None else day(start_ns) - dt.timedelta(days=1),
        end=None if end_ns is None else day(end_ns),
        catalog=catalog,
    )
    rows: dict[int, tuple[list[int], list[str], list[float]]] = {
        0: ([], [], []),
        1: ([], [], []),
        2: ([], [], []),
    }
    lo = -1 if start_ns is None else start_ns
    hi = None if end_ns is None else end_ns
    for batch in batches:
        for ev in batch:
            if ev.ts < lo or (hi is not None and ev.ts > hi):
                continue
            if isinstance(ev, Quote):
                kind, price = 0, ev.mid
            elif isinstance(ev, Bar):
                kind, price = 1, ev.close
            elif isinstance(ev, Trade):
                kind, price = 2, ev.price
            else:
                continue
            ts, names, prices = rows[kind]
            ts.append(ev.ts)
            names.append(ev.product)
            prices.append(float(price))
    frame = pd.DataFrame()
    for kind in (0, 1, 2):  # the first kind a product has wins
        ts, names, prices = rows[kind]
        if not ts:
            continue
        long = pd.DataFrame({"ts": ts, "product": names, "price": prices})
        wide = long.pivot_table(index="ts", columns="product", values="price", aggfunc="last")
        wide = wide[[c for c in wide.columns if c not in frame.columns]]
        frame = wide if frame.empty else frame.join(wide, how="outer")
    if frame.empty:
        return frame
    frame = frame.sort_index()
    frame.index = _times(frame.index.to_numpy())
    frame.columns = [str(c) for c in frame.columns]
    return frame[sorted(frame.columns)]


def benchmark(prices: pd.DataFrame, start_equity: float) -> pd.Series:
    """Equal-weight buy-and-hold: ``start_equity / N`` in each product at its first price."""
    if prices.empty:
        return pd.Series(dtype=float)
    filled = prices.ffill().bfill()
    rel = filled / filled.iloc[0]
    return rel.mean(axis=1) * start_equity


def drawdown(curve: pd.Series) -> pd.Series:
    """Fall from the running peak, as a fraction (0 at a new high)."""
    if curve.empty:
        return curve
    peak = curve.cummax()
    return (peak - curve) / peak


def level_series(events: pd.DataFrame, index: pd.DatetimeIndex) -> pd.Series:
    """Risk level rank (0 NORMAL … 3 HALTED) at each timestamp of ``index``."""
    rows = events[events["kind"] == "risk_level"] if not events.empty else events
    points: list[tuple[int, int]] = []
    for ts, detail in zip(rows.get("ts", []), rows.get("detail", []), strict=True):
        m = _LEVEL_EVENT.match(str(detail))
        if m and m.group(2) in LEVELS:
            points.append((int(ts), LEVELS.index(m.group(2))))
    out = pd.Series(0, index=index, dtype=int)
    if not points or index.empty:
        return out
    steps = pd.Series([r for _, r in points], index=_times([t for t, _ in points]))
    steps = steps[~steps.index.duplicated(keep="last")].sort_index()
    aligned = steps.reindex(index.union(steps.index)).ffill().reindex(index)
    return aligned.fillna(0).astype(int)


def exposure_weights(
    changes: pd.DataFrame, prices: pd.DataFrame, equity: pd.Series
) -> pd.DataFrame:
    """Position value / equity per product at each equity timestamp."""
    index = equity.index
    out = pd.DataFrame(index=index)
    if changes.empty or index.empty:
        return out
    px = prices.reindex(index.union(prices.index)).ffill().reindex(index)
    for product, rows in changes.groupby("product"):
        qty = pd.Series(
            rows["quantity"].astype(float).to_numpy(), index=_times(rows["ts"].to_numpy())
        )
        qty = qty[~qty.index.duplicated(keep="last")].sort_index()
        held = qty.reindex(index.union(qty.index)).ffill().reindex(index).fillna(0.0)
        if product in px:
            out[str(product)] = held * px[product] / equity
    return out.fillna(0.0)


def slippage_bps(fills: pd.DataFrame, prices: pd.DataFrame) -> pd.Series:
    """Each fill against the mid at its timestamp, in bps (positive = worse than mid)."""
    times = _times(fills["ts"].to_numpy()) if not fills.empty else pd.DatetimeIndex([])
    out = np.full(len(fills), np.nan)
    if fills.empty or prices.empty:
        return pd.Series(out, index=times, dtype=float)
    price = fills["price"].astype(float).to_numpy()
    sign = np.where(fills["side"].to_numpy() == "BUY", 1.0, -1.0)
    for product in prices.columns:
        rows = (fills["product"] == product).to_numpy()
        if rows.any():
            mid = prices[product].dropna().reindex(times[rows], method="ffill").to_numpy()
            out[rows] = sign[rows] * (price[rows] - mid) / mid * 10_000
    return pd.Series(out, index=times, dtype=float)


def load_report_data(
    journal: str | Path,
    data: str | None = None,
    *,
    products: Sequence[str] | None = None,
    extra: dict[str, Any] | None = None,
    catalog: str = "data",
    quote_max_age_s: float = PortfolioConfig().quote_max_age_s,
) -> ReportData:
    """Everything the report shows. ``data``: the market data set (default: ``meta.data``);
    ``catalog``: the local catalog for ``catalog:`` / ``recorded:`` sets;
    ``quote_max_age_s``: the data-age limit the decisions are checked against (the config's
    ``portfolio.quote_max_age_s``)."""
    tables = read_journal(journal)
    meta = tables["meta"]
    data = data or meta.get("data")
    if not data:
        raise ReportError(
            f"{journal}: the journal does not record its market data; pass --data NAME|PATH"
        )
    start_cash = float(meta.get("starting_cash") or 0.0)
    eq_rows = tables["equity"]
    if products is None and meta.get("products"):
        products = [p for p in str(meta["products"]).split(",") if p]
    start_ns = int(eq_rows["ts"].min()) if not eq_rows.empty else None
    end_ns = int(eq_rows["ts"].max()) if not eq_rows.empty else None
    prices = load_prices(data, products, start_ns, end_ns, catalog)
    equity = pd.Series(
        eq_rows["equity"].astype(float).to_numpy(),
        index=_times(eq_rows["ts"].to_numpy()),
        dtype=float,
    )
    if not equity.empty and not start_cash:
        start_cash = float(equity.iloc[0])
    bench = benchmark(prices, start_cash)
    fills = tables["fills"]
    if not fills.empty:
        fills = fills.assign(
            time=_times(fills["ts"].to_numpy()),
            slippage_bps=slippage_bps(fills, prices).to_numpy(),
        )
    events = tables["events"]
    if not events.empty:
        events = events.assign(time=_times(events["ts"].to_numpy()))
    return ReportData(
        journal=str(journal),
        data=str(data),
        products=list(prices.columns),
        start_cash=start_cash,
        equity=equity,
        benchmark=bench,
        prices=prices,
        exposure=exposure_weights(tables["changes"], prices, equity),
        levels=level_series(events, pd.DatetimeIndex(equity.index)),
        fills=fills,
        orders=tables["orders"],
        events=events,
        data_age=audit_decisions(decisions_of(tables["planned"]), int(quote_max_age_s * 1e9)),
        extra=dict(extra or {}),
    )


__all__ = [
    "LEVELS",
    "ReportData",
    "ReportError",
    "benchmark",
    "drawdown",
    "exposure_weights",
    "journal_meta",
    "level_series",
    "load_prices",
    "load_report_data",
    "read_journal",
    "slippage_bps",
]
