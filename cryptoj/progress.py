"""Progress bars for long commands (``replay``, ``report``), drawn with rich on stderr.

Only on a terminal: the commands build a :class:`Progress` only when stderr is a terminal and
``--json`` is off, and pass None otherwise (nothing is drawn, nothing is written). The bar
shows the replayed timestamps out of the total, the market date reached, the elapsed time
and an estimate of what is left.
"""

from __future__ import annotations

import datetime as dt
import sys
from types import TracebackType
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def wanted(json_output: bool, stream: TextIO | None = None) -> bool:
    """True when a bar should be drawn: ``stream`` (stderr) is a terminal and no ``--json``."""
    s = sys.stderr if stream is None else stream
    return not json_output and s.isatty()


class Bar:
    """One rich progress bar (a context manager); :meth:`update` is cheap to call often."""

    def __init__(self, what: str, total: int, *, console: Console | None = None) -> None:
        """``what`` labels the bar; ``total`` is the number of steps (timestamps, charts)."""
        self.console = console or Console(stderr=True)
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[note]}"),
            TimeElapsedColumn(),
            TextColumn("left"),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
            refresh_per_second=8,
        )
        self._task: TaskID = self._progress.add_task(what, total=max(1, total), note="")
        self.total = total

    def __enter__(self) -> Bar:
        self._progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def update(self, done: int, note: str = "") -> None:
        """``done`` steps of ``total`` are complete; ``note`` is shown beside the count."""
        self._progress.update(self._task, completed=done, note=note)

    def finish(self, note: str = "") -> None:
        """Mark the bar complete."""
        self._progress.update(self._task, completed=max(1, self.total), note=note)


def day(ns: int | None) -> str:
    """``YYYY-MM-DD`` (UTC) of a market timestamp, for a bar's note."""
    if not ns:
        return ""
    return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).strftime("%Y-%m-%d")


__all__ = ["Bar", "day", "wanted"]
