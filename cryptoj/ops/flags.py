"""Feature flags: declared in the config, changed on a running daemon, every change journalled.

Flags gate new behaviour during a gradual rollout (a new strategy at a small allocation, order
splitting on or off). Their names and kinds come from the ``flags:`` section of the config; at
run time only a declared flag can change, and only to a value of the same kind (on/off stays
on/off, a number stays a number). Every change is journalled (``events``, kind
``flag_changed``, detail JSON ``{"flag", "old", "new", "by", "reason", "wall"}``) and then
sent as an immutable :class:`FlagsChanged` with *all* current values to each running actor
that has a ``_handle_flags_changed`` handler, so the change is in the message trace too.
Actors read their initial values from ``cfg.flags``; an actor restarted after a change gets
the current :class:`FlagsChanged` right after its start.

A change lasts until the process stops: the config is the value at start. To keep a value,
write it into the config.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptoj.config.ops import FlagError, FlagValue, check_value, parse_flags
from cryptoj.journal import Journal
from cryptoj.models.base import Message


class FlagsChanged(Message, frozen=True, kw_only=True):
    """Ops → actors: every feature flag now in force (``version`` counts the changes)."""

    version: int
    flags: tuple[tuple[str, FlagValue], ...]
    changed: tuple[str, ...] = ()
    reason: str = ""

    def get(self, name: str, default: FlagValue) -> FlagValue:
        """The value of ``name`` (``default`` when it is not declared)."""
        return dict(self.flags).get(name, default)


@dataclass(frozen=True)
class FlagChange:
    """One journalled change."""

    flag: str
    old: FlagValue
    new: FlagValue
    by: str
    reason: str
    ts: int  # market clock (the journal's time axis), ns
    wall: float  # wall clock, seconds since the epoch


class FlagStore:
    """The current flag values: thread-safe, validating, journalling."""

    def __init__(
        self,
        initial: Mapping[str, Any],
        *,
        journal_path: str | None,
        clock: Callable[[], int],
        on_change: Callable[[FlagsChanged], object] | None = None,
    ) -> None:
        self._initial = parse_flags(initial)
        self._values = dict(self._initial)
        self._journal_path = journal_path
        self._clock = clock
        self._lock = threading.Lock()
        self.on_change = on_change
        self.version = 0
        self.history: list[FlagChange] = []

    def values(self) -> dict[str, FlagValue]:
        """Name → current value."""
        with self._lock:
            return dict(self._values)

    def message(self, changed: tuple[str, ...] = (), reason: str = "") -> FlagsChanged:
        """The current values as a message."""
        with self._lock:
            return FlagsChanged(
                ts=self._clock(),
                version=self.version,
                flags=tuple(sorted(self._values.items())),
                changed=changed,
                reason=reason,
            )

    def describe(self) -> dict[str, dict[str, Any]]:
        """Name → value, config value, and the last change (for status and metrics)."""
        with self._lock:
            last = {c.flag: c for c in self.history}
            return {
                name: {
                    "value": value,
                    "config": self._initial[name],
                    "source": "control" if name in last else "config",
                    "changed_by": last[name].by if name in last else None,
                    "changed_at": last[name].wall if name in last else None,
                    "reason": last[name].reason if name in last else None,
                }
                for name, value in sorted(self._values.items())
            }

    def set(self, changes: Mapping[str, Any], *, by: str, reason: str) -> list[FlagChange]:
        """Apply ``changes`` (all or nothing), journal them, then notify; return what changed."""
        if not changes:
            raise FlagError("no flag given")
        with self._lock:
            problems, checked = [], {}
            for name, value in changes.items():
                if name not in self._values:
                    known = ", ".join(sorted(self._values)) or "none are declared"
                    problems.append(f"flags.{name}: unknown flag (known: {known})")
                    continue
                try:
                    checked[name] = check_value(name, value, self._values[name])
                except FlagError as e:
                    problems.append(str(e))
            if problems:
                raise FlagError("; ".join(problems))
            ts, wall = self._clock(), time.time()
            done = [
                FlagChange(name, self._values[name], new, by, reason, ts, wall)
                for name, new in sorted(checked.items())
                if new != self._values[name] or type(new) is not type(self._values[name])
            ]
            if not done:
                return []
            self._journal(done)
            for change in done:
                self._values[change.flag] = change.new
            self.version += 1
            self.history.extend(done)
        if self.on_change is not None:
            self.on_change(self.message(tuple(c.flag for c in done), reason))
        return done

    def journal_loaded(self) -> None:
        """Journal the values in force at start (``flags_loaded``), when any flag is declared."""
        if self._journal_path is None or not self._initial:
            return
        journal = Journal(self._journal_path)
        try:
            detail = json.dumps(self._initial, sort_keys=True)
            journal.record_event(self._clock(), "ops", "flags_loaded", detail)
        finally:
            journal.close()

    def _journal(self, done: list[FlagChange]) -> None:
        if self._journal_path is None:
            return
        journal = Journal(self._journal_path)
        try:
            with journal.transaction() as db:
                for c in done:
                    detail = {
                        "flag": c.flag,
                        "old": c.old,
                        "new": c.new,
                        "by": c.by,
                        "reason": c.reason,
                        "wall": round(c.wall, 3),
                    }
                    db.execute(
                        "INSERT INTO events (ts, actor, kind, detail) VALUES (?, ?, ?, ?)",
                        (c.ts, "ops", "flag_changed", json.dumps(detail, sort_keys=True)),
                    )
        finally:
            journal.close()


__all__ = ["FlagChange", "FlagError", "FlagStore", "FlagsChanged"]
