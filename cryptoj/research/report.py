"""The sweep's ``index.html``: walk-forward table (in-sample against out-of-sample), the
overfitting measures, a heatmap of the objective over two parameters, an in/out-of-sample
scatter and the equity curves of the top trials (matplotlib PNGs beside the page)."""

from __future__ import annotations

import datetime as dt
import html
import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from cryptoj.research.sweep import SweepOutcome

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1140px;color:#212121;
padding:0 1em}h2{margin-top:1.8em;border-bottom:1px solid #ddd}.sub{color:#666}
table{border-collapse:collapse;margin:.6em 0}td,th{padding:.25em .7em;
border-bottom:1px solid #eee;text-align:left}td.n{text-align:right;
font-variant-numeric:tabular-nums}th{background:#fafafa}img{max-width:100%;
border:1px solid #eee}.bad{color:#c62828}
"""


def _fmt(x: Any, pct: bool = False, signed: bool = True) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if isinstance(x, float):
        if math.isinf(x):
            return "∞" if x > 0 else "−∞"
        if pct:
            return f"{x:+.2%}" if signed else f"{x:.2%}"
        return f"{x:.4g}"
    return str(x)


def _figure(w: float = 7.0, h: float = 4.5) -> Figure:
    fig = Figure(figsize=(w, h), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def heatmap_params(outcome: SweepOutcome) -> list[str]:
    """The heatmap's two parameters: the spec's, else the first two ranges (or params)."""
    spec = outcome.spec
    if spec.report.heatmap:
        return list(spec.report.heatmap)
    ranges = [n for n, p in spec.params.items() if p.choices is None]
    names = ranges + [n for n in spec.params if n not in ranges]
    return names[:2]


def heatmap_chart(outcome: SweepOutcome, out: Path) -> str | None:
    """Mean in-sample objective of the completed trials over two parameters (binned)."""
    names = heatmap_params(outcome)
    if len(names) < 2:
        return None
    rows = [
        r
        for r in outcome.rows
        if r["phase"] == "train" and r["state"] == "COMPLETE" and _finite(r["objective"])
    ]
    if not rows:
        return None
    axes_vals: list[tuple[str, Any]] = []
    for name in names:
        vals = sorted({r[name] for r in rows}, key=_sort_key)
        if len(vals) > 10 and all(isinstance(v, (int, float)) for v in vals):
            edges = np.linspace(float(min(vals)), float(max(vals)), 11)
            axes_vals.append(("bins", edges))
        else:
            axes_vals.append(("values", vals))
    grid_sum = np.zeros((_size(axes_vals[1]), _size(axes_vals[0])))
    grid_n = np.zeros_like(grid_sum)
    for r in rows:
        i, j = _index(axes_vals[1], r[names[1]]), _index(axes_vals[0], r[names[0]])
        grid_sum[i, j] += float(r["objective"])
        grid_n[i, j] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(grid_n > 0, grid_sum / np.maximum(grid_n, 1), np.nan)
    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(mean, origin="lower", aspect="auto", cmap="viridis")
    fig.colorbar(im, ax=ax, label=f"mean in-sample {outcome.spec.objective.metric}")
    for axis, spec_axis, name in (
        (ax.xaxis, axes_vals[0], names[0]),
        (ax.yaxis, axes_vals[1], names[1]),
    ):
        labels = _labels(spec_axis)
        axis.set_ticks(range(len(labels)))
        axis.set_ticklabels(labels, fontsize=8)
        axis.set_label_text(name)
    ax.set_title("objective over two parameters (all folds' train trials)")
    fig.tight_layout()
    fig.savefig(out / "heatmap.png")
    return "heatmap.png"


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def _sort_key(v: Any) -> tuple[int, Any]:
    return (0, v) if isinstance(v, (int, float)) else (1, str(v))


def _size(axis: tuple[str, Any]) -> int:
    kind, vals = axis
    return len(vals) - 1 if kind == "bins" else len(vals)


def _index(axis: tuple[str, Any], value: Any) -> int:
    kind, vals = axis
    if kind == "bins":
        found = int(np.searchsorted(vals, float(value), "right")) - 1
        return min(len(vals) - 2, max(0, found))
    return list(vals).index(value)


def _labels(axis: tuple[str, Any]) -> list[str]:
    kind, vals = axis
    if kind == "bins":
        return [f"{(a + b) / 2:.3g}" for a, b in itertools.pairwise(vals)]
    return [f"{v:.3g}" if isinstance(v, float) else str(v) for v in vals]


def scatter_chart(outcome: SweepOutcome, out: Path) -> str | None:
    """Each fold's chosen trial: in-sample against out-of-sample objective."""
    pts = [
        (f.train["objective"], f.test["objective"], f.fold.index)
        for f in outcome.folds
        if f.test and _finite(f.train.get("objective")) and _finite(f.test.get("objective"))
    ]
    if not pts:
        return None
    fig = _figure(6, 5)
    ax = fig.add_subplot(1, 1, 1)
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    ax.scatter(xs, ys, color="#1565c0")
    for x, y, k in pts:
        ax.annotate(f"fold {k}", (x, y), fontsize=8, xytext=(3, 3), textcoords="offset points")
    lo, hi = min(xs + ys), max(xs + ys)
    ax.plot([lo, hi], [lo, hi], color="#999", linestyle="--", label="out-of-sample = in-sample")
    ax.axhline(0, color="#ccc", linewidth=0.8)
    ax.set_xlabel(f"in-sample {outcome.spec.objective.metric}")
    ax.set_ylabel(f"out-of-sample {outcome.spec.objective.metric}")
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "scatter.png")
    return "scatter.png"


def equity_chart(outcome: SweepOutcome, out: Path) -> str | None:
    """Equity (sampled, relative to its start) of the top trials of the latest fold, with the
    test windows' equity of each fold's choice."""
    folds = [f for f in outcome.folds if f.best_number is not None]
    if not folds:
        return None
    last = folds[-1]
    ranked = sorted(
        (
            (r["objective"], r["trial"])
            for r in outcome.rows
            if r["fold"] == last.fold.index
            and r["phase"] == "train"
            and r["state"] == "COMPLETE"
            and _finite(r["objective"])
        ),
        reverse=True,
    )[: outcome.spec.report.top]
    fig = _figure(11, 4.5)
    ax = fig.add_subplot(1, 2, 1)
    for value, number in ranked:
        eq = outcome.equity.get((last.fold.index, "train", number))
        if eq:
            ax.plot(np.asarray(eq) / eq[0], label=f"trial {number} ({value:.3g})")
    ax.set_title(f"top trials, fold {last.fold.index} train window")
    ax.set_xlabel(f"periods of {outcome.spec.objective.period_h:g} h")
    ax.legend(fontsize=7)
    ax.grid(True, alpha=0.3)
    ax2 = fig.add_subplot(1, 2, 2)
    level = 1.0
    start = 0
    for f in folds:
        eq = outcome.equity.get((f.fold.index, "test", f.best_number or 0))
        if not eq:
            continue
        curve = level * np.asarray(eq) / eq[0]
        ax2.plot(range(start, start + len(curve)), curve, label=f"fold {f.fold.index}")
        level, start = float(curve[-1]), start + len(curve) - 1
    ax2.set_title("out of sample: test windows chained")
    ax2.set_xlabel(f"periods of {outcome.spec.objective.period_h:g} h")
    ax2.grid(True, alpha=0.3)
    if folds and any(f.test for f in folds):
        ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "equity.png")
    return "equity.png"


def fold_table(outcome: SweepOutcome) -> str:
    """In-sample against out-of-sample, one row per fold."""
    metric = outcome.spec.objective.metric
    head = [
        "fold",
        "train window",
        "test window",
        "trials (failed)",
        "chosen",
        f"IS {metric}",
        f"OOS {metric}",
        "IS return",
        "OOS return",
        "IS max DD",
        "OOS max DD",
        "PBO",
        "DSR",
    ]
    body = []
    for f in outcome.folds:
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in f.params.items()) or "none feasible"
        test = f"{f.fold.test_start}..{f.fold.test_end}" if f.fold.test_start else "–"
        oos = _fmt(f.test.get("objective")) if f.test else (f.test_error or "–")
        cells = [
            str(f.fold.index),
            f"{f.fold.train_start}..{f.fold.train_end}",
            test,
            f"{f.complete + f.failed} ({f.failed})",
            f"#{f.best_number}: {params}" if f.best_number is not None else params,
            _fmt(f.train.get("objective")),
            oos,
            _fmt(f.train.get("total_return"), True),
            _fmt(f.test.get("total_return"), True),
            _fmt(f.train.get("max_drawdown"), True, signed=False),
            _fmt(f.test.get("max_drawdown"), True, signed=False),
            _fmt(f.pbo),
            _fmt(f.dsr),
        ]
        body.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    header = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    return f"<table><tr>{header}</tr>{''.join(body)}</table>"


def summary_rows(outcome: SweepOutcome) -> list[tuple[str, str]]:
    """Label and value rows of the summary table."""
    spec = outcome.spec
    tested = [f for f in outcome.folds if f.test]
    pbos = [f.pbo for f in outcome.folds if f.pbo is not None]
    rows = [
        ("market data", outcome.data),
        ("search", f"{spec.search}, {spec.trials} trials per train window (batch {spec.batch})"),
        ("objective", _objective_text(outcome)),
        (
            "walk-forward",
            f"{spec.walk_forward.train_days} d train, {spec.walk_forward.test_days} d test, "
            f"{len(outcome.folds)} folds"
            if spec.walk_forward.enabled
            else "off (in-sample only)",
        ),
        ("finished", "yes" if outcome.finished else "no (interrupted: rerun to continue)"),
    ]
    if tested:
        is_mean = float(np.mean([f.train["objective"] for f in tested]))
        oos_mean = float(np.mean([f.test["objective"] for f in tested]))
        chained = float(np.prod([1 + f.test["total_return"] for f in tested]) - 1)
        rows += [
            (f"mean in-sample {spec.objective.metric}", _fmt(is_mean)),
            (f"mean out-of-sample {spec.objective.metric}", _fmt(oos_mean)),
            ("out-of-sample return, test windows chained", _fmt(chained, True)),
        ]
    if pbos:
        rows.append(("mean PBO over folds", _fmt(float(np.mean(pbos)))))
    return rows


def _objective_text(outcome: SweepOutcome) -> str:
    o = outcome.spec.objective
    text = f"maximise {o.metric} (equity sampled every {o.period_h:g} h)"
    if o.max_drawdown is not None:
        text += f", max drawdown ≤ {o.max_drawdown:.0%}"
    return text


def write_report(outcome: SweepOutcome, out: Path, title: str | None = None) -> Path:
    """Write ``out/index.html`` and its charts."""
    charts = [
        (heatmap_chart(outcome, out), "Mean in-sample objective over two parameters"),
        (scatter_chart(outcome, out), "Each fold's choice: in-sample against out-of-sample"),
        (equity_chart(outcome, out), "Equity of the top trials and of the test windows"),
    ]
    figures = "".join(
        f'<figure><img src="{name}" alt="{html.escape(cap)}"><figcaption>{html.escape(cap)}'
        "</figcaption></figure>"
        for name, cap in charts
        if name
    )
    summary = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
        for k, v in summary_rows(outcome)
    )
    title = title or "cryptoj parameter sweep"
    generated = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{_CSS}</style></head><body>
<h1>{html.escape(title)}</h1>
<p class="sub">generated {generated} · every trial in <a href="trials.csv">trials.csv</a>
· chosen config <a href="best.yaml">best.yaml</a></p>
<h2>Summary</h2><table>{summary}</table>
<h2>Walk-forward: in-sample against out-of-sample</h2>
{fold_table(outcome)}
<p class="sub">IS: the chosen trial on its train window; OOS: the same parameters replayed on
the test window that follows. PBO: probability of backtest overfitting of the fold's selection
(CSCV over the fold's trials; above 0.5, the best in-sample trial is more likely than not to be
below the median out of sample). DSR: deflated Sharpe ratio of the chosen trial (probability
that its Sharpe ratio beats the best expected from that many trials with no edge).</p>
<h2>Charts</h2>{figures}
</body></html>
"""
    path = out / "index.html"
    path.write_text(page, encoding="utf-8")
    return path


__all__ = ["fold_table", "heatmap_chart", "summary_rows", "write_report"]
