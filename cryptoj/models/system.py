"""Messages of the runtime, the supervision tree and the shutdown path."""

from __future__ import annotations

from cryptoj.models.base import Message


class ChildExited(Message, frozen=True, kw_only=True):
    """Runtime → supervisor: a child stopped. ``abnormal`` is False for a requested stop."""

    name: str
    generation: int
    abnormal: bool
    reason: str


class ChildStarted(Message, frozen=True, kw_only=True):
    """Runtime → trace: a child (re)started with this generation number."""

    name: str
    generation: int


class StartChild(Message, frozen=True, kw_only=True):
    """Supervisor → itself: (re)start a child now (sent through a timer for backoff)."""

    name: str


class RestartChild(Message, frozen=True, kw_only=True):
    """Operator → supervisor: restart this running child as if it had failed (its strategy
    decides which siblings restart with it; the restart counts towards the intensity)."""

    name: str
    reason: str


class EscalatedFailure(Message, frozen=True, kw_only=True):
    """A supervisor exceeded its restart intensity; its parent (or ShutdownActor) decides."""

    supervisor: str
    reason: str


class ShutdownRequested(Message, frozen=True, kw_only=True):
    """Operator or signal asked for an orderly stop."""

    reason: str
    exit_code: int = 0


class Halt(Message, frozen=True, kw_only=True):
    """Shutdown → Portfolio: refuse every new order from now on."""

    reason: str


class Tick(Message, frozen=True, kw_only=True):
    """A timer message an actor schedules to itself; ``kind`` says which timer."""

    kind: str


class Ping(Message, frozen=True, kw_only=True):
    """Barrier probe used by the threaded runtime to wait for quiescence."""


class ReconcileNow(Message, frozen=True, kw_only=True):
    """Ask the receiver to reconcile its state with its upstream source of truth now."""
