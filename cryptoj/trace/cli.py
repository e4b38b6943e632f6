"""``cryptoj trace``: show, follow, tail, stats and diff message traces.

Exit codes: 0 success (``diff``: identical); 1 ``diff``: the traces differ; 2 bad usage, a
missing or unreadable file, or an unknown id. Corrupt lines are reported on stderr and skipped.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from typing import Any, TextIO

from cryptoj.trace.diff import TraceDiff, diff_traces, differing_fields
from cryptoj.trace.follow import FollowNode, OrderOutcome, TraceIndex, order_outcomes
from cryptoj.trace.records import (
    Record,
    RecordFilter,
    format_time,
    iter_records,
    parse_time,
    rotated_files,
    summarize,
)
from cryptoj.trace.stats import TraceStats
from cryptoj.trace.tail import TailReader

EXIT_OK, EXIT_DIFFERENT, EXIT_USAGE = 0, 1, 2
KINDS = ("deliver", "dead", "start", "exit")
SUMMARY_WIDTH = 100
_ROW = "{:>7}  {:<23}  {:<7}  {:<23}  {:<18}  {:<8}  {:<15}  {}"


class CorruptReporter:
    """Prints ``FILE:LINE: skipped corrupt record: …`` to stderr, once per line even when a
    file is read twice, at most ``limit`` times (then only a count at the end)."""

    def __init__(self, stream: TextIO, limit: int = 100) -> None:
        """Report to ``stream``."""
        self.stream, self.limit, self.count = stream, limit, 0
        self._seen: set[tuple[str, int]] = set()

    def __call__(self, file: str, line: int, reason: str) -> None:
        """Report one skipped line."""
        if (file, line) in self._seen:
            return
        self._seen.add((file, line))
        self.count += 1
        if self.count <= self.limit:
            print(f"{file}:{line}: skipped corrupt record: {reason}", file=self.stream)

    def finish(self) -> None:
        """Print the number of reports held back, if any."""
        if self.count > self.limit:
            hidden = self.count - self.limit
            print(f"trace: {hidden} more corrupt records skipped", file=self.stream)


def _time(text: str) -> int:
    try:
        return parse_time(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _split(values: list[str] | None) -> tuple[str, ...]:
    return tuple(v.strip() for item in values or () for v in item.split(",") if v.strip())


def _add_filters(p: argparse.ArgumentParser) -> None:
    f = p.add_argument_group("filters (repeat a flag or use commas for alternatives)")
    f.add_argument("--actor", action="append", help="sender or receiver name")
    f.add_argument("--type", action="append", help="message type, e.g. SubmitOrder")
    f.add_argument("--product", action="append", help="payload product, e.g. ETH-USD")
    f.add_argument("--kind", action="append", help="record kind: " + ", ".join(KINDS))
    f.add_argument("--correlation", action="append", metavar="ID", help="correlation id")
    f.add_argument("--since", type=_time, metavar="TIME", help="ISO-8601 UTC or epoch ns")
    f.add_argument("--until", type=_time, metavar="TIME", help="inclusive, like --since")
    p.add_argument("--json", action="store_true", help="print the original records (JSON lines)")
    p.add_argument("--wide", action="store_true", help="do not cut payload summaries")


def _add_rotation(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--all-rotated",
        dest="all_rotated",
        action="store_true",
        default=True,
        help="read the rotated files FILE.N … FILE.1 first, newest last (the default)",
    )
    g.add_argument(
        "--current-only",
        dest="all_rotated",
        action="store_false",
        help="read FILE only, not its rotated predecessors",
    )


def not_found(ident: str, path: str, all_rotated: bool) -> str:
    """The line for an id that is not in what was read, naming the files and older ones."""
    older = rotated_files(path)[:-1]
    if all_rotated:
        where = f"{path} and its {len(older)} rotated file(s)" if older else path
        return f"no message id or client order id {ident!r} in {where}"
    hint = (
        f"; older rotated files exist ({', '.join(str(o) for o in older)}): "
        "drop --current-only to read them"
        if older
        else ""
    )
    return f"no message id or client order id {ident!r} in {path}{hint}"


def known_types() -> list[str]:
    """The message type names a trace can hold (every :class:`Message` subclass)."""
    import cryptoj.models
    import cryptoj.ops.flags
    import cryptoj.ops.probe  # noqa: F401
    from cryptoj.models.base import Message

    names: set[str] = set()
    todo = [Message]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            names.add(sub.__name__)
            todo.append(sub)
    return sorted(names)


def unknown_types(types: Iterable[str]) -> list[str]:
    """The ``--type`` values that name no message type (case is ignored)."""
    known = {t.lower() for t in known_types()}
    return [t for t in types if t.lower() not in known]


def _filter(args: argparse.Namespace) -> RecordFilter:
    return RecordFilter(
        actors=_split(args.actor),
        types=_split(args.type),
        products=_split(args.product),
        kinds=_split(args.kind),
        correlations=_split(args.correlation),
        since=args.since,
        until=args.until,
    )


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``cryptoj trace``."""
    p = argparse.ArgumentParser(
        prog="cryptoj trace",
        description="Inspect cryptoj message traces (JSON lines, see cryptoj/trace/recorder.py).",
        epilog="exit codes: 0 success (diff: identical), 1 diff: the traces differ, 2 bad usage, "
        "missing or unreadable file, unknown id. Corrupt lines are reported on stderr and skipped.",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    show = sub.add_parser("show", help="list records as a table (or JSON lines)")
    show.add_argument("file")
    _add_filters(show)
    show.add_argument("--limit", type=int, metavar="N", help="stop after N matching records")
    _add_rotation(show)
    show.set_defaults(func=cmd_show)

    follow = sub.add_parser("follow", help="the causal chain of a message or client order id")
    follow.add_argument("file")
    follow.add_argument("id", help="client order id (cj-s7-000049) or message id (m674)")
    follow.add_argument("--json", action="store_true", help="tree nodes as JSON lines")
    _add_rotation(follow)
    follow.set_defaults(func=cmd_follow)

    tail = sub.add_parser("tail", help="print records as they are appended (like tail -f)")
    tail.add_argument("file")
    _add_filters(tail)
    tail.add_argument("--from-start", action="store_true", help="print existing records first")
    tail.add_argument("--max-seconds", type=float, metavar="S", help="stop after S seconds")
    tail.add_argument("--poll", type=int, default=200, metavar="MS", help="poll interval (200)")
    tail.set_defaults(func=cmd_tail)

    stats = sub.add_parser("stats", help="counts, timings, restarts, exits and dead letters")
    stats.add_argument("file")
    stats.add_argument("--json", action="store_true", help="print one JSON object")
    _add_rotation(stats)
    stats.set_defaults(func=cmd_stats)

    diff = sub.add_parser("diff", help="where two traces diverge (exit 1 if they do)")
    diff.add_argument("a")
    diff.add_argument("b")
    diff.add_argument("--context", type=int, default=3, metavar="N", help="records around (3)")
    diff.set_defaults(func=cmd_diff)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``cryptoj trace`` and ``tools/trace.py``."""
    parser = build_parser()
    try:
        args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as e:  # --help (0) or a usage error (2)
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    report = CorruptReporter(sys.stderr)
    try:
        return int(args.func(args, report))
    except BrokenPipeError:  # e.g. piped into head
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except OSError as e:
        print(f"trace {args.command}: {e.filename or ''}: {e.strerror or e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_OK
    finally:
        report.finish()


# --- show ------------------------------------------------------------------------------------


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


def _records(args: argparse.Namespace, report: CorruptReporter, path: str) -> Iterator[Record]:
    """Check ``path`` now (``OSError`` before any output), then stream its records lazily."""
    open(path, "rb").close()
    return iter_records(path, on_corrupt=report, all_rotated=getattr(args, "all_rotated", False))


def _emit(recs: Iterable[Record], args: argparse.Namespace, out: TextIO) -> int:
    n = 0
    for rec in recs:
        out.write((rec.raw if args.json else row(rec, None if args.wide else SUMMARY_WIDTH)) + "\n")
        n += 1
    return n


def check_types(args: argparse.Namespace) -> bool:
    """False (after one line on stderr naming the known types) when a ``--type`` is unknown."""
    unknown = unknown_types(_split(args.type))
    if unknown:
        print(
            f"trace {args.command}: unknown message type(s) {', '.join(unknown)}; "
            f"known: {', '.join(known_types())}",
            file=sys.stderr,
        )
    return not unknown


def cmd_show(args: argparse.Namespace, report: CorruptReporter) -> int:
    """``show``: the matching records, streamed."""
    flt, out = _filter(args), sys.stdout
    if not check_types(args):
        return EXIT_USAGE
    recs = _records(args, report, args.file)
    if not args.json:
        out.write(header() + "\n")
    matching = (r for r in recs if flt.matches(r))
    if args.limit is not None:
        matching = (r for _, r in zip(range(max(0, args.limit)), matching, strict=False))
    _emit(matching, args, out)
    return EXIT_OK


# --- follow ----------------------------------------------------------------------------------


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


def cmd_follow(args: argparse.Namespace, report: CorruptReporter) -> int:
    """``follow``: the causal tree around a message id or client order id."""
    index = TraceIndex(_records(args, report, args.file))
    try:
        nodes = index.follow(args.id)
    except KeyError:
        print(f"trace follow: {not_found(args.id, args.file, args.all_rotated)}", file=sys.stderr)
        return EXIT_USAGE
    out = sys.stdout
    if args.json:
        for node in nodes:
            obj = {"depth": node.depth, "role": node.role, **json.loads(node.record.raw)}
            out.write(json.dumps(obj, ensure_ascii=False) + "\n")
        return EXIT_OK
    target = next(n.record for n in nodes if n.role == "target")
    run = f", run {target.run + 1} of {index.runs}" if index.runs > 1 else ""
    out.write(
        f"{args.id}: {target.type} {target.id} (seq {target.seq}{run}) in {args.file}, "
        f"{len(nodes)} records\n"
    )
    out.write("\n".join(follow_lines(nodes, index, focus=args.id)) + "\n")
    return EXIT_OK


# --- tail ------------------------------------------------------------------------------------


def cmd_tail(
    args: argparse.Namespace,
    report: CorruptReporter,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """``tail``: print matching records as they are appended, until ``--max-seconds`` or Ctrl-C."""
    flt, out = _filter(args), sys.stdout
    if not check_types(args):
        return EXIT_USAGE
    reader = TailReader(args.file, from_start=args.from_start, on_corrupt=report)
    deadline = None if args.max_seconds is None else time.monotonic() + args.max_seconds
    if not args.json:
        out.write(header() + "\n")
    try:
        while True:
            if _emit((r for r in reader.poll() if flt.matches(r)), args, out):
                out.flush()
            if deadline is not None and time.monotonic() >= deadline:
                return EXIT_OK
            pause = max(0.001, args.poll / 1000)
            if deadline is not None:
                pause = min(pause, max(0.0, deadline - time.monotonic()))
            sleep(pause)
    except KeyboardInterrupt:
        return EXIT_OK
    finally:
        reader.close()
        out.flush()


# --- stats -----------------------------------------------------------------------------------


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


def cmd_stats(args: argparse.Namespace, report: CorruptReporter) -> int:
    """``stats``: one streaming pass of counters."""
    stats = TraceStats()
    for rec in _records(args, report, args.file):
        stats.add(rec)
    s = stats.to_dict()
    if args.json:
        print(json.dumps(s))
    else:
        print("\n".join(stats_lines(s, read_what(args.file, args.all_rotated))))
    return EXIT_OK


def read_what(path: str, all_rotated: bool) -> str:
    """``path``, naming the rotated files read with it, or the ones left unread."""
    older = rotated_files(path)[:-1]
    if not older:
        return path
    if all_rotated:
        return f"{path} and its {len(older)} rotated file(s)"
    return f"{path} only ({len(older)} older rotated file(s) not read: drop --current-only)"


# --- diff ------------------------------------------------------------------------------------


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


def cmd_diff(args: argparse.Namespace, report: CorruptReporter) -> int:
    """``diff``: exit 0 when identical (ignoring ``dur_ns``/``wait_ns``), 1 when not."""
    for path in (args.a, args.b):
        open(path, "rb").close()
    d = diff_traces(
        lambda: iter_records(args.a, on_corrupt=report),
        lambda: iter_records(args.b, on_corrupt=report),
        context=max(0, args.context),
    )
    if d.identical:
        print(f"identical ({d.count_a} records)")
        return EXIT_OK
    print("\n".join(diff_lines(d, args.a, args.b)))
    return EXIT_DIFFERENT
