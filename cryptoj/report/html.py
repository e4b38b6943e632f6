"""The summary table and the self-contained ``index.html`` (inline CSS, local PNGs only)."""

from __future__ import annotations

import datetime as dt
import html
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cryptoj.report.data import LEVELS, ReportData, drawdown
from cryptoj.report.tables import PRODUCT_HEAD, event_counts, order_counts, product_rows, short

MAX_EVENT_ROWS = 15  # the last rows shown; every row is in events.csv
MAX_FILL_ROWS = 200
MAX_STALE_ROWS = 50  # decisions on stale quotes listed on the page
EVENTS_CSV = "events.csv"

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2em auto;
max-width:1140px;color:#212121;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{margin-top:1.8em;border-bottom:1px solid #ddd}
.sub{color:#666}table{border-collapse:collapse;margin:.6em 0}
td,th{padding:.25em .8em;border-bottom:1px solid #eee;text-align:left;vertical-align:top}
td.n{text-align:right;font-variant-numeric:tabular-nums}th{background:#fafafa}
img{max-width:100%;height:auto;border:1px solid #eee;margin:.4em 0}
td{overflow-wrap:anywhere}
.good{color:#2e7d32}.bad{color:#c62828}figure{margin:0 0 1.2em}figcaption{color:#555}
"""


def _pct(x: float | None) -> str:
    return "–" if x is None or x != x else f"{x:+.2%}"


def _money(x: float | None) -> str:
    return "–" if x is None or x != x else f"{x:,.2f}"


def _when(t: pd.Timestamp | None) -> str:
    return "–" if t is None else t.strftime("%Y-%m-%d %H:%M UTC")


def _duration(seconds: float) -> str:
    d, rest = divmod(int(seconds), 86400)
    return (f"{d} d " if d else "") + f"{rest // 3600} h {rest % 3600 // 60:02d} min"


def summary_rows(d: ReportData) -> list[tuple[str, str]]:
    """(label, value) rows of the summary table."""
    eq, bench = d.equity, d.benchmark
    rows: list[tuple[str, str]] = [("market data", d.data), ("products", ", ".join(d.products))]
    if not eq.empty:
        start, end = eq.index[0], eq.index[-1]
        rows.append(
            (
                "period",
                f"{_when(start)} → {_when(end)} ({_duration((end - start).total_seconds())})",
            )
        )
        final = float(eq.iloc[-1])
        ret = final / d.start_cash - 1 if d.start_cash else None
        rows += [
            ("start equity", _money(d.start_cash)),
            ("final equity", _money(final)),
            ("return", _pct(ret)),
            ("max drawdown", f"{float(drawdown(eq).max()):.2%}"),
        ]
        if not bench.empty:
            b_ret = float(bench.iloc[-1]) / d.start_cash - 1 if d.start_cash else None
            rows += [
                ("benchmark (equal-weight buy-and-hold) final", _money(float(bench.iloc[-1]))),
                ("benchmark return", _pct(b_ret)),
                (
                    "excess return over benchmark",
                    _pct(None if ret is None or b_ret is None else ret - b_ret),
                ),
                ("benchmark max drawdown", f"{float(drawdown(bench).max()):.2%}"),
            ]
    else:
        rows.append(("equity", "no equity recorded in the journal"))
    decided, counts, children = order_counts(d.orders)
    rows.append(
        (
            "decided orders (by the portfolio; a split order counts once)",
            f"{decided} (" + ", ".join(f"{k.lower()} {v}" for k, v in counts.items()) + ")"
            if decided
            else "0",
        )
    )
    rows.append(("child orders (the slices split orders sent to the venue)", str(children)))
    f = d.fills
    if not f.empty:
        notional = (f["quantity"].astype(float) * f["price"].astype(float)).sum()
        fees = f["fee"].astype(float).sum()
        buys = int((f["side"] == "BUY").sum())
        slip = f["slippage_bps"].dropna()
        start = d.start_cash
        rows += [
            ("fills", f"{len(f)} ({buys} buys, {len(f) - buys} sells)"),
            ("traded value", _money(float(notional))),
            ("fees paid", _money(float(fees))),
            ("fees paid / start equity", f"{fees / start:.2%}" if start else "–"),
            (
                "turnover (traded value / start equity)",
                f"{notional / start:.2f}×" if start else "–",
            ),
            (
                "slippage against mid, mean (median)",
                f"{slip.mean():.2f} bps ({slip.median():.2f} bps)" if not slip.empty else "–",
            ),
        ]
    else:
        rows.append(("fills", "0"))
    lv = d.levels
    if len(lv) > 1:
        secs = np.diff(lv.index.asi8) / 1e9
        total = secs.sum()
        share = {LEVELS[r]: secs[lv.to_numpy()[:-1] == r].sum() / total for r in range(4)}
        rows.append(
            ("time at each risk level", ", ".join(f"{k} {v:.1%}" for k, v in share.items() if v))
        )
    ev = d.events
    kinds = ev["kind"].value_counts().to_dict() if not ev.empty else {}
    rows.append(("risk level changes", str(kinds.get("risk_level", 0))))
    rows.append(("emergencies", str(kinds.get("emergency", 0))))
    rows.append(("feature flag changes", str(kinds.get("flag_changed", 0))))
    rows.append(("data age of the decisions", d.data_age.line()))
    rows += [(k.replace("_", " "), str(v)) for k, v in d.extra.items()]
    return rows


def _table(head: list[str], rows: list[list[Any]], numeric: frozenset[int] = frozenset()) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="n">{html.escape(str(v))}</td>'
            if i in numeric
            else f"<td>{html.escape(str(v))}</td>"
            for i, v in enumerate(r)
        )
        + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _ns(ts: Any) -> str:
    return dt.datetime.fromtimestamp(int(ts) / 1e9, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def render_html(d: ReportData, charts: list[tuple[str, str]], title: str) -> str:
    """The whole page."""
    summary = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in summary_rows(d)
    )
    figures = "".join(
        f'<figure><img src="{html.escape(name)}" alt="{html.escape(cap)}">'
        f"<figcaption>{html.escape(cap)}</figcaption></figure>"
        for name, cap in charts
    )
    events = _events_html(d)
    products = _table(
        PRODUCT_HEAD, product_rows(d.products, d.orders, d.fills), numeric=frozenset(range(1, 10))
    )
    f = d.fills.head(MAX_FILL_ROWS) if not d.fills.empty else d.fills
    fills = (
        _table(
            ["time (UTC)", "order", "product", "side", "quantity", "price", "fee", "slippage bps"],
            [
                [
                    _ns(r.ts),
                    r.client_order_id,
                    r.product,
                    r.side,
                    r.quantity,
                    r.price,
                    r.fee,
                    "–" if r.slippage_bps != r.slippage_bps else f"{r.slippage_bps:.2f}",
                ]
                for r in f.itertuples()
            ],
            numeric=frozenset({4, 5, 6, 7}),
        )
        if not f.empty
        else "<p>none</p>"
    )
    more = f" (first {MAX_FILL_ROWS} of {len(d.fills)})" if len(d.fills) > MAX_FILL_ROWS else ""
    generated = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title><style>{_CSS}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p class="sub">journal <code>{html.escape(d.journal)}</code>
· data <code>{html.escape(d.data)}</code> · generated {generated}</p>
<h2>Summary</h2>
{_stale_html(d)}<table>{summary}</table>
<p class="sub">Benchmark: the starting equity split equally over
{html.escape(", ".join(d.products))} at the first timestamp and held, from the same market
data, without fees.</p>
<h2>Charts</h2>
{figures}
<h2>Per product</h2>
{products}
<p class="sub">Decided orders are the portfolio's decisions; a split order sends child orders
(<code>&lt;order&gt;-c1</code>, …) to the venue, each filled on its own.</p>
<h2>Journal events</h2>
{events}
<h2>Fills{more}</h2>
{fills}
</body></html>
"""


def _stale_html(d: ReportData) -> str:
    """The data-age warning above the summary (nothing when no decision was on stale data)."""
    problems = d.data_age.problems
    if not problems:
        return ""
    items = "".join(f"<li>{html.escape(p)}</li>" for p in problems[:MAX_STALE_ROWS])
    more = (
        f"<li>… and {len(problems) - MAX_STALE_ROWS} more</li>"
        if len(problems) > MAX_STALE_ROWS
        else ""
    )
    return (
        f'<p class="bad">{html.escape(d.data_age.line())}:</p><ul class="bad">{items}{more}</ul>\n'
    )


def _events_html(d: ReportData) -> str:
    ev = d.events
    if ev.empty:
        return "<p>none</p>"
    counts = _table(
        ["kind", "count", "first (UTC)", "last (UTC)"], event_counts(ev), frozenset({1})
    )
    last = ev.tail(MAX_EVENT_ROWS)
    rows = _table(
        ["time (market clock, UTC)", "actor", "kind", "detail"],
        [[_ns(r.ts), r.actor, r.kind, short(r.detail)] for r in last.itertuples()],
    )
    return (
        f"{counts}<p>The last {len(last)} of {len(ev)} events (details shortened; every event "
        f'in full: <a href="{EVENTS_CSV}">{EVENTS_CSV}</a>):</p>{rows}'
    )


def write_html(d: ReportData, charts: list[tuple[str, str]], out: Path, title: str) -> Path:
    """Write ``out/index.html`` and ``out/events.csv`` (every journal event)."""
    columns = ["seq", "ts", "actor", "kind", "detail"]
    events = d.events[columns] if not d.events.empty else pd.DataFrame(columns=columns)
    events.to_csv(out / EVENTS_CSV, index=False)
    path = out / "index.html"
    path.write_text(render_html(d, charts, title), encoding="utf-8")
    return path


__all__ = ["render_html", "summary_rows", "write_html"]
