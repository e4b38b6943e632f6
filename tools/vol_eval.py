#!/usr/bin/env python3
"""Walk-forward, out-of-sample evaluation of the HAR-RV volatility forecaster on recorded data.

Protocol, per data set and product (see :mod:`cryptoj.risk.volatility` for the formulas):

1. Log returns between consecutive bar closes; a return spanning more than one period (a hole
   in the data, e.g. the 7 h gap of the 1 m set) is dropped, shorter gaps are kept (their
   return covers the missing bars). Each return belongs to the period of its bar's open time.
2. Realised variance per period: ``RV = Σ r²``. Periods: the UTC day (6 bars of 4 h) for
   ``coinbase-4h-2016-2025``; 10 minutes (10 bars of 1 m) for ``coinbase-1m-2018-04``.
   Incomplete first/last periods are dropped.
3. For every period t after ``min_train`` periods: fit HAR on RV[0..t] (expanding window, or
   the last ``--window`` periods), forecast RV[t+1]; the naive forecasts are RV[t]
   (previous period) and the EWMA of RV (λ = 0.94, RiskMetrics). Only information up to the
   end of period t is used for the forecast of t + 1.
4. Losses over all forecasts: QLIKE and MSE; a Diebold–Mariano t-statistic (Newey–West,
   ``⌊n^(1/3)⌋`` lags) of the QLIKE difference HAR − baseline (negative: HAR better).

Usage (from the repository root)::

    python tools/vol_eval.py             # table
    python tools/vol_eval.py --json      # one JSON object
    python tools/vol_eval.py --refit-every 5 --window 1000
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import math
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptoj.marketdata.loader import load_events
from cryptoj.models.market import Bar
from cryptoj.risk.volatility import (
    FloatArray,
    HarForecaster,
    ewma_forecasts,
    mse,
    previous_forecasts,
    qlike,
)


@dataclass(frozen=True)
class SetSpec:
    """How one bundled set is evaluated."""

    name: str
    period_s: int
    lags: tuple[int, ...]
    min_train: int
    label: str


SETS = (
    SetSpec("coinbase-4h-2016-2025", 86_400, (1, 7, 30), 365, "1 UTC day = 6 bars of 4 h"),
    SetSpec("coinbase-1m-2018-04", 600, (1, 6, 36), 72, "10 min = 10 bars of 1 m"),
)
MODELS = ("har_log", "har_plain", "previous", "ewma")


def period_rv(bars: list[tuple[int, float]], interval_s: int, period_s: int) -> FloatArray:
    """RV per period from (close ts ns, close) pairs, as in steps 1–2 of the module docstring."""
    sums: dict[int, float] = defaultdict(float)
    counts: dict[int, int] = defaultdict(int)
    for (ts0, c0), (ts1, c1) in itertools.pairwise(bars):
        open_s = ts1 // 10**9 - interval_s
        period = open_s // period_s
        counts[period] += 1
        if (ts1 - ts0) // 10**9 <= period_s and c0 > 0 and c1 > 0:
            sums[period] += math.log(c1 / c0) ** 2
    keys = sorted(counts)
    full = period_s // interval_s
    while keys and counts[keys[0]] < full - 1:  # the first bar has no return
        keys.pop(0)
    while keys and counts[keys[-1]] < full:
        keys.pop()
    return np.array([sums[k] for k in keys])


def dm_tstat(loss_a: FloatArray, loss_b: FloatArray) -> float:
    """Diebold–Mariano t-statistic of mean(loss_a − loss_b) with a Newey–West variance."""
    d = loss_a - loss_b
    n = len(d)
    if n < 3:
        return 0.0
    u = d - d.mean()
    lags = int(n ** (1 / 3))
    var = float(u @ u) / n
    for k in range(1, lags + 1):
        var += 2 * (1 - k / (lags + 1)) * float(u[k:] @ u[:-k]) / n
    return float(d.mean() / math.sqrt(var / n)) if var > 0 else 0.0


def qlike_terms(f: FloatArray, r: FloatArray, eps: float = 1e-12) -> FloatArray:
    """Per-forecast QLIKE terms (same guard as :func:`cryptoj.risk.volatility.qlike`)."""
    ratio = np.maximum(r, eps) / np.maximum(f, eps)
    return np.asarray(ratio - np.log(ratio) - 1.0)


def walk_forward(
    rv: FloatArray, spec: SetSpec, refit_every: int, window: int | None
) -> tuple[dict[str, FloatArray], FloatArray, list[float]]:
    """Forecasts of RV[t+1] for t = min_train−1 … n−2: (forecasts, realised, last HAR coef)."""
    start = spec.min_train - 1
    targets = rv[start + 1 :]
    out: dict[str, list[float]] = {m: [] for m in MODELS}
    har = {
        "har_log": HarForecaster(spec.lags, log=True),
        "har_plain": HarForecaster(spec.lags, log=False),
    }
    for t in range(start, len(rv) - 1):
        lo = 0 if window is None else max(0, t + 1 - window)
        history = rv[lo : t + 1]
        for name, model in har.items():
            if (t - start) % refit_every == 0:
                model.fit_rv(history)
            out[name].append(model.forecast_from(history))
    prev, ewma = previous_forecasts(rv), ewma_forecasts(rv)
    out["previous"] = list(prev[start:-1])
    out["ewma"] = list(ewma[start:-1])
    coef = [har["har_log"].intercept, *har["har_log"].coef.tolist()]
    return {m: np.array(v) for m, v in out.items()}, targets, coef


def evaluate(spec: SetSpec, refit_every: int, window: int | None) -> dict[str, Any]:
    """Per-product results of one data set."""
    batches = load_events(spec.name)
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    interval = 0
    for batch in batches:
        for ev in batch:
            if isinstance(ev, Bar):
                series[ev.product].append((ev.ts, float(ev.close)))
                interval = ev.interval_s
    results: dict[str, Any] = {}
    for product in sorted(series):
        rv = period_rv(series[product], interval, spec.period_s)
        if len(rv) < spec.min_train + 10:
            continue
        fc, realised, coef = walk_forward(rv, spec, refit_every, window)
        terms = {m: qlike_terms(f, realised) for m, f in fc.items()}
        first_ts = series[product][0][0] // 10**9
        results[product] = {
            "periods": len(rv),
            "n_forecasts": len(realised),
            "zero_rv_periods": int((realised <= 0).sum()),
            "qlike": {m: qlike(f, realised) for m, f in fc.items()},
            "mse": {m: mse(f, realised) for m, f in fc.items()},
            "dm_qlike_har_log_vs": {
                m: dm_tstat(terms["har_log"], terms[m]) for m in ("previous", "ewma", "har_plain")
            },
            "har_log_last_coef": coef,
            "data_start": dt.datetime.fromtimestamp(first_ts, dt.UTC).isoformat(),
        }
    return results


def render(all_results: dict[str, dict[str, Any]]) -> str:
    """A plain-text table."""
    lines = []
    for spec in SETS:
        res = all_results.get(spec.name)
        if not res:
            continue
        lines.append(f"{spec.name}  (period: {spec.label}, HAR lags {spec.lags})")
        for metric, fmt in (("qlike", ">10.4f"), ("mse", ">10.3e")):
            lines.append(f"  {metric.upper():9} {'n':>5}  " + "  ".join(f"{m:>10}" for m in MODELS))
            for product, r in res.items():
                cells = "  ".join(f"{r[metric][m]:{fmt}}" for m in MODELS)
                lines.append(f"  {product:9} {r['n_forecasts']:>5}  {cells}")
        lines.append("  DM t-stat of QLIKE(har_log) − QLIKE(other), negative = HAR better:")
        for product, r in res.items():
            dm = r["dm_qlike_har_log_vs"]
            lines.append(f"  {product:9} " + "  ".join(f"vs {k} {v:+.2f}" for k, v in dm.items()))
        zero = {p: r["zero_rv_periods"] for p, r in res.items() if r["zero_rv_periods"]}
        if zero:
            lines.append(f"  periods with RV = 0 among the targets (QLIKE floor 1e-12): {zero}")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the evaluation and print the table (or JSON)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--refit-every", type=int, default=1, help="refit HAR every N periods")
    ap.add_argument("--window", type=int, default=None, help="rolling window (default: expanding)")
    ap.add_argument("--only", choices=[s.name for s in SETS], help="evaluate one set only")
    args = ap.parse_args(argv)
    if args.refit_every < 1 or (args.window is not None and args.window < 60):
        ap.error("--refit-every must be >= 1 and --window >= 60")
    t0 = time.perf_counter()
    results = {
        spec.name: evaluate(spec, args.refit_every, args.window)
        for spec in SETS
        if args.only in (None, spec.name)
    }
    elapsed = time.perf_counter() - t0
    if args.json:
        protocol = {
            "scheme": "walk-forward one-step-ahead",
            "window": args.window or "expanding",
            "refit_every": args.refit_every,
            "sets": {
                s.name: {"period": s.label, "lags": s.lags, "min_train": s.min_train} for s in SETS
            },
            "ewma_lambda": 0.94,
            "seconds": round(elapsed, 2),
        }
        print(json.dumps({"protocol": protocol, "results": results}))
    else:
        print(render(results))
        window = args.window or "expanding"
        print(f"({elapsed:.1f} s; window {window}, refit every {args.refit_every})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
