"""The report's summarised tables (pure functions of :class:`~cryptoj.report.data.ReportData`).

* **decided vs child orders**: the journal's ``orders`` holds the orders the portfolio decided
  *and* the child orders a split order sent to the venue (``<parent>-c<n>``); the report
  counts them apart, as the replay summary does (its ``orders`` are the decided ones);
* **per product**: decided and child orders, fills, bought and sold quantity, traded value,
  fees, mean slippage and the position left at the end;
* **events**: counts by kind, and the last few rows with long details shortened (the whole
  table goes to ``events.csv`` beside the page).
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import pandas as pd

CHILD_ID = re.compile(r"-c\d+$")
DETAIL_WIDTH = 160


def is_child(client_order_ids: pd.Series) -> pd.Series:
    """True for the child orders of a split order (``<parent>-c<n>``)."""
    return client_order_ids.astype(str).str.contains(CHILD_ID)


def order_counts(orders: pd.DataFrame) -> tuple[int, dict[str, int], int]:
    """(decided orders, their counts by status, child orders)."""
    if orders.empty:
        return 0, {}, 0
    child = is_child(orders["client_order_id"])
    decided = orders[~child]
    by_status = {str(k): int(v) for k, v in decided["status"].value_counts().sort_index().items()}
    return len(decided), by_status, int(child.sum())


def product_rows(products: list[str], orders: pd.DataFrame, fills: pd.DataFrame) -> list[list[str]]:
    """One row per product: see the module docstring (columns: :data:`PRODUCT_HEAD`)."""
    rows = []
    for product in products:
        o = orders[orders["product"] == product] if not orders.empty else orders
        child = is_child(o["client_order_id"]) if not o.empty else pd.Series(dtype=bool)
        f = fills[fills["product"] == product] if not fills.empty else fills
        if f.empty:
            decided, children = str(int((~child).sum())), str(int(child.sum()))
            rows.append([product, decided, children, "0", "0 / 0", "–", "0.00", "0.00", "–", "0"])
            continue
        qty = f["quantity"].astype(float)
        value = qty * f["price"].astype(float)
        buys = f["side"] == "BUY"
        bought, sold = _sum(f["quantity"][buys]), _sum(f["quantity"][~buys])
        slip = f["slippage_bps"].dropna() if "slippage_bps" in f else pd.Series(dtype=float)
        rows.append(
            [
                product,
                str(int((~child).sum())),
                str(int(child.sum())),
                str(len(f)),
                f"{int(buys.sum())} / {int((~buys).sum())}",
                f"{bought.normalize():f} / {sold.normalize():f}",
                f"{value.sum():,.2f}",
                f"{f['fee'].astype(float).sum():,.2f}",
                f"{slip.mean():.2f}" if not slip.empty else "–",
                f"{(bought - sold).normalize():f}",
            ]
        )
    return rows


PRODUCT_HEAD = [
    "product",
    "decided orders",
    "child orders",
    "fills",
    "buys / sells",
    "bought / sold quantity",
    "traded value",
    "fees",
    "mean slippage bps",
    "position at end",
]


def event_counts(events: pd.DataFrame) -> list[list[str]]:
    """(kind, count, first, last) rows, most frequent first."""
    if events.empty:
        return []
    out = []
    for kind, group in sorted(events.groupby("kind"), key=lambda kv: (-len(kv[1]), kv[0])):
        out.append([str(kind), str(len(group)), _day(group["ts"].min()), _day(group["ts"].max())])
    return out


def short(text: str, width: int = DETAIL_WIDTH) -> str:
    """``text`` on one line, cut to ``width`` characters; a JSON object as ``key=value``
    pairs (a nested object by its order id or type)."""
    text = " ".join(str(text).split())
    if text.startswith("{"):
        try:
            body = json.loads(text)
        except ValueError:
            body = None
        if isinstance(body, dict):
            text = " ".join(f"{k}={_brief(v)}" for k, v in body.items())
    return text if len(text) <= width else text[: width - 1] + "…"


def _brief(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("client_order_id") or value.get("type") or "{…}")
    if isinstance(value, list):
        return f"[{len(value)}]"
    return str(value)


def _sum(values: pd.Series) -> Decimal:
    return sum((Decimal(str(v)) for v in values), Decimal(0))


def _day(ns: int) -> str:
    return str(pd.Timestamp(int(ns), unit="ns", tz="UTC").strftime("%Y-%m-%d %H:%M"))


__all__ = [
    "PRODUCT_HEAD",
    "event_counts",
    "is_child",
    "order_counts",
    "product_rows",
    "short",
]
