"""ShutdownActor: the guardian outside the supervision tree; ends the run, orderly or not.

* End of a replay (``FeedFinished``): cancel open orders, reconcile, stop with exit code 0.
* Operator / signal (``ShutdownRequested``): halt new orders, cancel open orders, stop.
* Escalation (the root supervisor exceeded its restart intensity, or died): halt, cancel every
  open order through its **own** venue client (the ExecutionActor may be the broken part),
  journal a marker and stop the process with exit code 3.
* ``RiskLevelChanged`` to HALTED: cancel open orders (new ones are already refused).
"""

from __future__ import annotations

from cryptoj.actors.base import Actor, Context
from cryptoj.journal import Journal
from cryptoj.models.market import FeedFinished
from cryptoj.models.orders import CancelAllOrders
from cryptoj.models.risk import RiskLevel, RiskLevelChanged
from cryptoj.models.system import (
    ChildExited,
    EscalatedFailure,
    Halt,
    ReconcileNow,
    ShutdownRequested,
)
from cryptoj.runtime.common import EXIT_EMERGENCY, EXIT_OK
from cryptoj.venues.base import ExecutionVenue


class ShutdownActor(Actor):
    """Decides how the process ends."""

    kind = "shutdown"

    def __init__(
        self, venue: ExecutionVenue, journal_path: str, *, stop_on_feed_end: bool = True
    ) -> None:
        self.venue = venue
        self.journal_path = journal_path
        self.stop_on_feed_end = stop_on_feed_end
        self.journal: Journal | None = None
        self.emergency_reason: str | None = None
        self.cancelled_in_emergency: list[str] = []

    def on_start(self, ctx: Context) -> None:
        """Open the journal (for shutdown markers)."""
        self.journal = Journal(self.journal_path)

    def on_stop(self, ctx: Context) -> None:
        """Close the journal."""
        if self.journal is not None:
            self.journal.close()

    def _mark(self, ctx: Context, kind: str, detail: str) -> None:
        if self.journal is not None:
            self.journal.record_event(ctx.now(), "shutdown", kind, detail)

    def _handle_feed_finished(self, msg: FeedFinished, ctx: Context) -> None:
        self._mark(ctx, "feed_finished", f"{msg.events} events")
        if self.stop_on_feed_end:
            ctx.send("execution", CancelAllOrders(ts=ctx.now(), reason="end of replay"))
            ctx.send("portfolio", ReconcileNow(ts=ctx.now()))
            ctx.stop_system(EXIT_OK, "replay finished")

    def _handle_shutdown_requested(self, msg: ShutdownRequested, ctx: Context) -> None:
        self._mark(ctx, "shutdown_requested", msg.reason)
        ctx.send("portfolio", Halt(ts=ctx.now(), reason=msg.reason))
        ctx.send("execution", CancelAllOrders(ts=ctx.now(), reason=msg.reason))
        ctx.stop_system(msg.exit_code, msg.reason)

    def _handle_risk_level_changed(self, msg: RiskLevelChanged, ctx: Context) -> None:
        if msg.level == RiskLevel.HALTED:
            self._mark(ctx, "risk_halted", msg.reason)
            ctx.send(
                "execution", CancelAllOrders(ts=ctx.now(), reason=f"risk HALTED: {msg.reason}")
            )

    def _handle_child_exited(self, msg: ChildExited, ctx: Context) -> None:
        if msg.abnormal:
            self._emergency(ctx, f"{msg.name} failed: {msg.reason}")

    def _handle_escalated_failure(self, msg: EscalatedFailure, ctx: Context) -> None:
        self._emergency(ctx, f"{msg.supervisor}: {msg.reason}")

    def _emergency(self, ctx: Context, reason: str) -> None:
        if self.emergency_reason is not None:
            return
        self.emergency_reason = reason
        self._mark(ctx, "emergency", reason)
        self.cancelled_in_emergency = self.venue.cancel_all(ctx.now())
        self._mark(
            ctx, "emergency_cancelled", f"{len(self.cancelled_in_emergency)} open orders cancelled"
        )
        ctx.stop_system(EXIT_EMERGENCY, reason)
