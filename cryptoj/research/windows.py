"""Walk-forward windows: rolling (train, test) pairs of whole UTC days."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptoj.research.space import WalkForward


@dataclass(frozen=True)
class Fold:
    """One walk-forward step: a train window and the test window right after it (both
    inclusive; no test window when walk-forward is off)."""

    index: int
    train_start: dt.date
    train_end: dt.date
    test_start: dt.date | None = None
    test_end: dt.date | None = None

    def label(self) -> str:
        """``train a..b → test c..d``."""
        text = f"train {self.train_start}..{self.train_end}"
        if self.test_start is not None:
            text += f" → test {self.test_start}..{self.test_end}"
        return text


def make_folds(start: dt.date, end: dt.date, wf: WalkForward) -> list[Fold]:
    """The folds over the days ``start``..``end`` (inclusive). With walk-forward off, one fold
    trains on everything. Raises ValueError when not one train + test pair fits."""
    if end < start:
        raise ValueError(f"the data range {start}..{end} is empty")
    if not wf.enabled:
        return [Fold(0, start, end)]
    step = dt.timedelta(days=wf.step_days or wf.test_days)
    train = dt.timedelta(days=wf.train_days)
    test = dt.timedelta(days=wf.test_days)
    one = dt.timedelta(days=1)
    folds: list[Fold] = []
    first = start
    while first + train + test - one <= end:
        train_end = first + train - one
        folds.append(Fold(len(folds), first, train_end, train_end + one, train_end + test))
        first += step
    if not folds:
        days = (end - start).days + 1
        raise ValueError(
            f"walk_forward: train_days + test_days ({wf.train_days} + {wf.test_days}) exceed "
            f"the {days} days of data {start}..{end}"
        )
    return folds


__all__ = ["Fold", "make_folds"]
