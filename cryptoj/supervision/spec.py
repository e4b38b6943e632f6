"""Child and supervisor specifications (OTP semantics), validated at construction."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptoj.contract import Actor


class Restart(enum.StrEnum):
    """When a child is restarted: always, only after an abnormal exit, or never."""

    PERMANENT = "permanent"
    TRANSIENT = "transient"
    TEMPORARY = "temporary"


class Strategy(enum.StrEnum):
    """Which children a supervisor restarts when one of them exits abnormally."""

    ONE_FOR_ONE = "one_for_one"  # only the one that died
    ONE_FOR_ALL = "one_for_all"  # all of them
    REST_FOR_ONE = "rest_for_one"  # the one that died and every child started after it


@dataclass(frozen=True)
class Backoff:
    """Restart delay ``min(max_ns, min_ns·2^n)·(1 ± jitter)``; n resets after ``reset_after_ns``."""

    min_ns: int
    max_ns: int
    jitter: float = 0.2
    reset_after_ns: int = 60_000_000_000

    def __post_init__(self) -> None:
        if not 0 < self.min_ns <= self.max_ns:
            raise ValueError(
                f"backoff: expected 0 < min_ns <= max_ns, got {self.min_ns}, {self.max_ns}"
            )
        if not 0 <= self.jitter < 1:
            raise ValueError(f"backoff: expected jitter in [0, 1), got {self.jitter}")

    def delay_ns(self, attempt: int, unit_random: float) -> int:
        """Delay before restart number ``attempt`` (0-based); ``unit_random`` is in [0, 1)."""
        base = min(self.max_ns, self.min_ns * (2 ** min(attempt, 62)))
        return int(base * (1 + self.jitter * (2 * unit_random - 1)))


@dataclass(frozen=True)
class ChildSpec:
    """How to start one child and when to restart it."""

    name: str
    start: Callable[[], Actor]
    restart: Restart = Restart.PERMANENT
    stop_timeout_s: float = 5.0
    backoff: Backoff | None = None

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").isalnum():
            raise ValueError(
                f"child spec: expected a name of letters, digits and _, got {self.name!r}"
            )
        if self.stop_timeout_s <= 0:
            raise ValueError(f"child spec {self.name}: stop_timeout_s must be > 0")


@dataclass(frozen=True)
class SupervisorSpec:
    """A supervisor: its strategy, restart intensity and ordered children."""

    name: str
    strategy: Strategy
    max_restarts: int
    period_ns: int
    children: tuple[ChildSpec | SupervisorSpec, ...] = field(default_factory=tuple)
    restart: Restart = Restart.PERMANENT
    stop_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if self.max_restarts < 0 or self.period_ns <= 0:
            raise ValueError(f"supervisor {self.name}: expected max_restarts >= 0 and period > 0")
        names = [c.name for c in self.children]
        if len(set(names)) != len(names):
            raise ValueError(f"supervisor {self.name}: duplicate child names in {names}")

    def child(self, name: str) -> ChildSpec | SupervisorSpec:
        """The spec of child ``name``."""
        for c in self.children:
            if c.name == name:
                return c
        raise KeyError(name)

    def walk(self) -> list[ChildSpec | SupervisorSpec]:
        """This spec and every spec below it, parents before children."""
        out: list[ChildSpec | SupervisorSpec] = [self]
        for c in self.children:
            out.extend(c.walk() if isinstance(c, SupervisorSpec) else [c])
        return out
