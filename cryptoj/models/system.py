"""Messages of the runtime, the supervision tree and the shutdown path."""

from __future__ import annotations

from cryptoj.models.base import Message

#: Exit codes of the process (also listed in the README); a ``stop_system`` carries one.
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_EMERGENCY = 3


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


class DrainOrders(Message, frozen=True, kw_only=True):
    """Shutdown → Execution: the orderly stop has begun. Send nothing new (new orders are
    rejected, split parents send no more children); with ``cancel`` cancel every open order;
    then report :class:`OrdersDrained` to ``reply_to`` once no order it waits for is open.

    ``cancel`` False (``stop_open_orders: keep``) waits only for orders whose outcome is still
    unknown (PENDING); open orders stay at the venue for the next start to reconcile."""

    reason: str
    cancel: bool
    reply_to: str


class OrdersDrained(Message, frozen=True, kw_only=True):
    """Execution → Shutdown: nothing the orderly stop waits for is open any more; every fill
    the venue reported for the drained orders was sent to the portfolio before this."""

    orders: int  # orders that were still open when the drain began


class Tick(Message, frozen=True, kw_only=True):
    """A timer message an actor schedules to itself; ``kind`` says which timer."""

    kind: str


class Ping(Message, frozen=True, kw_only=True):
    """Barrier probe used by the threaded runtime to wait for quiescence."""


class ReconcileNow(Message, frozen=True, kw_only=True):
    """Ask the receiver to reconcile its state with its upstream source of truth now."""
