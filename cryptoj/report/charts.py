"""The report's PNG charts (matplotlib, Agg canvas: no display, no global pyplot state)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import matplotlib.dates as mdates
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import (
    FuncFormatter,
    NullFormatter,
    NullLocator,
    PercentFormatter,
)

from cryptoj.report.data import LEVELS, ReportData, drawdown

WIDTH, DPI = 11.0, 100
MAX_POINTS = 4000  # per line; longer series are thinned for drawing (the table is exact)
LOG_RATIO = 10.0  # equity axis on a log scale when max ÷ min of the curves exceeds this
FrameT = TypeVar("FrameT", pd.Series, pd.DataFrame)
LEVEL_COLOURS = ("#2e7d32", "#f9a825", "#ef6c00", "#c62828")


def _figure(height: float, rows: int = 1) -> tuple[Figure, list[Axes]]:
    fig = Figure(figsize=(WIDTH, height), dpi=DPI)
    FigureCanvasAgg(fig)
    # fixed margins (in inches) instead of a layout engine: several times faster to save
    fig.subplots_adjust(
        left=0.95 / WIDTH,
        right=1 - 0.2 / WIDTH,
        top=1 - 0.4 / height,
        bottom=0.55 / height,
        hspace=0.95 * rows / height if rows > 1 else 0.2,
    )
    axes = [fig.add_subplot(rows, 1, i + 1) for i in range(rows)]
    for ax in axes:
        locator = mdates.AutoDateLocator()
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        ax.grid(True, alpha=0.3)
    return fig, axes


def _empty(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#666")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(NullLocator())
        axis.set_major_formatter(NullFormatter())


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, format="png", facecolor="white")
    return path


def _thin(frame: FrameT, limit: int = MAX_POINTS) -> FrameT:
    """Every k-th row (and the last) so a line has at most ``limit`` points (tick data)."""
    if len(frame) <= limit:
        return frame
    step = -(-len(frame) // limit)
    keep = list(range(0, len(frame), step))
    if keep[-1] != len(frame) - 1:
        keep.append(len(frame) - 1)
    return frame.iloc[keep]


def _changes(levels: pd.Series) -> pd.Series:
    """Only the points where a step series changes (and its last point): exact, and small."""
    if levels.empty:
        return levels
    mask = levels.ne(levels.shift())
    mask.iloc[-1] = True
    return levels[mask]


_money = FuncFormatter(lambda x, _: f"{x:,.0f}")


def wide_range(*series: pd.Series) -> bool:
    """True when the positive values span more than :data:`LOG_RATIO` (max ÷ min): drawn
    on a log scale, a 2× strategy stays visible beside a 300× benchmark."""
    parts = [s for s in series if not s.empty]
    if not parts:
        return False
    values = pd.concat(parts)
    values = values[values > 0]
    return bool(not values.empty and values.max() / values.min() > LOG_RATIO)


def equity_chart(d: ReportData, path: Path) -> Path:
    """Equity against the equal-weight buy-and-hold benchmark (log scale when wide)."""
    fig, (ax,) = _figure(4.2)
    log = False
    if d.equity.empty:
        _empty(ax, "no equity recorded in the journal")
    else:
        eq, bench = _thin(d.equity), _thin(d.benchmark)
        ax.plot(eq.index, eq.to_numpy(), label="cryptoj equity", color="#1565c0")
        if not bench.empty:
            ax.plot(
                bench.index,
                bench.to_numpy(),
                label=f"benchmark: equal-weight buy-and-hold ({', '.join(d.products)})",
                color="#757575",
                linestyle="--",
            )
        ax.axhline(d.start_cash, color="#bdbdbd", linewidth=0.8)
        log = wide_range(eq, bench)
        if log:
            ax.set_yscale("log")
        ax.yaxis.set_major_formatter(_money)
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_ylabel("equity (quote currency" + (", log scale)" if log else ")"))
        ax.legend(loc="best")
    ax.set_title("Equity curve against the benchmark" + (" (log scale)" if log else ""))
    return _save(fig, path)


def drawdown_chart(d: ReportData, path: Path) -> Path:
    """Drawdown from the running peak, strategy and benchmark."""
    fig, (ax,) = _figure(3.2)
    if d.equity.empty:
        _empty(ax, "no equity recorded in the journal")
    else:
        dd = _thin(-drawdown(d.equity))
        ax.fill_between(dd.index, dd.to_numpy(), 0, color="#c62828", alpha=0.35, label="cryptoj")
        ax.plot(dd.index, dd.to_numpy(), color="#c62828", linewidth=0.8)
        if not d.benchmark.empty:
            bd = _thin(-drawdown(d.benchmark))
            ax.plot(bd.index, bd.to_numpy(), color="#757575", linestyle="--", label="benchmark")
        ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=1))
        ax.set_ylabel("drawdown")
        ax.legend(loc="lower left")
    ax.set_title("Drawdown from the running peak")
    return _save(fig, path)


def exposure_chart(d: ReportData, path: Path) -> Path:
    """Position value per asset as a fraction of equity, stacked."""
    fig, (ax,) = _figure(3.4)
    exp = _thin(d.exposure)
    if exp.empty or not exp.to_numpy().any():
        _empty(ax, "no positions were held")
    else:
        ax.stackplot(
            exp.index,
            *(exp[c].to_numpy() for c in exp.columns),
            labels=list(exp.columns),
            alpha=0.8,
        )
        ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax.set_ylabel("weight of equity")
        ax.set_ylim(bottom=0)
        ax.legend(loc="upper left")
    ax.set_title("Exposure per asset over time")
    return _save(fig, path)


def risk_chart(d: ReportData, path: Path) -> Path:
    """Risk level over time (step chart) with emergencies marked."""
    fig, (ax,) = _figure(2.6)
    lv = _changes(d.levels)
    if lv.empty:
        _empty(ax, "no equity timeline to place risk levels on")
    else:
        ax.step(lv.index, lv.to_numpy(), where="post", color="#424242")
        times, ranks = list(lv.index), [int(r) for r in lv.to_numpy()]
        for t0, t1, rank in zip(times, times[1:], ranks, strict=False):  # one band per segment
            ax.fill_between([t0, t1], 0, rank, color=LEVEL_COLOURS[rank], alpha=0.35)
        if not d.events.empty:
            for t in d.events.loc[d.events["kind"].str.startswith("emergency"), "time"]:
                ax.axvline(t, color="#b71c1c", linestyle=":", linewidth=1.2)
        ax.set_yticks(range(len(LEVELS)), LEVELS)
        ax.set_ylim(-0.2, len(LEVELS) - 0.8)
    ax.set_title("Risk level over time")
    return _save(fig, path)


def trades(fills: pd.DataFrame) -> pd.DataFrame:
    """One row per decided order: its first fill's time, side, product and average price
    (the fills of a split order's children count for their parent)."""
    parent = fills["client_order_id"].astype(str).str.replace(r"-c\d+$", "", regex=True)
    qty = fills["quantity"].astype(float)
    frame = pd.DataFrame(
        {
            "order": parent,
            "time": fills["time"],
            "side": fills["side"],
            "product": fills["product"],
            "qty": qty,
            "value": qty * fills["price"].astype(float),
        }
    )
    g = frame.groupby("order", sort=False)
    out = g.agg(
        time=("time", "min"),
        side=("side", "first"),
        product=("product", "first"),
        qty=("qty", "sum"),
        value=("value", "sum"),
    )
    out["price"] = out["value"] / out["qty"]
    return out.sort_values("time")


def trades_chart(d: ReportData, path: Path) -> Path:
    """Each product's price with its trades marked (▲ buy, ▼ sell; one marker per decided
    order at its average price), drawn under the price line so the line stays readable."""
    products = d.products or ["-"]
    fig, axes = _figure(2.6 * len(products) + 0.6, rows=len(products))
    marked = trades(d.fills) if not d.fills.empty else None
    for ax, product in zip(axes, products, strict=True):
        if product not in d.prices:
            _empty(ax, "no prices")
            continue
        px = _thin(d.prices[product].dropna())
        ax.plot(px.index, px.to_numpy(), color="#263238", linewidth=0.9, label=product, zorder=3)
        if marked is not None:
            mine = marked[marked["product"] == product]
            size = 30 if len(mine) <= 100 else 14 if len(mine) <= 600 else 6
            for side, marker, colour in (("BUY", "^", "#2e7d32"), ("SELL", "v", "#c62828")):
                f = mine[mine["side"] == side]
                if not f.empty:
                    ax.scatter(
                        f["time"],
                        f["price"],
                        marker=marker,
                        facecolors="none",
                        edgecolors=colour,
                        linewidths=1.0,
                        alpha=0.8,
                        s=size,
                        zorder=2,
                        label=f"{side.lower()} ({len(f)} orders)",
                    )
        ax.yaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:,.2f}"))
        ax.set_title(f"{product}: price and trades", loc="left")
        ax.legend(loc="best")
    return _save(fig, path)


CHARTS: tuple[tuple[str, str, Callable[[ReportData, Path], Path]], ...] = (
    ("equity.png", "Equity curve against the benchmark", equity_chart),
    ("drawdown.png", "Drawdown", drawdown_chart),
    ("exposure.png", "Exposure per asset over time", exposure_chart),
    ("risk.png", "Risk level over time", risk_chart),
    ("trades.png", "Trades on the price chart", trades_chart),
)


def render_charts(
    d: ReportData, out: Path, on_chart: Callable[[int, str], None] | None = None
) -> list[tuple[str, str]]:
    """Write every chart into ``out``; return (file name, title) pairs. ``on_chart(n, name)``
    is called after the n-th chart (progress)."""
    out.mkdir(parents=True, exist_ok=True)
    done = []
    for name, title, fn in CHARTS:
        fn(d, out / name)
        done.append((name, title))
        if on_chart is not None:
            on_chart(len(done), name)
    return done


__all__ = ["CHARTS", "render_charts", "trades", "wide_range"]
