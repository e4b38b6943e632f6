"""A rebalance as a transaction: legs planned under one risk version, sells before buys,
and a rollback policy. A pure state machine; the PortfolioActor does the I/O it asks for.

Lifecycle
---------
A :class:`Transaction` is made with every leg ``PLANNED`` and its funds already reserved
(sells hold their base units, buys their cash: *reserved up front*). Each method answers with
:class:`Effects`: legs to send, orders to cancel, reservations to release, journal steps, and
whether the transaction ended. The actor journals the effects, then carries them out.

=============  ==================================================================================
state          meaning
=============  ==================================================================================
PLANNED        journalled with its legs; nothing sent yet
SELLING        the sell legs are out; the buys wait, reserved
BUYING         every sell closed without failing; the buy legs are out
ROLLING_BACK   a leg failed (rejected, unknown at execution, expired without a fill, timed out),
               the actor restarted mid-transaction, or something took precedence (the emergency
               programme, a stop loss, a halt, a reversed signal): waiting for the sent legs
SUPERSEDING    a newer risk version arrived while legs were still unsent: waiting for the sent legs
COMMITTED      terminal: every leg closed, none failed (partly filled IOC legs count as done)
ROLLED_BACK    terminal, after ROLLING_BACK
SUPERSEDED     terminal, after SUPERSEDING; the actor plans again under the newest version
=============  ==================================================================================

Leg states: PLANNED → SENT → FILLED | PARTIAL | FAILED, or PLANNED → CANCELLED (never sent).

**One risk version per plan.** Every leg is sized under the version the plan was made with. A
newer version arriving while a leg is still PLANNED supersedes the transaction
(:meth:`Transaction.supersede`): the unsent legs are cancelled and their reservations released,
the sent ones run to their close, and a fresh plan is made from the books as they are then. Sent
legs are never re-sized, so no order mixes two versions. Once every leg is sent a newer version
changes nothing, unless it forbids what is still open (the actor then calls :meth:`abort`).

Rollback policy
---------------
On a failure (any of the ROLLING_BACK causes above):

1. legs still PLANNED are cancelled, their reservations released;
2. outstanding (SENT) legs are cancelled at the venue (``CancelOrder``); what they filled
   before the cancel stays filled;
3. completed legs are **kept** (``portfolio.rollback: keep``, the default): sells go first, so
   every state a transaction passes through holds no more exposure than its start or its
   target, and each leg was sized within its cap; the next plan, under the newest risk
   version, trims whatever the failure left away from the targets. With
   ``portfolio.rollback: compensate`` the buys that filled are **compensated** instead: the
   actor sells back what they bought in a ``compensation`` transaction (sells only, never
   itself compensated), so a failed transaction adds no exposure; completed sells are kept
   under both policies (buying back would add the risk the plan removed).

The journal (``rebalance_txns``, ``rebalance_legs``, ``rebalance_steps``) is written before each
effect is carried out, so after a crash it shows the last consistent state; on restart
:meth:`Transaction.recover` rolls any open transaction back (unsent legs are cancelled — the
rebuilt books never held their reservations — and sent legs are cancelled and reconciled).
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from cryptoj.models.orders import OrderType, Side

ZERO = Decimal(0)
POLICIES = ("keep", "compensate")
KINDS = ("rebalance", "compensation")


class LegState(enum.StrEnum):
    """State of one leg."""

    PLANNED = "PLANNED"  # reserved, not sent
    SENT = "SENT"  # intent journalled, order sent
    FILLED = "FILLED"  # closed, filled in full
    PARTIAL = "PARTIAL"  # closed, partly filled
    FAILED = "FAILED"  # closed with nothing filled
    CANCELLED = "CANCELLED"  # never sent; reservation released

    @property
    def terminal(self) -> bool:
        """True when the leg can no longer change."""
        return self not in (LegState.PLANNED, LegState.SENT)


class TxnState(enum.StrEnum):
    """State of a transaction (module docstring)."""

    PLANNED = "PLANNED"
    SELLING = "SELLING"
    BUYING = "BUYING"
    ROLLING_BACK = "ROLLING_BACK"
    SUPERSEDING = "SUPERSEDING"
    COMMITTED = "COMMITTED"
    ROLLED_BACK = "ROLLED_BACK"
    SUPERSEDED = "SUPERSEDED"

    @property
    def terminal(self) -> bool:
        """True for COMMITTED, ROLLED_BACK and SUPERSEDED."""
        return self in (TxnState.COMMITTED, TxnState.ROLLED_BACK, TxnState.SUPERSEDED)


_FINAL = {
    TxnState.ROLLING_BACK: TxnState.ROLLED_BACK,
    TxnState.SUPERSEDING: TxnState.SUPERSEDED,
}


@dataclass
class Leg:
    """One order of a transaction and the funds reserved for it."""

    client_order_id: str
    seq: int
    product: str
    side: Side
    quantity: Decimal
    order_type: OrderType
    limit_price: Decimal | None
    reserved_cash: Decimal
    reserved_base: Decimal
    visible: Decimal
    beyond_depth: bool
    reason: str = ""
    state: LegState = LegState.PLANNED
    filled: Decimal = ZERO
    outcome: str = ""  # the venue status it closed with, or why it was cancelled
    cancel_requested: bool = False
    timed_out: bool = False

    @property
    def failed(self) -> bool:
        """True for a leg that failed (nothing filled, or timed out)."""
        return self.state == LegState.FAILED or (self.timed_out and self.state.terminal)

    def row(self, txn_id: str, ts: int) -> dict[str, Any]:
        """The ``rebalance_legs`` row (Decimals as text)."""
        return {
            "client_order_id": self.client_order_id,
            "txn_id": txn_id,
            "seq": self.seq,
            "product": self.product,
            "side": str(self.side),
            "order_type": str(self.order_type),
            "quantity": str(self.quantity),
            "limit_price": None if self.limit_price is None else str(self.limit_price),
            "reserved_cash": str(self.reserved_cash),
            "reserved_base": str(self.reserved_base),
            "visible": str(self.visible),
            "beyond_depth": int(self.beyond_depth),
            "reason": self.reason,
            "state": str(self.state),
            "filled": str(self.filled),
            "outcome": self.outcome,
            "cancel_requested": int(self.cancel_requested),
            "timed_out": int(self.timed_out),
            "updated_ts": ts,
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Leg:
        """A leg as journalled."""
        limit = row["limit_price"]
        return cls(
            client_order_id=str(row["client_order_id"]),
            seq=int(row["seq"]),
            product=str(row["product"]),
            side=Side(row["side"]),
            quantity=Decimal(row["quantity"]),
            order_type=OrderType(row["order_type"]),
            limit_price=None if limit is None else Decimal(limit),
            reserved_cash=Decimal(row["reserved_cash"]),
            reserved_base=Decimal(row["reserved_base"]),
            visible=Decimal(row["visible"]),
            beyond_depth=bool(row["beyond_depth"]),
            reason=str(row["reason"]),
            state=LegState(row["state"]),
            filled=Decimal(row["filled"]),
            outcome=str(row["outcome"]),
            cancel_requested=bool(row["cancel_requested"]),
            timed_out=bool(row["timed_out"]),
        )


@dataclass
class Effects:
    """What the actor must journal and do after one call (in this order: journal the steps and
    the rows, release, cancel, send)."""

    steps: list[tuple[str, str]] = field(default_factory=list)  # (step, JSON detail)
    release: list[Leg] = field(default_factory=list)  # unsent legs dropped
    cancel: list[Leg] = field(default_factory=list)  # outstanding legs to cancel at the venue
    send: list[Leg] = field(default_factory=list)  # legs to send now (already marked SENT)
    done: bool = False  # the transaction reached a terminal state in this call
    compensate: list[tuple[str, Decimal]] = field(default_factory=list)  # (product, quantity)

    def merge(self, other: Effects) -> Effects:
        """Both effects, ``self``'s first."""
        self.steps += other.steps
        self.release += other.release
        self.cancel += other.cancel
        self.send += other.send
        self.done = self.done or other.done
        self.compensate += other.compensate
        return self


def _detail(**kw: Any) -> str:
    return json.dumps(kw, sort_keys=True, default=str)


@dataclass
class Transaction:
    """See the module docstring."""

    txn_id: str
    version: int
    legs: list[Leg]
    created_ns: int
    policy: str = "keep"
    kind: str = "rebalance"
    parent: str | None = None
    state: TxnState = TxnState.PLANNED
    cause: str = ""

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"rollback policy: expected one of {POLICIES}, got {self.policy!r}")
        if self.kind not in KINDS:
            raise ValueError(f"transaction kind: expected one of {KINDS}, got {self.kind!r}")
        if not self.legs:
            raise ValueError(f"transaction {self.txn_id} has no legs")
        sides = [g.side for g in self.legs]
        if sides != sorted(sides, key=lambda s: s != Side.SELL):
            raise ValueError(f"transaction {self.txn_id}: sells must come before buys")

    # -- views ----------------------------------------------------------------------------

    def leg(self, client_order_id: str) -> Leg | None:
        """The leg with this client order id, if it is one of ours."""
        for g in self.legs:
            if g.client_order_id == client_order_id:
                return g
        return None

    def of(self, state: LegState, side: Side | None = None) -> list[Leg]:
        """Legs in ``state`` (of ``side`` when given)."""
        return [g for g in self.legs if g.state == state and (side is None or g.side == side)]

    @property
    def products(self) -> set[str]:
        """Products with a leg that is not terminal."""
        return {g.product for g in self.legs if not g.state.terminal}

    def unsent(self) -> list[Leg]:
        """Legs still PLANNED (their funds are reserved)."""
        return self.of(LegState.PLANNED)

    def row(self, ts: int) -> dict[str, Any]:
        """The ``rebalance_txns`` row."""
        return {
            "txn_id": self.txn_id,
            "kind": self.kind,
            "parent": self.parent,
            "params_version": self.version,
            "policy": self.policy,
            "state": str(self.state),
            "cause": self.cause,
            "created_ts": self.created_ns,
            "updated_ts": ts,
        }

    @classmethod
    def from_rows(cls, row: dict[str, Any], legs: list[dict[str, Any]]) -> Transaction:
        """A transaction as journalled."""
        return cls(
            txn_id=str(row["txn_id"]),
            version=int(row["params_version"]),
            legs=[Leg.from_row(r) for r in sorted(legs, key=lambda r: int(r["seq"]))],
            created_ns=int(row["created_ts"]),
            policy=str(row["policy"]),
            kind=str(row["kind"]),
            parent=None if row["parent"] is None else str(row["parent"]),
            state=TxnState(row["state"]),
            cause=str(row["cause"]),
        )

    # -- events ---------------------------------------------------------------------------

    def start(self) -> Effects:
        """Send the sells (or, without sells, the buys)."""
        if self.state != TxnState.PLANNED:
            raise ValueError(f"transaction {self.txn_id} already started ({self.state})")
        sells = self.of(LegState.PLANNED, Side.SELL)
        if not sells:
            return self._buy_phase()
        self.state = TxnState.SELLING
        for g in sells:
            g.state = LegState.SENT
        fx = Effects(send=sells)
        fx.steps.append(("sells_sent", _detail(legs=[g.client_order_id for g in sells])))
        return fx

    def on_close(self, client_order_id: str, status: str, filled: Decimal) -> Effects:
        """A sent leg closed at the venue with ``status`` after filling ``filled``."""
        g = self.leg(client_order_id)
        if g is None or g.state != LegState.SENT:
            return Effects()  # not ours, never sent (a stale report), or already closed
        g.filled = filled
        if filled >= g.quantity:
            g.state = LegState.FILLED
        elif filled > 0:
            g.state = LegState.PARTIAL
        else:
            g.state = LegState.FAILED
        g.outcome = status + (" after timeout" if g.timed_out else "")
        fx = Effects()
        fx.steps.append(
            (
                "leg_closed",
                _detail(leg=g.client_order_id, state=g.state, status=status, filled=filled),
            )
        )
        return fx.merge(self._advance())

    def on_timeout(self, client_order_id: str) -> Effects:
        """The leg's deadline passed: cancel it and roll the transaction back."""
        g = self.leg(client_order_id)
        if g is None or g.state != LegState.SENT or self.state.terminal:
            return Effects()
        g.timed_out = True
        if self.state in _FINAL:  # already winding down: just cancel this leg too
            fx = Effects(steps=[("leg_timed_out", _detail(leg=client_order_id))])
            if not g.cancel_requested:
                g.cancel_requested = True
                fx.cancel.append(g)
            return fx
        return self._rollback(f"leg {client_order_id} ({g.product} {g.side}) timed out")

    def supersede(self, version: int) -> Effects:
        """A newer risk version: drop the unsent legs and end once the sent ones closed."""
        if version == self.version or self.state not in (TxnState.SELLING, TxnState.PLANNED):
            return Effects()
        if not self.unsent():
            return Effects()
        self.state = TxnState.SUPERSEDING
        self.cause = f"risk v{version} replaced v{self.version} before every leg was sent"
        fx = self._drop_unsent(self.cause)
        fx.steps.insert(0, ("superseding", _detail(version=version, cause=self.cause)))
        return fx.merge(self._finish_if_idle())

    def abort(self, cause: str) -> Effects:
        """Roll back now (module docstring, *Rollback policy*)."""
        if self.state.terminal or self.state == TxnState.ROLLING_BACK:
            return Effects()
        return self._rollback(cause)

    def recover(self) -> Effects:
        """After a restart: roll back (unsent legs cancelled, sent legs cancelled at the venue)."""
        if self.state.terminal:
            return Effects()
        self.state = TxnState.ROLLING_BACK
        self.cause = "the portfolio restarted mid-transaction"
        fx = self._drop_unsent(self.cause)
        fx.steps.insert(0, ("recovered", _detail(cause=self.cause)))
        for g in self.of(LegState.SENT):
            g.cancel_requested = True
            fx.cancel.append(g)
        return fx.merge(self._finish_if_idle())

    # -- internals ------------------------------------------------------------------------

    def _advance(self) -> Effects:
        if self.state in (TxnState.ROLLING_BACK, TxnState.SUPERSEDING):
            return self._finish_if_idle()
        phase = Side.SELL if self.state == TxnState.SELLING else Side.BUY
        legs = [g for g in self.legs if g.side == phase and g.state != LegState.PLANNED]
        failed = [g for g in legs if g.failed]
        if failed:
            g = failed[0]
            return self._rollback(f"leg {g.client_order_id} ({g.product} {g.side}) {g.outcome}")
        if any(g.state == LegState.SENT for g in legs):
            return Effects()
        if self.state == TxnState.SELLING:
            return self._buy_phase()
        return self._end(TxnState.COMMITTED)

    def _buy_phase(self) -> Effects:
        buys = self.of(LegState.PLANNED, Side.BUY)
        if not buys:
            return self._end(TxnState.COMMITTED)
        self.state = TxnState.BUYING
        for g in buys:
            g.state = LegState.SENT
        fx = Effects(send=buys)
        fx.steps.append(("buys_sent", _detail(legs=[g.client_order_id for g in buys])))
        return fx

    def _rollback(self, cause: str) -> Effects:
        self.state = TxnState.ROLLING_BACK
        self.cause = cause
        fx = self._drop_unsent(cause)
        fx.steps.insert(0, ("rolling_back", _detail(cause=cause)))
        for g in self.of(LegState.SENT):
            if not g.cancel_requested:
                g.cancel_requested = True
                fx.cancel.append(g)
        return fx.merge(self._finish_if_idle())

    def _drop_unsent(self, why: str) -> Effects:
        fx = Effects()
        for g in self.unsent():
            g.state = LegState.CANCELLED
            g.outcome = why
            fx.release.append(g)
        if fx.release:
            fx.steps.append(
                ("legs_cancelled", _detail(legs=[g.client_order_id for g in fx.release]))
            )
        return fx

    def _finish_if_idle(self) -> Effects:
        if self.of(LegState.SENT) or self.state not in _FINAL:
            return Effects()
        return self._end(_FINAL[self.state])

    def _end(self, state: TxnState) -> Effects:
        self.state = state
        fx = Effects(done=True)
        compensating = self.policy == "compensate" and self.kind == "rebalance"
        if state == TxnState.ROLLED_BACK and compensating:
            fx.compensate = [
                (g.product, g.filled) for g in self.legs if g.side == Side.BUY and g.filled > 0
            ]
        kept = [g.client_order_id for g in self.legs if g.filled > 0]
        fx.steps.append(
            (
                str(state).lower(),
                _detail(
                    cause=self.cause,
                    kept=kept,
                    compensate=[[p, q] for p, q in fx.compensate],
                ),
            )
        )
        return fx

    def problems(self) -> list[str]:
        """Broken invariants of this transaction (empty when it is consistent)."""
        out: list[str] = []
        name = f"transaction {self.txn_id} ({self.state})"
        if self.state.terminal and any(not g.state.terminal for g in self.legs):
            out.append(f"{name}: ended with legs still open")
        buys_out = any(
            g.side == Side.BUY and g.state not in (LegState.PLANNED, LegState.CANCELLED)
            for g in self.legs
        )
        sells_open = any(g.side == Side.SELL and not g.state.terminal for g in self.legs)
        if buys_out and sells_open:
            out.append(f"{name}: a buy was sent before every sell closed")
        for g in self.legs:
            if g.filled > g.quantity:
                out.append(f"{name}: leg {g.client_order_id} filled {g.filled} > {g.quantity}")
            if g.state in (LegState.PLANNED, LegState.CANCELLED) and g.filled != 0:
                out.append(f"{name}: unsent leg {g.client_order_id} has fills")
            if g.state == LegState.FILLED and g.filled != g.quantity:
                out.append(f"{name}: leg {g.client_order_id} FILLED at {g.filled}")
        if self.state == TxnState.COMMITTED and any(g.failed for g in self.legs):
            out.append(f"{name}: committed with a failed leg")
        return out
