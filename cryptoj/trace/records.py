"""Trace records (format: :mod:`cryptoj.trace.recorder`): the :class:`Record` type, decoding
and streaming trace files (with their rotated predecessors), time parsing and formatting,
:class:`RecordFilter`, one-line payload summaries and the client order ids a record mentions.

Records are read line by line. A line that is not valid JSON or lacks a required key is passed
to an ``on_corrupt(file, line_number, reason)`` callback and skipped. ``seq`` restarts at 1 when
a daemon restarts and appends to the same file; each such segment is a *run*, and ids are only
unique within a run (so :mod:`cryptoj.trace.follow` keys everything by ``(run, id)``).
No printing here; the CLI formats.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
            have.update(
                str(q.get("product", "")).upper()
                for q in body.get("quotes") or ()
                if isinstance(q, dict)
            )
            if have.isdisjoint(self.products):
                return False
        return True


# --- payload summaries -----------------------------------------------------------------------

_SUMMARY_FIELDS: dict[str, tuple[str, ...]] = {
    "Bar": ("product", "close", "volume"),
    "Quote": ("product", "bid", "ask"),
    "QuoteBatch": (),
    "TargetWeight": ("strategy_id", "product", "weight", "reason"),
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
    if rec.type == "QuoteBatch":
        parts += [
            f"{q.get('product')}={q.get('bid')}/{q.get('ask')}"
            for q in body.get("quotes") or ()
            if isinstance(q, dict)
        ]
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
