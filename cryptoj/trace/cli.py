"""``cryptoj trace``: show, follow, tail, stats and diff message traces (the text they print
is formed in :mod:`cryptoj.trace.text`).

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
from typing import TextIO

from cryptoj.trace.diff import diff_traces
from cryptoj.trace.follow import TraceIndex
from cryptoj.trace.records import (
    Record,
    RecordFilter,
    iter_records,
    parse_time,
    rotated_files,
)
from cryptoj.trace.stats import TraceStats
from cryptoj.trace.tail import TailReader
from cryptoj.trace.text import SUMMARY_WIDTH, diff_lines, follow_lines, header, row, stats_lines

EXIT_OK, EXIT_DIFFERENT, EXIT_USAGE = 0, 1, 2
KINDS = ("deliver", "dead", "start", "exit")


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
