"""Trace statistics behind ``trace stats``: :class:`TraceStats` counters (records, deliveries,
handling and mailbox-wait percentiles per actor, starts, restarts, exits, dead letters),
:func:`percentile` and :func:`exit_reason`.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from typing import Any

from cryptoj.trace.records import Record


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
