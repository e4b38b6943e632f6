"""The graduated response: the level, what raised it, and the automatic recovery. Pure.

Levels (:class:`~cryptoj.models.unwind.ResponseLevel`) only go **up** on a trigger: the level
becomes the highest any trigger asked for, at once. Triggers are of two kinds:

* *conditions* that persist until cleared (risk level REDUCING/HALTED, a stale or failed
  feed, latency above its threshold): :meth:`Programme.condition`;
* *breaches*, one-off events (a drawdown or error-rate breach, an operator command):
  :meth:`Programme.breach`.

A level goes **down** only to NORMAL, in one step, and only in two ways:

* **automatically** (:meth:`Programme.recovery_check`), when the programme is not *held*, no
  condition is active, the caller's market check passes (risk level NORMAL, no product in the
  VOLATILE regime, volatility under ``recovery.max_volatility`` when set) and no breach
  happened, continuously for ``recovery.cooldown_s``. Any breach or failing check restarts the
  cool-down;
* by the operator's ``resume`` (:meth:`Programme.operator`).

*Held* programmes never recover by themselves: those raised by the operator (``flatten``,
``hold``), by a fault (the error-rate monitor) or started held after an emergency exit.
STOP is final.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptoj.config import RecoveryConfig, TriggerLevels
from cryptoj.models.unwind import ResponseLevel

NORMAL = ResponseLevel.NORMAL
#: Triggers whose programme waits for the operator instead of recovering by itself.
HELD_TRIGGERS = frozenset({"operator", "error_rate", "restart_after_emergency"})


@dataclass(frozen=True)
class Transition:
    """The level moved (or a recovery happened)."""

    ts: int
    previous: ResponseLevel
    level: ResponseLevel
    trigger: str
    reason: str
    recovered: bool = False
    priority: str | None = None  # an ordering the plan must use ("correlation": systemic)


def level_for(triggers: TriggerLevels, name: str) -> ResponseLevel:
    """The configured level of trigger ``name`` (a field of ``shutdown.triggers``)."""
    return ResponseLevel.parse(str(getattr(triggers, name)))


@dataclass
class Programme:
    """State of the emergency programme (module docstring)."""

    recovery: RecoveryConfig = field(default_factory=RecoveryConfig)
    level: ResponseLevel = NORMAL
    trigger: str = ""
    reason: str = ""
    held: bool = False
    conditions: dict[str, ResponseLevel] = field(default_factory=dict)
    calm_since: int | None = None
    recoveries: int = 0
    blocked_by: str = ""  # why the last recovery check did not pass

    def _raise(
        self,
        ts: int,
        trigger: str,
        level: ResponseLevel,
        reason: str,
        *,
        held: bool = False,
        priority: str | None = None,
    ) -> Transition | None:
        self.calm_since = None
        if held or trigger in HELD_TRIGGERS:
            self.held = True
        if level.rank <= self.level.rank:
            return None
        previous = self.level
        self.level, self.trigger, self.reason = level, trigger, reason
        return Transition(ts, previous, level, trigger, reason, priority=priority)

    def condition(
        self,
        ts: int,
        name: str,
        level: ResponseLevel | None,
        reason: str = "",
        *,
        priority: str | None = None,
    ) -> Transition | None:
        """Set (``level`` above NORMAL) or clear (None / NORMAL) the persistent condition
        ``name``. Only a new condition, or one whose level rose, raises the programme."""
        if level is None or level is NORMAL:
            self.conditions.pop(name, None)
            return None
        before = self.conditions.get(name)
        self.conditions[name] = level
        if before is not None and before.rank >= level.rank:
            return None
        return self._raise(ts, name, level, reason, priority=priority)

    def breach(
        self, ts: int, name: str, level: ResponseLevel, reason: str, *, held: bool = False
    ) -> Transition | None:
        """A one-off breach: raises to ``level`` (if higher) and restarts any cool-down."""
        if level is NORMAL:
            self.calm_since = None
            return None
        return self._raise(ts, name, level, reason, held=held)

    @property
    def recovering(self) -> bool:
        """Whether :meth:`recovery_check` can lead anywhere (a level above NORMAL, not STOP):
        otherwise the caller's market check is not needed."""
        return self.level not in (NORMAL, ResponseLevel.STOP)

    def recovery_check(self, ts: int, market_ok: bool, why: str = "") -> Transition | None:
        """Advance the automatic recovery with the caller's market check; maybe → NORMAL."""
        if not self.recovering:
            self.calm_since = None
            return None
        blocker = ""
        if self.held or not self.recovery.automatic:
            blocker = "held for the operator (resume)"
        elif self.conditions:
            blocker = "active: " + ", ".join(sorted(self.conditions))
        elif not market_ok:
            blocker = why or "market conditions"
        if blocker:
            self.blocked_by, self.calm_since = blocker, None
            return None
        if self.calm_since is None:
            self.calm_since = ts
        held_s = (ts - self.calm_since) / 1e9
        if held_s < self.recovery.cooldown_s:
            self.blocked_by = f"cool-down {held_s:.0f} of {self.recovery.cooldown_s:.0f} s"
            return None
        previous = self.level
        reason = (
            f"recovered: conditions held for {held_s:.0f} s (feed healthy, volatility under "
            f"threshold, risk NORMAL, no new breaches) after {self.trigger}"
        )
        self._to_normal(reason)
        self.recoveries += 1
        return Transition(ts, previous, NORMAL, "recovery", reason, recovered=True)

    def _to_normal(self, reason: str) -> None:
        self.level, self.trigger, self.reason = NORMAL, "", reason
        self.held, self.calm_since, self.blocked_by = False, None, ""

    def operator(
        self, ts: int, command: str, reason: str, flatten_level: ResponseLevel
    ) -> Transition | None:
        """``flatten`` (raise to ``flatten_level``, held), ``hold`` (freeze; NORMAL → NO_ENTRIES)
        or ``resume`` (back to NORMAL now, un-held). Unknown commands raise ValueError."""
        why = f"operator {command}" + (f": {reason}" if reason else "")
        if command == "flatten":
            return self._raise(ts, "operator", flatten_level, why, held=True)
        if command == "hold":
            return self._raise(ts, "operator", ResponseLevel.NO_ENTRIES, why, held=True)
        if command == "resume":
            if self.level is ResponseLevel.STOP:
                return None
            previous = self.level
            self._to_normal(why)
            return Transition(ts, previous, NORMAL, "operator", why)
        raise ValueError(f"unknown operator command {command!r}")

    def describe(self) -> dict[str, str]:
        """The state as text (for status and the journal)."""
        return {
            "level": str(self.level),
            "trigger": self.trigger,
            "held": str(self.held).lower(),
            "conditions": ",".join(sorted(self.conditions)),
            "recoveries": str(self.recoveries),
            "blocked_by": self.blocked_by,
        }
