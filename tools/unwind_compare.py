"""Gradual against immediate unwinding on the same data, in one run: what each costs.

Replays a crash (bundled Coinbase BTC+ETH 4 h candles) twice through the whole actor system
(deterministic runtime, same seed), once with ``--unwind gradual`` (the emergency programme's
slices against visible depth and participation, paced to end within
``shutdown.unwind.max_duration_s`` of market time, faster when the price moves against them;
on 4 h bars that is within one bar) and once with ``--unwind immediate`` (everything at market
at once: what peers do), with a configuration that forces a large unwind:

* ``paper.starting_cash`` 20,000,000 USD, so the strategy's 10 % positions (2 M USD each) are
  several times the modelled top of book;
* ``feed.bar_depth_fraction`` 0.01: the modelled top of book holds 1 % of the 4 h bar volume
  (about 50 BTC or 570 ETH in March 2020), each of the venue's five levels the same size;
* ``shutdown.unwind``: REDUCE unwinds everything (``reduce_target_exposure`` 0), both products
  at once (``max_concurrent`` 2), slices of the whole top level (``depth_fraction`` 1) and
  at most 10 % of the bar's volume, the default deadline (``max_duration_s`` 900 s);
* ``shutdown.triggers.risk_caution: reduce``: the programme engages at the risk engine's first
  CAUTION of the crash (a 1 % intraday drawdown or stop-loss hits), as well as at REDUCING.

Nothing is injected: the risk engine's levels trigger the unwind. Windows (``--preset``, or
``--from``/``--to``): ``march-2020`` (default), ``jan-2018``, ``dec-2017``, or ``all`` three.
Printed per window and mode: ``unwind_shortfall_bps`` (implementation shortfall against the mid
when the unwind started, fees included: what the unwind is judged by),
``unwind_slippage_bps`` (fills against the mid when each slice was decided: execution cost
only), slices, ``unwind_seconds``, final equity and the invariants; then the shortfall verdict
(gradual no worse than immediate by more than 10 bps on each window, better on average).
``--json`` prints one JSON object.

Usage::

    python tools/unwind_compare.py [--json] [--seed 7] [--preset all|march-2020|jan-2018|dec-2017]
    python tools/unwind_compare.py [--data NAME] --from D --to D
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cryptoj.config import Config, parse_config  # noqa: E402
from cryptoj.replay import ReplayOptions, run_replay  # noqa: E402

#: The configuration of the comparison (module docstring).
COMPARE_CONFIG: dict[str, Any] = {
    "paper": {"starting_cash": 20_000_000.0},
    "feed": {"bar_depth_fraction": 0.01},
    "shutdown": {
        "unwind": {
            "reduce_target_exposure": 0.0,
            "max_concurrent": 2,
            "depth_fraction": 1.0,
            "max_participation": 0.1,
        },
        "triggers": {"risk_caution": "reduce"},
    },
}
#: The crash windows (start, end; the first eight days warm the strategy's EMAs up).
PRESETS: dict[str, tuple[str, str]] = {
    "march-2020": ("2020-02-01", "2020-04-30"),
    "jan-2018": ("2017-12-15", "2018-02-10"),
    "dec-2017": ("2017-11-15", "2017-12-31"),
}
#: Gradual may be worse than immediate by at most this on each window (bps of shortfall).
TOLERANCE_BPS = 10.0
KEYS = (
    "unwind_shortfall_bps",
    "unwind_slippage_bps",
    "unwind_slices",
    "unwind_seconds",
    "unwind_notional",
    "unwind_fees",
    "final_equity",
    "orders",
    "fills",
    "risk_levels_reached",
    "response_levels_reached",
    "recoveries",
    "invariants_ok",
    "exit_code",
)


def compare(
    cfg: Config, data: str, start: dt.date, end: dt.date, seed: int, workdir: Path
) -> dict[str, Any]:
    """Both replays and the differences of their shortfall and slippage."""
    out: dict[str, Any] = {"data": data, "from": str(start), "to": str(end), "seed": seed}
    for mode in ("gradual", "immediate"):
        opts = ReplayOptions(
            data=data,
            start=start,
            end=end,
            journal=str(workdir / f"{mode}.sqlite"),
            trace=None,
            seed=seed,
            unwind=mode,
        )
        summary, _ = run_replay(cfg, opts)
        out[mode] = {k: summary[k] for k in KEYS}
    for key, saved in (
        ("unwind_shortfall_bps", "shortfall_saved_bps"),
        ("unwind_slippage_bps", "slippage_saved_bps"),
    ):
        g, i = out["gradual"][key], out["immediate"][key]
        out[saved] = round(i - g, 4) if g is not None and i is not None else None
    saved_sf = out["shortfall_saved_bps"]
    out["within_tolerance"] = saved_sf is not None and saved_sf >= -TOLERANCE_BPS
    return out


def _table(r: dict[str, Any]) -> str:
    lines = [f"unwind comparison on {r['data']} {r['from']} .. {r['to']} (seed {r['seed']})"]
    lines.append(f"{'':24}{'gradual':>28}{'immediate':>28}")
    for key in KEYS:
        g, i = r["gradual"][key], r["immediate"][key]
        if isinstance(g, list):
            g, i = ",".join(g), ",".join(i)
        if isinstance(g, float):
            g, i = round(g, 2), round(i, 2)
        lines.append(f"{key:24}{g!s:>28}{i!s:>28}")
    lines.append(
        f"gradual saves {r['shortfall_saved_bps']} bps of shortfall against the unwind's start "
        f"({r['slippage_saved_bps']} bps of slippage against the slices' arrival mids)"
    )
    return "\n".join(lines)


def verdict(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The done criterion over the windows: gradual's shortfall no worse than immediate's by
    more than :data:`TOLERANCE_BPS` on each, and lower on average."""
    saved = [r["shortfall_saved_bps"] for r in results]
    known = [s for s in saved if s is not None]
    mean = round(sum(known) / len(known), 4) if known else None
    return {
        "windows": len(results),
        "mean_shortfall_saved_bps": mean,
        "each_within_tolerance": all(r["within_tolerance"] for r in results),
        "better_on_average": mean is not None and mean > 0 and len(known) == len(saved),
    }


def _summary_table(results: list[dict[str, Any]], v: dict[str, Any]) -> str:
    head = f"{'window':24}{'shortfall g / i (bps)':>26}{'slippage g / i (bps)':>26}{'saved':>10}"
    lines = [head]
    for r in results:
        g, i = r["gradual"], r["immediate"]
        lines.append(
            f"{r['window']:24}"
            f"{_pair(g['unwind_shortfall_bps'], i['unwind_shortfall_bps']):>26}"
            f"{_pair(g['unwind_slippage_bps'], i['unwind_slippage_bps']):>26}"
            f"{r['shortfall_saved_bps']!s:>10}"
        )
    lines.append(
        f"mean shortfall saved {v['mean_shortfall_saved_bps']} bps; each window within "
        f"{TOLERANCE_BPS:g} bps: {v['each_within_tolerance']}; better on average: "
        f"{v['better_on_average']}"
    )
    return "\n".join(lines)


def _pair(g: float | None, i: float | None) -> str:
    def show(x: float | None) -> str:
        return "-" if x is None else f"{x:.2f}"

    return f"{show(g)} / {show(i)}"


def main(argv: list[str] | None = None) -> int:
    """Run the comparison; exit 0 when every run kept its invariants."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--data", default="coinbase-4h-2016-2025")
    p.add_argument(
        "--preset",
        choices=[*PRESETS, "all"],
        help="a crash window (default march-2020 unless --from/--to are given); all: the three",
    )
    p.add_argument("--from", dest="start", help="first day of a custom window, YYYY-MM-DD")
    p.add_argument("--to", dest="end", help="last day of a custom window, YYYY-MM-DD")
    args = p.parse_args(argv)
    if args.preset and (args.start or args.end):
        p.error("--preset and --from/--to are exclusive")
    windows: list[tuple[str, str, str]] = []
    if args.start or args.end:
        first, last = PRESETS["march-2020"]
        start, end = args.start or first, args.end or last
        windows.append((f"{start}..{end}", start, end))
    else:
        names = list(PRESETS) if args.preset == "all" else [args.preset or "march-2020"]
        windows += [(n, *PRESETS[n]) for n in names]
    cfg = parse_config(COMPARE_CONFIG, "tools/unwind_compare.py")
    results = []
    with tempfile.TemporaryDirectory(prefix="cryptoj-unwind-") as d:
        for name, start, end in windows:
            result = compare(
                cfg,
                args.data,
                dt.date.fromisoformat(start),
                dt.date.fromisoformat(end),
                args.seed,
                Path(d),
            )
            result["window"] = name
            results.append(result)
    v = verdict(results)
    if args.json:
        print(json.dumps({"windows": results, "verdict": v}, sort_keys=True))
    else:
        print("\n\n".join(_table(r) for r in results))
        print()
        print(_summary_table(results, v))
    ok = all(r[m]["invariants_ok"] for r in results for m in ("gradual", "immediate"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
