"""ShutdownActor: the guardian outside the tree; owns the emergency programme and ends the run.

It **decides** (levels, products, targets, deadline) and tells the PortfolioActor an immutable
:class:`~cryptoj.models.unwind.UnwindPlan`; the portfolio executes it with check-and-reserve.
The logic lives in :mod:`cryptoj.unwind` (``response``, ``monitors``, ``priority``).

* Triggers → response level (``shutdown.triggers``): risk level changes (CAUTION, REDUCING,
  systemic REDUCING, HALTED), feed status (stale, failed), the portfolio's
  ``MonitorReport`` (equity drawdown, error rate, latency), operator commands
  (``OperatorCommand``: flatten, hold, resume; ``ShutdownRequested``: stop, also on SIGTERM),
  supervision escalations.
* Actions: NO_ENTRIES and up stop new entries; CANCEL_ORDERS and up cancel open orders;
  REDUCE unwinds to ``unwind.reduce_target_exposure``, FLATTEN to nothing, highest risk
  contribution first (a systemic trigger: most correlated first), with a deadline; STOP stops
  the process in order: the ExecutionActor drains (``DrainOrders``: nothing new goes out, open
  orders are cancelled or kept per ``stop_open_orders``, fills of what was in flight are
  booked) and reports ``OrdersDrained``, or ``stop_wait_s`` passes; then the runtime stops.
* Recovery: after a market-caused programme, back to NORMAL by itself once the conditions hold
  for ``recovery.cooldown_s``, re-entering with ``recovery.reentry_steps`` size multipliers;
  operator and fault causes wait for ``resume`` (:mod:`cryptoj.unwind.response`).
* End of a replay (``FeedFinished``): halt the portfolio (no new orders; an open rebalance
  transaction rolls back), cancel open orders, reconcile, stop with exit code 0. Once halted
  for the end of the run (or an orderly stop), a restarted portfolio's ``PlanRequest`` is
  answered with the same ``Halt``.
* Escalation (the root supervisor failed): cancel every open order through its **own** venue
  client (the ExecutionActor is gone), optionally flatten through it
  (:mod:`cryptoj.unwind.emergency`), journal it and stop the process with exit code 3.

State that must survive a restart is journalled (``programme_state`` events): a held
programme (operator) is restored on start, and after an emergency exit the restarted daemon
starts held at NO_ENTRIES unless ``recovery.after_emergency`` is ``resume``.
"""

from __future__ import annotations

import json
from decimal import Decimal

from cryptoj.config import Config
from cryptoj.contract import Actor, Context
from cryptoj.journal import Journal
from cryptoj.models.market import FeedFinished, FeedStatus
from cryptoj.models.orders import CancelAllOrders
from cryptoj.models.risk import RiskLevel, RiskLevelChanged
from cryptoj.models.system import (
    EXIT_EMERGENCY,
    EXIT_OK,
    ChildExited,
    DrainOrders,
    EscalatedFailure,
    Halt,
    OrdersDrained,
    ReconcileNow,
    ShutdownRequested,
    Tick,
)
from cryptoj.models.unwind import (
    MonitorReport,
    OperatorCommand,
    PlanRequest,
    ResponseLevel,
    UnwindComplete,
    UnwindPlan,
    UnwindSliceReport,
    UnwindTarget,
)
from cryptoj.unwind.emergency import BookVenue, EmergencyUnwinder
from cryptoj.unwind.monitors import Monitors
from cryptoj.unwind.priority import Exposure, plan_targets
from cryptoj.unwind.response import Programme, Transition, level_for
from cryptoj.unwind.slicing import SliceRules
from cryptoj.venues.base import ExecutionVenue

S = 1_000_000_000
L = ResponseLevel
EMERGENCY_TICK = Tick(kind="emergency")
STOP_TICK = Tick(kind="stop_wait")
#: FeedStatus states that set a feed condition: ``stale`` → feed_stale, the others → feed_failed
#: (``healthy`` and ``recovered`` clear them).
FEED_BAD = frozenset({"stale", "degraded", "failed", "down"})


class ShutdownActor(Actor):
    """Decides the emergency programme and how the process ends."""

    kind = "shutdown"

    def __init__(
        self,
        venue: ExecutionVenue,
        journal_path: str,
        *,
        stop_on_feed_end: bool = True,
        cfg: Config | None = None,
        portfolio: str = "portfolio",
        execution: str = "execution",
    ) -> None:
        self.venue = venue
        self.journal_path = journal_path
        self.stop_on_feed_end = stop_on_feed_end
        self.cfg = (cfg or Config()).shutdown
        self.portfolio = portfolio
        self.execution = execution
        self.journal: Journal | None = None
        self.programme = Programme(recovery=self.cfg.recovery)
        self.monitors = Monitors(self.cfg.monitor)
        self.risk_level = RiskLevel.NORMAL
        self.feed: dict[str, str] = {}  # product → bad state (stale, degraded, ...)
        self.report: MonitorReport | None = None
        self.plan: UnwindPlan | None = None
        self.plans = 0
        self.slices = 0
        self.completed: set[str] = set()
        self.ramp: tuple[int, int] | None = None  # (ramp id, step index) while re-entering
        self.ramps = 0
        self.stop_after: str | None = None  # flatten, then stop with this reason
        self.stopping = False
        self.stop_pending: tuple[int, str] | None = None  # (exit code, reason) while draining
        self.halt: Halt | None = None  # sent to the portfolio; re-sent to a restarted one
        self.emergency_reason: str | None = None
        self.cancelled_in_emergency: list[str] = []
        self.unwinder: EmergencyUnwinder | None = None
        self._quiet = False

    # -- lifecycle ------------------------------------------------------------------------

    def on_start(self, ctx: Context) -> None:
        """Open the journal; restore a held programme or hold after an emergency exit."""
        journal = self.journal = Journal(self.journal_path)
        self._quiet = True  # nobody else runs yet: restore the state, send nothing
        state: dict[str, str] | None = None
        after_emergency = False
        for e in journal.events():
            if e["kind"] == "emergency":
                after_emergency = True
            elif e["kind"] == "programme_state":
                state, after_emergency = json.loads(e["detail"]), False
        if after_emergency and self.cfg.recovery.after_emergency == "hold":
            why = "restarted after an emergency stop (exit code 3): held until resume"
            self._apply(
                ctx, self.programme.breach(ctx.now(), "restart_after_emergency", L.NO_ENTRIES, why)
            )
        elif state is not None and state.get("held") == "true" and state["level"] != "NORMAL":
            level = ResponseLevel(state["level"])
            why = f"restored held programme ({state.get('trigger', '')}) after a restart"
            self._apply(ctx, self.programme.breach(ctx.now(), "operator", level, why, held=True))
        self._quiet = False

    def on_stop(self, ctx: Context) -> None:
        """Close the journal."""
        if self.journal is not None:
            self.journal.close()

    def _mark(self, ctx: Context, kind: str, detail: str) -> None:
        if self.journal is not None:
            self.journal.record_event(ctx.now(), "shutdown", kind, detail)

    # -- the programme ----------------------------------------------------------------------

    def _apply(self, ctx: Context, t: Transition | None) -> None:
        """Journal a transition and carry out the new level's actions."""
        if t is None:
            return
        self._mark(ctx, "response_level", f"{t.previous} -> {t.level}: {t.trigger}: {t.reason}")
        self._mark(ctx, "programme_state", json.dumps(self.programme.describe(), sort_keys=True))
        if t.level is L.STOP:
            return
        if self._quiet:
            return  # on start: the plan goes out when the portfolio asks (PlanRequest)
        if t.level.rank >= L.CANCEL_ORDERS.rank > t.previous.rank:
            ctx.send(self.execution, CancelAllOrders(ts=ctx.now(), reason=f"{t.level}: {t.reason}"))
        if t.level is L.NORMAL:
            if t.recovered:
                self._mark(ctx, "recovered", t.reason)
            self.monitors.reset()  # the drawdown peak survives the recovery
            self.ramps += 1
            self.ramp = (self.ramps, 0)
            self._schedule_ramp(ctx)
        else:
            self.ramp = None
        self._send_plan(ctx, t.trigger, t.reason, t.priority)

    def _multiplier(self) -> float:
        steps = self.cfg.recovery.reentry_steps
        if self.ramp is None or self.ramp[1] >= len(steps):
            return 1.0
        return float(steps[self.ramp[1]])

    def _schedule_ramp(self, ctx: Context) -> None:
        if self.ramp is not None and self.ramp[1] < len(self.cfg.recovery.reentry_steps):
            delay = int(self.cfg.recovery.reentry_step_s * S)
            ctx.schedule(delay, Tick(kind=f"reentry:{self.ramp[0]}"))

    def _send_plan(self, ctx: Context, trigger: str, reason: str, priority: str | None) -> None:
        level, u = self.programme.level, self.cfg.unwind
        targets: tuple[UnwindTarget, ...] = ()
        deadline = None
        if level in (L.REDUCE, L.FLATTEN):
            found = plan_targets(
                self._exposures(),
                self.report.equity if self.report else Decimal(0),
                target_exposure=0.0 if level is L.FLATTEN else u.reduce_target_exposure,
                mode=priority or u.priority,
            )
            targets = tuple(
                UnwindTarget(product=t.product, quantity=t.quantity, priority=t.priority)
                for t in found
            )
            deadline = ctx.now() + int(u.max_duration_s * S)  # market time in a replay
            old = self.plan
            if old is not None and old.deadline_ns is not None and old.level.rank >= L.REDUCE.rank:
                deadline = min(deadline, old.deadline_ns)  # an escalation never extends it
        self.plans += 1
        self.plan = UnwindPlan(
            ts=ctx.now(),
            plan_id=f"plan-{self.plans}",
            level=level,
            trigger=trigger,
            reason=reason,
            entries_allowed=level is L.NORMAL,
            size_multiplier=self._multiplier() if level is L.NORMAL else 1.0,
            reduce_only=level.rank >= L.REDUCE.rank,
            targets=targets,
            flatten_rest=level is L.FLATTEN,
            deadline_ns=deadline,
            mode=u.mode,
            depth_fraction=u.depth_fraction,
            max_participation=u.max_participation,
            max_concurrent=u.max_concurrent,
            adverse_move_bps=u.adverse_move_bps,
            volatile_multiplier=u.volatile_multiplier,
            coarse_depth_multiple=u.coarse_depth_multiple,
        )
        ctx.send(self.portfolio, self.plan)

    def _exposures(self) -> list[Exposure]:
        r = self.report
        if r is None:
            return []
        vol, corr = dict(r.volatility), dict(r.correlation)
        return [
            Exposure(
                p.product, p.quantity, p.mid, vol.get(p.product, 0.0), corr.get(p.product, 0.0)
            )
            for p in r.positions
        ]

    def _condition(
        self, ctx: Context, name: str, on: bool, reason: str, *, priority: str | None = None
    ) -> None:
        """Set or clear the persistent condition ``name`` (a ``shutdown.triggers`` field)."""
        level = level_for(self.cfg.triggers, name) if on else None
        self._apply(
            ctx, self.programme.condition(ctx.now(), name, level, reason, priority=priority)
        )

    def _check_recovery(self, ctx: Context, ts: int) -> None:
        if not self.programme.recovering:  # nothing to recover from: no market check to make
            self.programme.recovery_check(ts, True)
            return
        why = []
        if self.risk_level is not RiskLevel.NORMAL:
            why.append(f"risk level {self.risk_level}")
        if self.feed:
            why.append("feed " + ", ".join(f"{p} {s}" for p, s in sorted(self.feed.items())))
        r = self.report
        if r is not None and r.volatile:
            why.append("volatile regime: " + ", ".join(r.volatile))
        cap = self.cfg.recovery.max_volatility
        if r is not None and cap > 0:
            high = [p for p, v in r.volatility if v > cap]
            if high:
                why.append(f"volatility above {cap:g}: " + ", ".join(high))
        self._apply(ctx, self.programme.recovery_check(ts, not why, "; ".join(why)))

    # -- triggers ---------------------------------------------------------------------------

    def _handle_risk_level_changed(self, msg: RiskLevelChanged, ctx: Context) -> None:
        if msg.level == RiskLevel.HALTED:
            self._mark(ctx, "risk_halted", msg.reason)
        self._sync_risk(ctx, msg.level, msg.reason)

    def _sync_risk(self, ctx: Context, level: RiskLevel, reason: str) -> None:
        """Set or clear the risk conditions for ``level`` (from a RiskLevelChanged, or from
        the level of the RiskParameters the portfolio reports: a restarted RiskActor starts
        again at NORMAL without announcing it)."""
        self.risk_level = level
        rank = level.rank
        systemic = "systemic" in reason
        reducing = rank >= RiskLevel.REDUCING.rank
        self._condition(ctx, "risk_halted", rank >= RiskLevel.HALTED.rank, reason)
        self._condition(ctx, "systemic", reducing and systemic, reason, priority="correlation")
        self._condition(ctx, "risk_reducing", reducing and not systemic, reason)
        self._condition(ctx, "risk_caution", rank >= RiskLevel.CAUTION.rank, reason)

    def _handle_feed_status(self, msg: FeedStatus, ctx: Context) -> None:
        for product in msg.products:
            if msg.state in FEED_BAD:
                self.feed[product] = msg.state
            else:
                self.feed.pop(product, None)
        states = set(self.feed.values())
        why = f"feed {msg.state}: {', '.join(msg.products)} {msg.reason}".strip()
        self._condition(ctx, "feed_stale", "stale" in states, why)
        self._condition(ctx, "feed_failed", bool(states - {"stale"}), why)

    def _handle_monitor_report(self, msg: MonitorReport, ctx: Context) -> None:
        self.report = msg
        if msg.risk_level is not None and msg.risk_level != self.risk_level:
            self._sync_risk(ctx, RiskLevel(msg.risk_level), f"risk parameters: {msg.risk_level}")
        for sig in self.monitors.observe(msg):
            level = level_for(self.cfg.triggers, sig.name)
            if sig.kind == "breach":
                self._mark(ctx, "monitor_breach", f"{sig.name}: {sig.reason}")
                self._apply(ctx, self.programme.breach(msg.ts, sig.name, level, sig.reason))
            else:
                t = self.programme.condition(
                    msg.ts, sig.name, level if sig.active else None, sig.reason
                )
                self._apply(ctx, t)
        self._check_recovery(ctx, msg.ts)

    def _handle_operator_command(self, msg: OperatorCommand, ctx: Context) -> None:
        self._mark(ctx, "operator", f"{msg.command}: {msg.reason}".rstrip(": "))
        if msg.command == "shutdown":
            self._stop(ctx, EXIT_OK, f"operator: {msg.reason}" if msg.reason else "operator")
            return
        if msg.command not in ("flatten", "hold", "resume"):
            return  # journalled above; the guardian never crashes on bad input
        if msg.command == "flatten" and msg.stop_after:
            self.stop_after = f"operator flatten then stop: {msg.reason}".rstrip(": ")
        t = self.programme.operator(ctx.now(), msg.command, msg.reason, L.FLATTEN)
        self._apply(ctx, t)
        if msg.command == "flatten" and t is None and self.plan is not None:
            self._send_plan(ctx, "operator", self.programme.reason, None)  # re-plan: flatten now

    def _handle_shutdown_requested(self, msg: ShutdownRequested, ctx: Context) -> None:
        self._mark(ctx, "shutdown_requested", msg.reason)
        self._stop(ctx, msg.exit_code, msg.reason)

    # -- unwind progress --------------------------------------------------------------------

    def _handle_unwind_slice_report(self, msg: UnwindSliceReport, ctx: Context) -> None:
        self.slices += 1

    def _handle_unwind_complete(self, msg: UnwindComplete, ctx: Context) -> None:
        if msg.plan_id in self.completed:
            return  # reported again by a restarted portfolio
        self.completed.add(msg.plan_id)
        self._mark(ctx, "unwind_complete", f"{msg.plan_id} after {msg.slices} slices")
        if (
            self.stop_after is not None
            and self.plan is not None
            and msg.plan_id == self.plan.plan_id
        ):
            self._stop(ctx, EXIT_OK, self.stop_after)

    def _handle_plan_request(self, msg: PlanRequest, ctx: Context) -> None:
        if self.halt is not None:  # the run is ending: a restarted portfolio stays halted
            ctx.send(self.portfolio, self.halt)
            return
        if self.plan is not None:
            ctx.send(self.portfolio, self.plan)
        elif self.programme.level is not L.NORMAL:
            self._send_plan(ctx, self.programme.trigger, self.programme.reason, None)

    def _handle_tick(self, msg: Tick, ctx: Context) -> None:
        if msg.kind == EMERGENCY_TICK.kind:
            self._emergency_step(ctx)
            return
        if msg.kind == STOP_TICK.kind:
            self._finish_stop(ctx, f"still draining after {self.cfg.stop_wait_s:g}s")
            return
        if self.ramp is None or msg.kind != f"reentry:{self.ramp[0]}":
            return  # a stale timer of an earlier ramp
        self.ramp = (self.ramp[0], self.ramp[1] + 1)
        if self.programme.level is L.NORMAL:
            self._send_plan(
                ctx, "reentry", f"re-entry step: size multiplier {self._multiplier():g}", None
            )
            self._schedule_ramp(ctx)

    # -- ending the run ---------------------------------------------------------------------

    def _handle_feed_finished(self, msg: FeedFinished, ctx: Context) -> None:
        self._mark(ctx, "feed_finished", f"{msg.events} events")
        if self.stop_on_feed_end:
            self.halt = Halt(ts=ctx.now(), reason="end of replay")
            ctx.send(self.portfolio, self.halt)  # no new orders; open transactions roll back
            ctx.send(self.execution, CancelAllOrders(ts=ctx.now(), reason="end of replay"))
            ctx.send(self.portfolio, ReconcileNow(ts=ctx.now()))
            ctx.stop_system(EXIT_OK, "replay finished")

    def _stop(self, ctx: Context, exit_code: int, reason: str) -> None:
        """The orderly stop: no new orders, the ExecutionActor drains (open orders cancelled or
        kept, what is in flight booked), then the runtime flushes the journal and the trace and
        stops the actors in reverse start order. The drain is bounded by ``stop_wait_s``."""
        if self.stopping:
            return
        self.stopping = True
        previous = self.programme.level
        self.programme.level = L.STOP
        self._mark(ctx, "response_level", f"{previous} -> STOP: stop: {reason}")
        self.halt = Halt(ts=ctx.now(), reason=reason)
        ctx.send(self.portfolio, self.halt)
        cancel = self.cfg.stop_open_orders == "cancel"
        ctx.send(
            self.execution,
            DrainOrders(ts=ctx.now(), reason=reason, cancel=cancel, reply_to=ctx.name),
        )
        self._mark(
            ctx,
            "stopping",
            f"exit {exit_code}: {reason}; open orders {self.cfg.stop_open_orders}; "
            f"waiting up to {self.cfg.stop_wait_s:g}s for the orders in flight",
        )
        self.stop_pending = (exit_code, reason)
        ctx.schedule(int(self.cfg.stop_wait_s * S), STOP_TICK)

    def _handle_orders_drained(self, msg: OrdersDrained, ctx: Context) -> None:
        self._finish_stop(ctx, f"drained ({msg.orders} orders were open)")

    def _finish_stop(self, ctx: Context, how: str) -> None:
        if self.stop_pending is None:
            return
        exit_code, reason = self.stop_pending
        self.stop_pending = None
        self._mark(ctx, "stopped", f"exit {exit_code}: {reason}; {how}")
        ctx.stop_system(exit_code, reason)

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
        venue = self.venue
        if self.cfg.triggers.escalation == "flatten" and isinstance(venue, BookVenue):
            assert self.journal is not None
            u = self.cfg.unwind
            priorities = {
                t.product: t.priority
                for t in plan_targets(
                    self._exposures(), Decimal(0), target_exposure=0.0, mode=u.priority
                )
            }
            self.unwinder = EmergencyUnwinder(
                venue,
                self.journal,
                rules=SliceRules(mode=u.mode, depth_fraction=u.depth_fraction, depth_levels=1),
                deadline_ns=ctx.now() + int(u.emergency_deadline_s * S),
                priorities=priorities,
                max_concurrent=u.max_concurrent,
            )
            adopted = self.unwinder.adopt(ctx.now())
            products = self.unwinder.start(ctx.now())
            self._mark(
                ctx,
                "emergency_flatten",
                f"through the own venue client: {', '.join(products) or 'nothing held'}; "
                f"{adopted} venue fills adopted into the journal",
            )
            self._emergency_step(ctx)
            return
        ctx.stop_system(EXIT_EMERGENCY, reason)

    def _emergency_step(self, ctx: Context) -> None:
        unwinder = self.unwinder
        if unwinder is None or self.emergency_reason is None:
            return
        if unwinder.step(ctx.now()):
            self._mark(ctx, "emergency_flattened", f"{unwinder.orders} orders")
            ctx.stop_system(EXIT_EMERGENCY, self.emergency_reason)
            return
        ctx.schedule(int(self.cfg.unwind.emergency_step_s * S), EMERGENCY_TICK)
