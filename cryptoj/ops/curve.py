"""The equity curve of the dashboard: journal marks folded into a bounded number of points.

Pure logic (no I/O): :class:`EquityCurve` takes (market time, equity) marks in time order, as
the ops endpoint reads them from the journal a few at a time, and keeps at most
``max_points`` points however long the daemon runs. Marks are grouped into equal spans of
market time counted from the first mark; when the spans no longer fit, their width doubles and
neighbours merge, so reading the journal is incremental and a request costs only the new
marks. Each point keeps its span's lowest mark and deepest drawdown, so thinning never hides a
trough; the maximum drawdown is over every mark.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

#: The narrowest span: the PortfolioActor journals at most one mark per second.
BASE_SPAN_NS = 1_000_000_000


@dataclass(slots=True)
class Point:
    """One span's summary: its last mark, the running peak and drawdown there, its extremes."""

    index: int  # span number from the first mark (at the current width)
    ts: int  # the last mark's market time, ns
    equity: float  # the last mark
    peak: float  # the highest mark so far (all spans up to this mark)
    drawdown: float  # 1 - equity / peak at the last mark
    low: float  # the span's lowest mark
    worst: float  # the span's deepest drawdown

    def row(self) -> list[Any]:
        """``[ts, equity, peak, drawdown, low, worst]`` (the JSON the page draws)."""
        return [self.ts, self.equity, self.peak, self.drawdown, self.low, self.worst]


class EquityCurve:
    """Marks in, at most ``max_points`` points out (see the module docstring)."""

    def __init__(self, max_points: int = 600, base_span_ns: int = BASE_SPAN_NS) -> None:
        if max_points < 2:
            raise ValueError(f"max_points: expected at least 2, got {max_points}")
        if base_span_ns < 1:
            raise ValueError(f"base_span_ns: expected at least 1, got {base_span_ns}")
        self.max_points = max_points
        self.span_ns = base_span_ns
        self.points: list[Point] = []
        self.marks = 0
        self.first: int | None = None
        self.last: int | None = None
        self.peak = float("-inf")
        self.max_drawdown = 0.0

    def add(self, ts: int, equity: float) -> bool:
        """Fold in one mark; a mark not after the last one is ignored (returns False)."""
        if self.last is not None and ts <= self.last:
            return False
        if self.first is None:
            self.first = ts
        self.last = ts
        self.marks += 1
        self.peak = max(self.peak, equity)
        dd = 1.0 - equity / self.peak if self.peak > 0 else 0.0
        self.max_drawdown = max(self.max_drawdown, dd)
        index = (ts - self.first) // self.span_ns
        tail = self.points[-1] if self.points else None
        if tail is not None and tail.index == index:
            tail.ts, tail.equity, tail.peak, tail.drawdown = ts, equity, self.peak, dd
            tail.low, tail.worst = min(tail.low, equity), max(tail.worst, dd)
        else:
            self.points.append(Point(index, ts, equity, self.peak, dd, equity, dd))
            while len(self.points) > self.max_points:
                self._widen()
        return True

    def extend(self, marks: Iterable[tuple[int, float]]) -> int:
        """Fold in marks in time order; returns how many were new."""
        return sum(self.add(ts, equity) for ts, equity in marks)

    def _widen(self) -> None:
        """Double the span width: neighbours that now share a span merge into one point."""
        self.span_ns *= 2
        merged: list[Point] = []
        for p in self.points:
            p.index //= 2
            if merged and merged[-1].index == p.index:
                m = merged[-1]
                m.ts, m.equity, m.peak, m.drawdown = p.ts, p.equity, p.peak, p.drawdown
                m.low, m.worst = min(m.low, p.low), max(m.worst, p.worst)
            else:
                merged.append(p)
        self.points = merged

    def snapshot(self) -> dict[str, Any]:
        """The curve as JSON: points, number of marks, maximum drawdown, first/last, span."""
        return {
            "points": [p.row() for p in self.points],
            "marks": self.marks,
            "max_drawdown": self.max_drawdown,
            "first": self.first,
            "last": self.last,
            "span_ns": self.span_ns,
        }


__all__ = ["BASE_SPAN_NS", "EquityCurve", "Point"]
