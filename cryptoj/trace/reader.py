"""Reading message traces (format: :mod:`cryptoj.trace.recorder`): parsing, filters, the causal
graph behind ``trace follow``, statistics and diffs. No printing here; the CLI formats.

Records are read line by line. A line that is not valid JSON or lacks a required key is passed
to an ``on_corrupt(file, line_number, reason)`` callback and skipped. ``seq`` restarts at 1 when
a daemon restarts and appends to the same file; each such segment is a *run*, and ids are only
unique within a run, so the causal index keys everything by ``(run, id)``.
"""

from __future__ import annotations

import bisect
import datetime as dt
import gc
import os
import re
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, BinaryIO

import msgspec

#: ``on_corrupt(file, line_number, reason)``: called once per skipped line.
CorruptHandler = Callable[[str, int, str], None]

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_NS = 1_000_000_000


class Record(msgspec.Struct, kw_only=True):
    """One decoded trace record; ``raw`` is the original line, ``file``/``line`` its origin,
    ``run`` its segment (see the module docstring) and ``pos`` its index in a loaded trace."""

    seq: int
    ts: int
    kind: str
    src: str
    dst: str
    type: str
    id: str = ""
    corr: str = ""
    cause: str = ""
    msg: dict[str, Any] | None = None
    dur_ns: int | None = None
    wait_ns: int | None = None
    note: str = ""
    raw: str = ""
    file: str = ""
    line: int = 0
    run: int = 0
    pos: int = -1

    @property
    def payload(self) -> dict[str, Any]:
        """The message fields (empty when the record carries none)."""
        return self.msg or {}

    @property
    def starts_chain(self) -> bool:
        """True for a message that opens its own correlation (a timer tick, a command)."""
        return bool(self.id) and self.corr == self.id

    def comparable(self) -> tuple[Any, ...]:
        """Everything except the wall-clock measurements ``dur_ns``/``wait_ns``."""
        return (self.seq, self.ts, self.kind, self.src, self.dst, self.type, self.id,
                self.corr, self.cause, self.msg, self.note)  # fmt: skip


_DECODER = msgspec.json.Decoder(Record)


def decode_line(line: bytes | str) -> Record:
    """Decode one trace line; raises ``ValueError`` when it is not a valid record."""
    try:
        rec = _DECODER.decode(line)
    except msgspec.DecodeError as e:
        raise ValueError(str(e)) from None
    rec.raw = (line.decode("utf-8", "replace") if isinstance(line, bytes) else line).rstrip("\n")
    return rec


def rotated_files(path: str | Path) -> list[Path]:
    """``path``'s rotated predecessors that exist (``.N`` … ``.1``, oldest first), then ``path``."""
    p = Path(path)
    numbered = []
    for cand in p.parent.glob(p.name + ".*"):
        suffix = cand.name[len(p.name) + 1 :]
        if suffix.isdigit():
            numbered.append((int(suffix), cand))
    return [c for _, c in sorted(numbered, reverse=True)] + [p]


def iter_records(
    path: str | Path, *, on_corrupt: CorruptHandler | None = None, all_rotated: bool = False
) -> Iterator[Record]:
    """Stream the records of ``path`` (after its rotated files when ``all_rotated``).

    Raises ``OSError`` when a file cannot be opened. ``run`` increases whenever ``seq`` does
    not (a restarted writer appended to the file)."""
    files = rotated_files(path) if all_rotated else [Path(path)]
    run, last_seq = 0, 0
    for f in files:
        name = str(f)
        with open(f, "rb") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    rec = decode_line(line)
                except ValueError as e:
                    reason = str(e)
                    if not line.endswith(b"\n"):
                        reason = f"incomplete last line ({reason})"
                    if on_corrupt is not None:
                        on_corrupt(name, lineno, reason)
                    continue
                if rec.seq <= last_seq:
                    run += 1
                last_seq = rec.seq
                rec.file, rec.line, rec.run = name, lineno, run
                yield rec


# --- time and filters ------------------------------------------------------------------------


def parse_time(text: str) -> int:
    """ns since the epoch from ISO-8601 (UTC unless an offset is given) or an integer of ns."""
    t = text.strip()
    if t.isdigit():
        return int(t)
    try:
        d = dt.datetime.fromisoformat(t[:-1] + "+00:00" if t[-1:] in ("Z", "z") else t)
    except ValueError:
        raise ValueError(f"expected an ISO-8601 UTC time or epoch ns, got {text!r}") from None
    if d.tzinfo is None:
        d = d.replace(tzinfo=dt.UTC)
    delta = d - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * _NS + delta.microseconds * 1000


def format_time(ns: int) -> str:
    """``YYYY-MM-DD HH:MM:SS.mmm`` in UTC."""
    secs, rest = divmod(ns, _NS)
    return f"{dt.datetime.fromtimestamp(secs, dt.UTC):%Y-%m-%d %H:%M:%S}.{rest // 1_000_000:03d}"


@dataclass(frozen=True)
class RecordFilter:
    """Selects records; every non-empty criterion must match (values within one are OR-ed).

    ``actors`` match ``src`` or ``dst``; ``types`` and ``products`` ignore case; ``since`` and
    ``until`` (ns) are inclusive."""

    actors: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    products: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    correlations: tuple[str, ...] = ()
    since: int | None = None
    until: int | None = None

    def __post_init__(self) -> None:
        """Normalise case-insensitive criteria."""
        object.__setattr__(self, "types", tuple(t.lower() for t in self.types))
        object.__setattr__(self, "products", tuple(p.upper() for p in self.products))

    def matches(self, rec: Record) -> bool:
        """True when ``rec`` passes every criterion."""
        if self.since is not None and rec.ts < self.since:
            return False
        if self.until is not None and rec.ts > self.until:
            return False
        if self.kinds and rec.kind not in self.kinds:
            return False
        if self.actors and rec.src not in self.actors and rec.dst not in self.actors:
            return False
        if self.types and rec.type.lower() not in self.types:
            return False
        if self.correlations and rec.corr not in self.correlations:
            return False
        if self.products:
            body = rec.payload
            have = {str(body.get("product", "")).upper()}
            have.update(str(p).upper() for p in body.get("products") or ())
            if have.isdisjoint(self.products):
                return False
        return True


# --- payload summaries -----------------------------------------------------------------------

_SUMMARY_FIELDS: dict[str, tuple[str, ...]] = {
    "Bar": ("product", "close", "volume"),
    "Quote": ("product", "bid", "ask"),
    "TargetWeight": ("product", "weight", "reason"),
    "SubmitOrder": ("client_order_id", "product", "side", "order_type", "quantity",
                    "limit_price", "reason"),
    "Fill": ("client_order_id", "product", "side", "quantity", "price", "fee", "liquidity"),
    "OrderClosed": ("client_order_id", "product", "status", "filled_quantity"),
    "OrderStatusReport": ("client_order_id", "known", "status", "filled_quantity"),
    "RiskParameters": ("version", "level", "size_multiplier", "stop_loss", "min_position_size",
                       "max_weight", "reason"),
    "PortfolioSnapshot": ("equity", "cash", "reserved_cash", "open_orders"),
}  # fmt: skip


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        if value and all(isinstance(v, list) and len(v) == 2 for v in value):
            return ",".join(f"{k}:{_fmt(v)}" for k, v in value)
        return ",".join(_fmt(v) for v in value)
    if isinstance(value, str) and (not value or " " in value):
        return '"' + value.replace('"', "'") + '"'
    return str(value)


def summarize(rec: Record, width: int | None = None) -> str:
    """The key payload fields as ``name=value`` pairs (plus the record's note), cut to
    ``width`` characters when given. ``max_weight`` is shown as ``caps``."""
    body = rec.payload
    names = _SUMMARY_FIELDS.get(rec.type) or tuple(k for k in body if k not in ("type", "ts"))
    parts = []
    for name in names:
        value = body.get(name)
        if value is None or value == "" or isinstance(value, dict):
            continue
        if isinstance(value, list) and value and isinstance(value[0], dict):
            continue
        parts.append(f"{'caps' if name == 'max_weight' else name}={_fmt(value)}")
    if rec.note:
        parts.append(f"note={_fmt(rec.note)}")
    text = " ".join(parts)
    if width is not None and len(text) > width:
        text = text[: max(0, width - 1)] + "…"
    return text


def order_ids(rec: Record) -> list[str]:
    """The client order ids the payload mentions."""
    body = rec.msg
    if not body:
        return []
    one, many = body.get("client_order_id"), body.get("client_order_ids")
    ids = [one] if isinstance(one, str) else []
    if many:
        ids += [i for i in many if isinstance(i, str)]
    return ids


# --- the causal graph (follow) ---------------------------------------------------------------


@dataclass(frozen=True)
class FollowNode:
    """One line of a followed chain. ``role``: ``root``, ``cause`` (between root and target),
    ``target``, ``effect`` (caused by a node), ``mention`` (names the order, not causally
    linked) or ``risk`` (the RiskParameters the portfolio held when it decided the order below)."""

    record: Record
    depth: int
    role: str


class TraceIndex:
    """A loaded trace indexed by message id, by cause and by client order id."""

    def __init__(self, records: Iterable[Record]) -> None:
        """Load ``records`` (in file order). The cyclic GC is paused meanwhile: its passes over
        hundreds of thousands of new, acyclic objects would more than double the load time."""
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            self._load(records)
        finally:
            if was_enabled:
                gc.enable()

    def _load(self, records: Iterable[Record]) -> None:
        self.records: list[Record] = []
        self.by_id: dict[tuple[int, str], Record] = {}
        self.children: defaultdict[tuple[int, str], list[Record]] = defaultdict(list)
        self.by_order: defaultdict[tuple[int, str], list[Record]] = defaultdict(list)
        self.risk_positions: list[int] = []
        self.portfolio_starts: list[int] = []
        self.runs = 0
        for rec in records:
            rec.pos = len(self.records)
            self.records.append(rec)
            self.runs = max(self.runs, rec.run + 1)
            if rec.id:
                self.by_id.setdefault((rec.run, rec.id), rec)
            if rec.cause:
                self.children[(rec.run, rec.cause)].append(rec)
            for coid in order_ids(rec):
                self.by_order[(rec.run, coid)].append(rec)
            if rec.dst == "portfolio":
                if rec.kind == "deliver" and rec.type == "RiskParameters":
                    self.risk_positions.append(rec.pos)
                elif rec.kind == "start":
                    self.portfolio_starts.append(rec.pos)

    def resolve(self, ident: str) -> Record | None:
        """The record a message id or client order id names (the latest run wins; for an
        order, its delivered SubmitOrder, else its first mention)."""
        for run in range(self.runs - 1, -1, -1):
            if (run, ident) in self.by_id:
                return self.by_id[(run, ident)]
            mentions = self.by_order.get((run, ident))
            if mentions:
                submits = [r for r in mentions if r.type == "SubmitOrder"]
                delivered = [r for r in submits if r.kind == "deliver"]
                return (delivered or submits or mentions)[0]
        return None

    def ancestors(self, rec: Record) -> list[Record]:
        """``rec`` and its causes, root first. The walk stops at a message that opens its own
        correlation (e.g. the feed's poll Tick), so it does not run back through every tick."""
        chain, seen, cur = [rec], {rec.pos}, rec
        while cur.cause and not cur.starts_chain:
            parent = self.by_id.get((cur.run, cur.cause))
            if parent is None or parent.pos in seen:
                break
            chain.append(parent)
            seen.add(parent.pos)
            cur = parent
        chain.reverse()
        return chain

    def descendants(self, rec: Record, depth: int, seen: set[int]) -> list[FollowNode]:
        """Everything ``rec`` caused, depth first in file order; a message that opens its own
        correlation is listed but not expanded. Adds the positions shown to ``seen``."""
        out: list[FollowNode] = []
        stack = [(c, depth + 1) for c in reversed(self.children.get((rec.run, rec.id), []))]
        while stack:
            cur, d = stack.pop()
            if cur.pos in seen:
                continue
            seen.add(cur.pos)
            out.append(FollowNode(cur, d, "effect"))
            if cur.id and not cur.starts_chain:
                kids = self.children.get((cur.run, cur.id), [])
                stack.extend((c, d + 1) for c in reversed(kids))
        return out

    def risk_snapshot(self, submit: Record) -> Record | None:
        """The last RiskParameters delivered to ``portfolio`` before it handled the message
        that made it send ``submit`` (before ``submit`` itself when that message is unknown)."""
        decided = self.by_id.get((submit.run, submit.cause)) if submit.cause else None
        pos = decided.pos if decided is not None and decided.dst == "portfolio" else submit.pos
        i = bisect.bisect_left(self.risk_positions, pos) - 1
        if i < 0:
            return None
        snap = self.records[self.risk_positions[i]]
        return snap if snap.run == submit.run else None

    def restarted_between(self, first: Record, last: Record) -> bool:
        """True when ``portfolio`` (re)started between the two records (its state was reset)."""
        i = bisect.bisect_right(self.portfolio_starts, first.pos)
        return i < len(self.portfolio_starts) and self.portfolio_starts[i] < last.pos

    def follow(self, ident: str) -> list[FollowNode]:
        """The causal tree around ``ident``: root … target, what the target caused, then records
        naming the same client order ids (and what they caused), each SubmitOrder preceded by
        its risk snapshot. Raises ``KeyError`` for an unknown id."""
        target = self.resolve(ident)
        if target is None:
            raise KeyError(ident)
        chain = self.ancestors(target)
        nodes = [
            FollowNode(r, i, "target" if r is target else ("root" if i == 0 else "cause"))
            for i, r in enumerate(chain)
        ]
        seen = {r.pos for r in chain}
        nodes += self.descendants(target, len(chain) - 1, seen)
        coids = dict.fromkeys(c for n in nodes for c in order_ids(n.record))
        for coid in coids:
            for rec in self.by_order.get((target.run, coid), []):
                if rec.pos not in seen:
                    seen.add(rec.pos)
                    nodes.append(FollowNode(rec, 1, "mention"))
                    nodes += self.descendants(rec, 1, seen)
        out: list[FollowNode] = []
        for node in nodes:
            if node.record.type == "SubmitOrder":
                snap = self.risk_snapshot(node.record)
                if snap is not None:
                    out.append(FollowNode(snap, node.depth, "risk"))
            out.append(node)
        return out


@dataclass
class OrderOutcome:
    """What happened to one client order, from the records of a followed chain."""

    client_order_id: str
    submit: Record | None = None
    fills: list[Record] = field(default_factory=list)
    status: str = "unknown"
    filled: Decimal = Decimal(0)
    notional: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)

    @property
    def average_price(self) -> Decimal | None:
        """Volume-weighted fill price (None without fills)."""
        return self.notional / self.filled if self.filled else None


def order_outcomes(nodes: Iterable[FollowNode]) -> list[OrderOutcome]:
    """One outcome per client order in ``nodes``: fills counted once per ``fill_id``."""
    outcomes: dict[str, OrderOutcome] = {}
    fill_ids: set[str] = set()
    for node in nodes:
        rec, body = node.record, node.record.payload
        if node.role == "risk":
            continue
        for coid in order_ids(rec):
            oc = outcomes.setdefault(coid, OrderOutcome(coid))
            if rec.type == "SubmitOrder" and oc.submit is None:
                oc.submit = rec
            elif rec.type == "Fill" and body.get("fill_id") not in fill_ids:
                fill_ids.add(str(body.get("fill_id")))
                oc.fills.append(rec)
                try:
                    qty, price = Decimal(body["quantity"]), Decimal(body["price"])
                    oc.filled += qty
                    oc.notional += qty * price
                    oc.fees += Decimal(body.get("fee", "0"))
                except (KeyError, InvalidOperation, TypeError):
                    pass
            elif rec.type == "OrderStatusReport" and body.get("known") is False:
                oc.status = "NEVER RECEIVED by execution"
            elif rec.type in ("OrderClosed", "OrderStatusReport") and body.get("status"):
                oc.status = str(body["status"])
            elif rec.type == "OrderRejected":
                oc.status = "REJECTED"
    return list(outcomes.values())


# --- statistics ------------------------------------------------------------------------------


def percentile(sorted_values: list[int], pct: float) -> int:
    """Nearest-rank percentile of an ascending, non-empty list."""
    rank = max(1, -(-int(pct * len(sorted_values)) // 100))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def _timing(values: dict[str, list[int]]) -> dict[str, Any] | None:
    if not any(values.values()):
        return None

    def one(v: list[int]) -> dict[str, int]:
        v.sort()
        return {"count": len(v), "p50": percentile(v, 50), "p99": percentile(v, 99)}

    every = [x for v in values.values() for x in v]
    return {"all": one(every), "by_actor": {a: one(v) for a, v in sorted(values.items()) if v}}


_PARENS = re.compile(r"\(.*", re.DOTALL)


def exit_reason(note: str) -> tuple[str, str]:
    """``("crash" | "stop", short reason)`` from an exit record's note (exception text cut)."""
    category, _, reason = note.partition(":")
    if category not in ("crash", "stop"):
        return "crash" if "crash" in note.lower() else "stop", _PARENS.sub("", note).strip()
    return category, _PARENS.sub("", reason).strip() or category


class TraceStats:
    """Counters over a stream of records; feed with :meth:`add`, read with :meth:`to_dict`.

    A restart is a ``start`` record beyond the first for its actor within one run (a new run,
    i.e. a restarted process appending to the file, starts every actor afresh)."""

    def __init__(self) -> None:
        """Start empty."""
        self.records = 0
        self.first_ts: int | None = None
        self.last_ts: int | None = None
        self.kinds: Counter[str] = Counter()
        self.delivered_actor: Counter[str] = Counter()
        self.delivered_type: Counter[str] = Counter()
        self.dur: defaultdict[str, list[int]] = defaultdict(list)
        self.wait: defaultdict[str, list[int]] = defaultdict(list)
        self.runs = 0
        self.starts: Counter[str] = Counter()
        self.restarts: Counter[str] = Counter()
        self._started: set[tuple[int, str]] = set()
        self.exits: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.exit_reasons: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.dead_actor: Counter[str] = Counter()
        self.dead_type: Counter[str] = Counter()
        self.dead_reason: Counter[str] = Counter()

    def add(self, rec: Record) -> None:
        """Count one record."""
        self.records += 1
        self.runs = max(self.runs, rec.run + 1)
        self.first_ts = rec.ts if self.first_ts is None else min(self.first_ts, rec.ts)
        self.last_ts = rec.ts if self.last_ts is None else max(self.last_ts, rec.ts)
        self.kinds[rec.kind] += 1
        if rec.kind == "deliver":
            self.delivered_actor[rec.dst] += 1
            self.delivered_type[rec.type] += 1
            if rec.dur_ns is not None:
                self.dur[rec.dst].append(rec.dur_ns)
            if rec.wait_ns is not None:
                self.wait[rec.dst].append(rec.wait_ns)
        elif rec.kind == "start":
            actor = str(rec.payload.get("name") or rec.dst)
            self.starts[actor] += 1
            if (rec.run, actor) in self._started:
                self.restarts[actor] += 1
            self._started.add((rec.run, actor))
        elif rec.kind == "exit":
            actor = str(rec.payload.get("name") or rec.src)
            category, reason = exit_reason(rec.note or str(rec.payload.get("reason", "")))
            self.exits[actor][category] += 1
            self.exit_reasons[actor][f"{category}: {reason}"] += 1
        elif rec.kind == "dead":
            self.dead_actor[rec.dst] += 1
            self.dead_type[rec.type] += 1
            self.dead_reason[rec.note or "?"] += 1

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (timing sections are None when no record carries them)."""

        def ranked(c: Counter[str]) -> dict[str, int]:
            return dict(sorted(c.items(), key=lambda kv: (-kv[1], kv[0])))

        return {
            "records": self.records,
            "runs": self.runs,
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
            "kinds": ranked(self.kinds),
            "delivered": {
                "total": self.kinds["deliver"],
                "by_actor": ranked(self.delivered_actor),
                "by_type": ranked(self.delivered_type),
            },
            "handling_ns": _timing(self.dur),
            "mailbox_wait_ns": _timing(self.wait),
            "starts": ranked(self.starts),
            "restarts": ranked(self.restarts),
            "exits": {
                a: {"crash": c["crash"], "stop": c["stop"], "reasons": ranked(self.exit_reasons[a])}
                for a, c in sorted(self.exits.items())
            },
            "dead_letters": {
                "total": self.kinds["dead"],
                "by_actor": ranked(self.dead_actor),
                "by_type": ranked(self.dead_type),
                "by_reason": ranked(self.dead_reason),
            },
        }


# --- diff ------------------------------------------------------------------------------------

_RUN_TAG = re.compile(rb'"([A-Za-z]+)-[A-Za-z]+\d+-(\d+)"')
_SIG_ENCODER = msgspec.json.Encoder()


def signature(rec: Record) -> int:
    """A hash of what a record says, ignoring where it sits: ``seq``, ids, timings and the run
    tag of the ``*_id``/``*_ids`` fields (``cj-s7-000049`` ≡ ``cj-s8-000049``) are left out."""
    body = _SIG_ENCODER.encode(rec.msg)
    if b"_id" in body:
        body = _RUN_TAG.sub(rb'"\1-*-\2"', body)
    return hash((rec.kind, rec.src, rec.dst, rec.type, rec.ts, rec.note, body))


def differing_fields(a: Record, b: Record) -> list[tuple[str, Any, Any]]:
    """``(field, value in a, value in b)`` for the top-level and ``msg.*`` fields that differ."""
    out: list[tuple[str, Any, Any]] = []
    for name in ("seq", "ts", "kind", "src", "dst", "type", "id", "corr", "cause", "note"):
        if getattr(a, name) != getattr(b, name):
            out.append((name, getattr(a, name), getattr(b, name)))
    pa, pb = a.payload, b.payload
    for key in dict.fromkeys([*pa, *pb]):
        if pa.get(key) != pb.get(key):
            out.append((f"msg.{key}", pa.get(key), pb.get(key)))
    return out


@dataclass
class TraceDiff:
    """Where and how two traces differ. ``first`` is the 1-based record number of the first
    divergence (None when identical); ``before`` are the common records just before it;
    ``after_a``/``after_b`` start at it. ``only_a``/``only_b`` count, per type, records whose
    :func:`signature` has no partner on the other side; ``examples_*`` are a few of them."""

    count_a: int = 0
    count_b: int = 0
    first: int | None = None
    before: list[Record] = field(default_factory=list)
    after_a: list[Record] = field(default_factory=list)
    after_b: list[Record] = field(default_factory=list)
    types_a: Counter[str] = field(default_factory=Counter)
    types_b: Counter[str] = field(default_factory=Counter)
    only_a: Counter[str] = field(default_factory=Counter)
    only_b: Counter[str] = field(default_factory=Counter)
    examples_a: list[Record] = field(default_factory=list)
    examples_b: list[Record] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        """True when both traces hold the same records in the same order."""
        return self.first is None


def diff_traces(
    open_a: Callable[[], Iterable[Record]],
    open_b: Callable[[], Iterable[Record]],
    *,
    context: int = 3,
    examples: int = 3,
) -> TraceDiff:
    """Compare two traces position by position (ignoring ``dur_ns``/``wait_ns``), streaming.

    ``open_a``/``open_b`` return a fresh iterator each call; a second pass over each collects
    examples of unmatched records, only when the traces differ."""
    res = TraceDiff()
    sig_a: Counter[int] = Counter()
    sig_b: Counter[int] = Counter()
    window: deque[Record] = deque(maxlen=context)
    ia, ib = iter(open_a()), iter(open_b())
    while True:
        a, b = next(ia, None), next(ib, None)
        if a is None and b is None:
            break
        for rec, sigs, types in ((a, sig_a, res.types_a), (b, sig_b, res.types_b)):
            if rec is not None:
                sigs[signature(rec)] += 1
                types[rec.type] += 1
        res.count_a += a is not None
        res.count_b += b is not None
        if res.first is None:
            if a is not None and b is not None and a.comparable() == b.comparable():
                window.append(a)
                continue
            res.first, res.before = max(res.count_a, res.count_b), list(window)
        for rec, after in ((a, res.after_a), (b, res.after_b)):
            if rec is not None and len(after) <= context:
                after.append(rec)
    if res.first is None:
        return res
    extra_a, extra_b = sig_a - sig_b, sig_b - sig_a
    for source, extra, only, ex in (
        (open_a, extra_a, res.only_a, res.examples_a),
        (open_b, extra_b, res.only_b, res.examples_b),
    ):
        if not extra:
            continue
        left = Counter(extra)
        for rec in source():
            s = signature(rec)
            if left[s] > 0:
                left[s] -= 1
                only[rec.type] += 1
                if len(ex) < examples:
                    ex.append(rec)
    return res


# --- tail ------------------------------------------------------------------------------------


def _identity(st: os.stat_result) -> tuple[int, int]:
    """Identifies a rotated (no longer written) file even if its inode number is reused later."""
    return st.st_ino, st.st_mtime_ns


class TailReader:
    """Reads the records appended to a growing trace file, surviving rotation and truncation.

    Call :meth:`poll` repeatedly; it returns the complete lines written since the last call.
    When ``path`` is replaced (rotation, or a fresh writer) the rest of the old file is drained,
    rotated files not seen yet are read whole, oldest first (several rotations between two
    polls), then the new ``path`` from its start. When ``path`` shrinks (truncation) it is
    reread from 0. Files rotated out of existence between two polls are lost."""

    def __init__(
        self,
        path: str | Path,
        *,
        from_start: bool = False,
        on_corrupt: CorruptHandler | None = None,
    ) -> None:
        """Open ``path`` (``OSError`` if missing) at its end, or at its start if ``from_start``."""
        self.path = Path(path)
        self.on_corrupt = on_corrupt
        self._fh: BinaryIO = open(self.path, "rb")  # noqa: SIM115 - closed in close()
        self._ino = os.fstat(self._fh.fileno()).st_ino
        self._buf = b""
        self._lineno = 0
        self._done = {_identity(st) for _, st in self._rotated()}  # older than our start
        if not from_start:
            while chunk := self._fh.read(1 << 20):
                data = self._buf + chunk
                self._lineno += chunk.count(b"\n")
                self._buf = data[data.rfind(b"\n") + 1 :]

    def _decode(self, lines: list[bytes], file: Path, first_lineno: int) -> list[Record]:
        out = []
        for lineno, line in enumerate(lines, first_lineno):
            if not line.strip():
                continue
            try:
                rec = decode_line(line)
            except ValueError as e:
                if self.on_corrupt is not None:
                    self.on_corrupt(str(file), lineno, str(e))
                continue
            rec.file, rec.line = str(file), lineno
            out.append(rec)
        return out

    def _read(self) -> list[Record]:
        data = self._buf + self._fh.read()
        *lines, self._buf = data.split(b"\n")
        out = self._decode(lines, self.path, self._lineno + 1)
        self._lineno += len(lines)
        return out

    def _rotated(self) -> list[tuple[Path, os.stat_result]]:
        """``path.1``, ``path.2``, … (newest first) that exist now."""
        found = []
        for i in range(1, 10_000):
            cand = self.path.with_name(f"{self.path.name}.{i}")
            try:
                found.append((cand, os.stat(cand)))
            except FileNotFoundError:
                break
        return found

    def _unseen(self, new_ino: int) -> list[tuple[Path, BinaryIO]]:
        """Rotated files not read yet and older than inode ``new_ino``, opened, oldest first.
        Retries when a rotation renames files while they are being opened."""
        for _ in range(5):
            rotated = self._rotated()
            inos = [st.st_ino for _, st in rotated]
            if new_ino in inos:  # rotated again already: newer files wait for the next switch
                rotated = rotated[inos.index(new_ino) + 1 :]
            opened: list[tuple[Path, BinaryIO]] = []
            consistent = True
            for name, st in reversed(rotated):
                if _identity(st) in self._done:
                    continue
                try:
                    fh = open(name, "rb")  # noqa: SIM115 - closed by the caller
                except FileNotFoundError:
                    consistent = False
                    break
                opened.append((name, fh))
                if _identity(os.fstat(fh.fileno())) != _identity(st):
                    consistent = False
                    break
            if consistent:
                return opened
            for _, stale in opened:
                stale.close()
        return []

    def _switch(self) -> list[Record]:
        """Follow a rotation: the rest of the old file, unseen rotated files, the new file."""
        out = self._read()  # written between our last read and the rotation
        self._done.add(_identity(os.fstat(self._fh.fileno())))
        new_fh = open(self.path, "rb")  # noqa: SIM115
        new_ino = os.fstat(new_fh.fileno()).st_ino
        for name, fh in self._unseen(new_ino):
            with fh:
                self._done.add(_identity(os.fstat(fh.fileno())))
                out += self._decode(fh.read().split(b"\n"), name, 1)
        present = {_identity(st) for _, st in self._rotated()}
        self._done &= present | {_identity(os.fstat(self._fh.fileno()))}
        self._fh.close()
        self._fh, self._ino, self._buf, self._lineno = new_fh, new_ino, b"", 0
        return out + self._read()

    def poll(self) -> list[Record]:
        """New complete records (possibly none)."""
        out = self._read()
        try:
            st = os.stat(self.path)
        except FileNotFoundError:  # between the rename and the re-creation of a rotation
            return out
        if st.st_ino != self._ino:
            out += self._switch()
        elif st.st_size < self._fh.tell():
            self._fh.seek(0)
            self._buf, self._lineno = b"", 0
            out += self._read()
        return out

    def close(self) -> None:
        """Close the file."""
        self._fh.close()
