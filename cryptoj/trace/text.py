"""The text forms the ``cryptoj trace`` commands print: table rows, followed trees, stats and
diffs (pure: data in, lines out; the commands themselves are in :mod:`cryptoj.trace.cli`)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from cryptoj.trace.diff import TraceDiff, differing_fields
from cryptoj.trace.follow import FollowNode, OrderOutcome, TraceIndex, order_outcomes
from cryptoj.trace.records import Record, format_time, summarize

SUMMARY_WIDTH = 100  # characters of payload summary in a table row (``--wide``: all)
_ROW = "{:>7}  {:<23}  {:<7}  {:<23}  {:<18}  {:<8}  {:<15}  {}"


def header() -> str:
    """The column titles of :func:`row`."""
    return _ROW.format("seq", "time (UTC)", "kind", "src → dst", "type", "id", "corr", "payload")


def row(rec: Record, width: int | None = SUMMARY_WIDTH) -> str:
    """One aligned table line."""
    return _ROW.format(
        rec.seq,
        format_time(rec.ts),
        rec.kind,
        f"{rec.src} → {rec.dst}",
        rec.type,
        rec.id,
        rec.corr,
        summarize(rec, width),
    ).rstrip()


def follow_lines(nodes: list[FollowNode], index: TraceIndex, focus: str | None = None) -> list[str]:
    """The text form of a followed tree plus one summary per client order.

    With ``focus`` naming a client order, the summaries are that order's (its fills as the
    portfolio and the journal see them) and one line for its child orders; other orders the
    chain names are left out."""
    lines: list[str] = []
    mentions_started = False
    for node in nodes:
        rec = node.record
        if node.role == "mention" and not mentions_started:
            mentions_started = True
            lines.append("        (records naming the same order, not caused by the chain above)")
        branch = "" if node.depth == 0 else "   " * (node.depth - 1)
        branch += {"risk": "├┄ ", "mention": "┄┄ "}.get(node.role, "└─ " if node.depth else "")
        tag = {"risk": "[risk in effect] ", "target": "[target] "}.get(node.role, "")
        dead = f"[{rec.kind}] " if rec.kind != "deliver" else ""
        lines.append(
            f"{rec.seq:>7}  {format_time(rec.ts)}  {branch}{rec.src} → {rec.dst}  "
            f"{rec.type} {rec.id}  {tag}{dead}{summarize(rec)}".rstrip()
        )
    outcomes = order_outcomes(nodes)
    children = []
    if focus is not None and any(oc.client_order_id == focus for oc in outcomes):
        children = [oc for oc in outcomes if oc.client_order_id.startswith(focus + "-c")]
        outcomes = [oc for oc in outcomes if oc.client_order_id == focus]
    for oc in outcomes:
        lines += _outcome_lines(oc, index)
    if children:
        filled = sum((c.filled for c in children), Decimal(0))
        lines.append(
            f"  child orders: {len(children)} ({children[0].client_order_id} … "
            f"{children[-1].client_order_id}), {sum(len(c.fills) for c in children)} venue "
            f"fill(s), filled {filled}"
        )
    return lines


def _outcome_lines(oc: OrderOutcome, index: TraceIndex) -> list[str]:
    body = oc.submit.payload if oc.submit else {}
    what = " ".join(
        str(body[k]) for k in ("side", "order_type", "quantity", "product") if body.get(k)
    )
    avg = oc.average_price
    fills = f"{len(oc.fills)} fill(s)" + (
        f", avg price {avg:.8g}, fees {oc.fees}" if avg is not None else ""
    )
    lines = [
        "",
        f"order {oc.client_order_id}: {what or '?'} → {oc.status}, filled {oc.filled} in {fills}",
    ]
    if body.get("reason"):
        lines.append(f"  reason: {body['reason']}")
    snap = index.risk_snapshot(oc.submit) if oc.submit else None
    if oc.submit and snap:
        warn = index.restarted_between(snap, oc.submit)
        lines.append(
            f"  risk in effect: {summarize(snap)} (RiskParameters {snap.id}, seq {snap.seq})"
            + (" — portfolio restarted since; it may not have held these" if warn else "")
        )
    elif oc.submit:
        lines.append("  risk in effect: none delivered to portfolio before this decision")
    return lines


def _duration(ns: int) -> str:
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns} ns"


def _counts(c: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in c.items()) or "none"


def stats_lines(s: dict[str, Any], name: str) -> list[str]:
    """The text form of :meth:`TraceStats.to_dict`."""
    span = ""
    if s["first_ts"] is not None:
        span = f", {format_time(s['first_ts'])} .. {format_time(s['last_ts'])} UTC"
    d = s["delivered"]
    runs = f" in {s['runs']} runs" if s["runs"] > 1 else ""
    lines = [f"{name}: {s['records']} records{runs}{span}", f"kinds: {_counts(s['kinds'])}", ""]
    width = max([12, *(len(k) for k in [*d["by_actor"], *d["by_type"]])])
    lines.append(f"delivered {d['total']}, by receiver:")
    lines += [f"  {k:<{width}} {v:>9}" for k, v in d["by_actor"].items()]
    lines.append("delivered by type:")
    lines += [f"  {k:<{width}} {v:>9}" for k, v in d["by_type"].items()]
    for key, title in (("handling_ns", "handling time"), ("mailbox_wait_ns", "mailbox wait")):
        t = s[key]
        if t is None:
            lines.append(f"{title} p50/p99: n/a (deterministic trace)")
            continue
        lines.append(f"{title} p50/p99:")
        for actor, v in [("(all)", t["all"]), *t["by_actor"].items()]:
            lines.append(
                f"  {actor:<{width}} {_duration(v['p50']):>9} / {_duration(v['p99']):<9}"
                f" (n={v['count']})"
            )
    lines += ["", f"restarts: {_counts(s['restarts'])}", "exits:"]
    for actor, e in s["exits"].items():
        reasons = "; ".join(f"{r} ×{n}" for r, n in e["reasons"].items())
        lines.append(f"  {actor:<{width}} crash {e['crash']}, stop {e['stop']}  ({reasons})")
    if not s["exits"]:
        lines.append("  none")
    dl = s["dead_letters"]
    lines.append(f"dead letters: {dl['total']}")
    if dl["total"]:
        lines += [
            f"  by receiver: {_counts(dl['by_actor'])}",
            f"  by type:     {_counts(dl['by_type'])}",
            f"  by reason:   {_counts(dl['by_reason'])}",
        ]
    return lines


def _cell(rec: Record | None, width: int) -> str:
    if rec is None:
        return "(end of trace)".ljust(width)
    text = f"{rec.seq:>6} {rec.kind:<7} {rec.src}→{rec.dst} {rec.type} {rec.id} {summarize(rec)}"
    return (text[: width - 1] + "…" if len(text) > width else text).ljust(width)


def diff_lines(d: TraceDiff, a: str, b: str, width: int = 64) -> list[str]:
    """The text form of a :class:`TraceDiff` of two different traces."""
    lines = [f"A: {a} ({d.count_a} records)", f"B: {b} ({d.count_b} records)"]
    lines.append(f"first divergence at record {d.first}:")
    lines.append(f"    {'A'.ljust(width)} | B")
    for rec in d.before:
        lines.append(f"    {_cell(rec, width)} | (same)")
    for i in range(max(len(d.after_a), len(d.after_b))):
        ra = d.after_a[i] if i < len(d.after_a) else None
        rb = d.after_b[i] if i < len(d.after_b) else None
        mark = "≠ " if i == 0 else "  "
        lines.append(f"  {mark}{_cell(ra, width)} | {_cell(rb, width).rstrip()}")
    if d.after_a and d.after_b:
        fields = differing_fields(d.after_a[0], d.after_b[0])
        lines.append(
            "differing fields: " + "; ".join(f"{k}: {va!r} ≠ {vb!r}" for k, va, vb in fields)
        )
    lines.append("")
    changed = sorted(t for t in {*d.types_a, *d.types_b} if d.types_a[t] != d.types_b[t])
    lines.append("records per type (A / B)" + (":" if changed else ": all equal"))
    lines += [f"  {t:<20} {d.types_a[t]:>8} / {d.types_b[t]:<8}" for t in changed]
    lines.append("records only in one trace (matched by content; seq, ids and run tag ignored):")
    for side, only, examples in (("A", d.only_a, d.examples_a), ("B", d.only_b, d.examples_b)):
        total = sum(only.values())
        lines.append(
            f"  only in {side}: {total}"
            + (f" ({_counts(dict(only.most_common()))})" if total else "")
        )
        lines += [f"    e.g. {format_time(r.ts)} {_cell(r, 100).rstrip()}" for r in examples]
    return lines
