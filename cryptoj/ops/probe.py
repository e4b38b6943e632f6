"""Snapshots of actor state for status and metrics, taken in the actor's own thread.

The HTTP thread never reads an actor's attributes. It asks the actor (pykka ``ask`` with a
timeout) with an immutable :class:`StatusRequest`; :class:`~cryptoj.ops.runtime.OpsRuntime`
answers it *inside the actor's thread*, between two messages, and hands back an immutable
reply. An actor that defines ``_handle_status_request(msg, ctx)`` returning a reply is asked
that; for the others the extractor registered here for its ``kind`` builds the reply (in the
actor's thread as well). A status request is never traced, counted or able to crash an actor.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import msgspec

from cryptoj.models.base import Message


class StatusRequest(Message, frozen=True, kw_only=True):
    """Ops → actor (ask only): reply with an immutable snapshot of your state."""

    request_id: str = ""


class PositionStatus(msgspec.Struct, frozen=True, kw_only=True):
    """One position marked at the latest mid."""

    product: str
    quantity: Decimal
    average_price: Decimal
    mark_price: Decimal
    value: Decimal  # quantity × mark, quote currency
    weight: float  # value / equity


class PortfolioStatus(Message, frozen=True, kw_only=True):
    """The PortfolioActor's books."""

    equity: Decimal
    cash: Decimal
    reserved_cash: Decimal
    positions: tuple[PositionStatus, ...]
    open_orders: tuple[str, ...]  # client order ids with a reservation
    targets: tuple[tuple[str, float], ...]
    halted: bool
    risk_version: int | None
    risk_level: str | None
    caps: tuple[tuple[str, float], ...]


class RiskStatus(Message, frozen=True, kw_only=True):
    """The RiskActor's view: level, daily loss, volatility and correlation per product."""

    level: str
    version: int
    start_of_day_equity: float | None  # the UTC day's reference equity (daily loss from it)
    peak_equity: float | None  # the day's peak (intraday drawdown is from it)
    volatility: tuple[tuple[str, float], ...]  # EWMA σ of log returns per bar
    volatility_excess: tuple[tuple[str, float], ...]
    correlation: tuple[tuple[str, float], ...]  # average EWMA correlation with the others
    average_correlation: float | None
    regimes: tuple[tuple[str, str], ...] = ()  # product → regime, when the actor detects them
    entries_allowed: bool = True  # False: only exposure-reducing orders
    high_water_mark: float | None = None  # equity high-water mark (risk.max_drawdown from it)
    drawdown_halted: bool = False  # risk.max_drawdown reached: HALTED until an operator resumes


class ProgrammeStatus(Message, frozen=True, kw_only=True):
    """The ShutdownActor's emergency programme: its response level and why."""

    level: str  # NORMAL, NO_ENTRIES, CANCEL_ORDERS, REDUCE, FLATTEN or STOP
    trigger: str  # what raised it (operator, drawdown, risk_halted, ...); "" at NORMAL
    reason: str
    held: bool  # waits for the operator's resume
    conditions: tuple[str, ...]  # the conditions still active
    blocked_by: str  # why it has not recovered yet
    recoveries: int
    stopping: bool


class ActorStatus(Message, frozen=True, kw_only=True):
    """Any other actor: a few named figures as text."""

    kind: str
    figures: tuple[tuple[str, str], ...] = ()


Extractor = Callable[[Any, int], Message]


def portfolio_status(actor: Any, now: int) -> PortfolioStatus:
    """Snapshot of a :class:`~cryptoj.actors.portfolio.PortfolioActor` (run in its thread)."""
    snap = actor.snapshot(now)
    equity = snap.equity
    positions = tuple(
        PositionStatus(
            product=p.product,
            quantity=p.quantity,
            average_price=p.average_price,
            mark_price=p.mark_price,
            value=p.quantity * p.mark_price,
            weight=float(p.quantity * p.mark_price / equity) if equity else 0.0,
        )
        for p in snap.positions
    )
    params = actor.params
    return PortfolioStatus(
        ts=now,
        equity=equity,
        cash=snap.cash,
        reserved_cash=snap.reserved_cash,
        positions=positions,
        open_orders=tuple(sorted(actor.ledger.reservations)),
        targets=tuple(sorted((p, t.weight) for p, t in actor.targets.items())),
        halted=bool(actor.halted),
        risk_version=None if params is None else params.version,
        risk_level=None if params is None else str(params.level),
        caps=() if params is None else tuple(params.max_weight),
    )


def risk_status(actor: Any, now: int) -> RiskStatus:
    """Snapshot of a :class:`~cryptoj.actors.risk.RiskActor` (run in its thread)."""
    stats, machine, corr_model = actor.stats, actor.levels, actor.corr
    products = sorted(actor.closes)
    return RiskStatus(
        ts=now,
        level=str(machine.level),
        version=int(actor.version),
        start_of_day_equity=float(machine.start_equity) or None,
        peak_equity=float(machine.peak_equity) or None,
        volatility=tuple((p, float(stats.vol(p))) for p in products),
        volatility_excess=tuple((p, float(stats.vol_excess(p))) for p in products),
        correlation=tuple((p, float(corr_model.of(p))) for p in products),
        average_correlation=float(corr_model.average_pairwise()) if len(products) > 1 else None,
        regimes=tuple(
            (p, str(r.regime)) for p, r in sorted(actor.regimes.items()) if r.regime is not None
        ),
        entries_allowed=bool(actor.entries_allowed),
        high_water_mark=None if machine.hwm is None else float(machine.hwm),
        drawdown_halted=bool(machine.drawdown_halted),
    )


def programme_status(actor: Any, now: int) -> ProgrammeStatus:
    """Snapshot of the :class:`~cryptoj.actors.shutdown.ShutdownActor`'s programme."""
    prog = actor.programme
    return ProgrammeStatus(
        ts=now,
        level=str(prog.level),
        trigger=str(prog.trigger),
        reason=str(prog.reason),
        held=bool(prog.held),
        conditions=tuple(sorted(prog.conditions)),
        blocked_by=str(prog.blocked_by),
        recoveries=int(prog.recoveries),
        stopping=bool(actor.stopping),
    )


def generic_status(actor: Any, now: int) -> ActorStatus:
    """The kind of any actor (supervisors, feed, execution, strategy, shutdown)."""
    return ActorStatus(ts=now, kind=str(getattr(actor, "kind", type(actor).__name__)))


EXTRACTORS: dict[str, Extractor] = {
    "portfolio": portfolio_status,
    "risk": risk_status,
    "shutdown": programme_status,
}


def answer(actor: Any, request: StatusRequest, ctx: Any, now: int) -> Message:
    """The reply of ``actor`` to ``request``: its own handler if it has one, else an extractor."""
    handler = getattr(actor, "_handle_status_request", None)
    if handler is not None:
        reply = handler(request, ctx)
        if isinstance(reply, Message):
            return reply
    extractor = EXTRACTORS.get(str(getattr(actor, "kind", "")), generic_status)
    return extractor(actor, now)


__all__ = [
    "EXTRACTORS",
    "ActorStatus",
    "PortfolioStatus",
    "PositionStatus",
    "ProgrammeStatus",
    "RiskStatus",
    "StatusRequest",
    "answer",
]
