"""Comparing two traces (``trace diff``): :func:`diff_traces` streams both, finds the first
divergence and counts the records without a partner by :func:`signature`; :class:`TraceDiff`
holds the result and :func:`differing_fields` lists how two records differ.
"""

from __future__ import annotations

import re
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from cryptoj.trace.records import Record

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
