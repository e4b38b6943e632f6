"""Unwinding and recovery figures of a run, from its journal (replay summary, compare tool).

The PortfolioActor journals one ``unwind_slice`` event per slice (JSON detail, see
:func:`slice_event`); the ShutdownActor journals ``response_level`` changes and
``recovered`` events. From them:

* ``unwind_slices``: slices that filled something;
* ``unwind_shortfall_bps``: the implementation shortfall (Perold) against the mid when each
  product's unwind started, fees included — Σ ((start mid − fill price) × quantity + fees)
  ÷ Σ start mid × quantity, × 10,000. It counts what the market did while the unwind waited;
  the measure the unwind is judged by;
* ``unwind_slippage_bps``: Σ (arrival mid − fill price) × quantity ÷ Σ arrival mid × quantity,
  × 10,000 — the execution cost against the mid when each slice was decided, without fees
  (blind to the drift while waiting: a second figure);
* ``unwind_fees``: Σ fees of the slices, quote currency;
* ``unwind_seconds``: clock time during which at least one unwind was running (union of
  [start of the product's unwind, end of each slice]);
* ``unwind_notional``: Σ fill quantity × price of the slices;
* ``response_levels_reached``, ``recoveries`` and ``buys_after_recovery`` (buy fills at or
  after the first automatic recovery: the system entered positions again).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from cryptoj.journal import Journal
from cryptoj.models.orders import Side
from cryptoj.models.unwind import UnwindPlan, UnwindSliceReport


def plan_event(plan: UnwindPlan, queued: list[str]) -> str:
    """The ``unwind_plan`` event detail (JSON) of a plan the PortfolioActor applied, with the
    products it queued."""
    return json.dumps(
        {
            "plan": plan.plan_id,
            "level": str(plan.level),
            "trigger": plan.trigger,
            "mode": plan.mode,
            "queued": queued,
            "entries_allowed": plan.entries_allowed,
            "size_multiplier": plan.size_multiplier,
            "deadline_ns": plan.deadline_ns,
        }
    )


def slice_event(report: UnwindSliceReport) -> str:
    """The ``unwind_slice`` event detail (JSON) of one slice report."""
    return json.dumps(
        {
            "plan": report.plan_id,
            "trigger": report.trigger,
            "product": report.product,
            "client_order_id": report.client_order_id,
            "quantity": str(report.quantity),
            "filled": str(report.filled),
            "average_price": None if report.average_price is None else str(report.average_price),
            "arrival_mid": str(report.arrival_mid),
            "start_mid": str(report.start_mid),
            "slippage_bps": round(report.slippage_bps, 4),
            "shortfall_bps": round(report.shortfall_bps, 4),
            "remaining_quantity": str(report.remaining_quantity),
            "remaining_exposure": str(report.remaining_exposure),
            "at_market": report.at_market,
            "status": report.status,
            "started_ns": report.started_ns,
            "fee": str(report.fee),
            "ts": report.ts,
        },
        sort_keys=True,
    )


def _union_seconds(intervals: list[tuple[int, int]]) -> float:
    total, end = 0, None
    for a, b in sorted(intervals):
        if end is None or a > end:
            total += b - a
            end = b
        elif b > end:
            total += b - end
            end = b
    return total / 1e9


def unwind_figures(journal: Journal) -> dict[str, Any]:
    """The summary keys of the module docstring."""
    slices = [json.loads(e["detail"]) for e in journal.events("unwind_slice")]
    filled = [s for s in slices if Decimal(s["filled"]) > 0 and s["average_price"] is not None]
    cost = shortfall = base = notional = fees = Decimal(0)
    for s in filled:
        q, px = Decimal(s["filled"]), Decimal(s["average_price"])
        arrival, start = Decimal(s["arrival_mid"]), Decimal(s["start_mid"])
        fee = (
            Decimal(s["fee"])
            if "fee" in s
            else journal.fill_totals(s["client_order_id"])[2]  # journals before fees were kept
        )
        cost += (arrival - px) * q
        shortfall += (start - px) * q + fee
        fees += fee
        base += arrival * q
        notional += px * q
    start_base = sum((Decimal(s["start_mid"]) * Decimal(s["filled"]) for s in filled), Decimal(0))
    levels = ["NORMAL"]
    for e in journal.events("response_level"):
        level = e["detail"].split(" -> ", 1)[-1].split(":", 1)[0]
        if level not in levels:
            levels.append(level)
    recovered = journal.events("recovered")
    first = recovered[0]["ts"] if recovered else None
    return {
        "unwind_slices": len(filled),
        "unwind_slippage_bps": round(float(cost / base * 10_000), 4) if base else None,
        "unwind_shortfall_bps": (
            round(float(shortfall / start_base * 10_000), 4) if start_base else None
        ),
        "unwind_seconds": round(
            _union_seconds([(int(s["started_ns"]), int(s["ts"])) for s in slices]), 3
        ),
        "unwind_notional": round(float(notional), 2),
        "unwind_fees": round(float(fees), 2),
        "response_levels_reached": levels,
        "recoveries": len(recovered),
        "buys_after_recovery": (
            sum(1 for f in journal.fills() if f.ts >= first and f.side == Side.BUY)
            if first is not None
            else 0
        ),
    }
