"""The rebalance transaction as a pure state machine: the documented paths, then Hypothesis
driving closes, rejections, timeouts, newer risk versions, aborts and crashes (rebuild from the
journal rows + recover) in any order while the invariants hold."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from cryptoj.models.orders import OrderType, Side
from cryptoj.portfolio.transaction import Effects, Leg, LegState, Transaction, TxnState

D = Decimal


def _leg(n: int, side: Side, product: str = "BTC-USD", qty: str = "1") -> Leg:
    return Leg(
        client_order_id=f"o{n}",
        seq=n,
        product=product,
        side=side,
        quantity=D(qty),
        order_type=OrderType.MARKET,
        limit_price=None,
        reserved_cash=D(100) if side == Side.BUY else D(0),
        reserved_base=D(qty) if side == Side.SELL else D(0),
        visible=D(10),
        beyond_depth=False,
    )


def _txn(sells: int = 1, buys: int = 1, policy: str = "keep") -> Transaction:
    legs = [_leg(i + 1, Side.SELL, f"S{i}-USD") for i in range(sells)]
    legs += [_leg(sells + i + 1, Side.BUY, f"B{i}-USD") for i in range(buys)]
    return Transaction(txn_id="t1", version=5, legs=legs, created_ns=0, policy=policy)


def _ids(legs: list[Leg]) -> list[str]:
    return [g.client_order_id for g in legs]


def test_sells_go_first_and_the_buys_follow_once_every_sell_closed() -> None:
    t = _txn(sells=2, buys=1)
    fx = t.start()
    assert t.state == TxnState.SELLING and _ids(fx.send) == ["o1", "o2"]
    assert t.on_close("o1", "FILLED", D(1)).send == []
    fx = t.on_close("o2", "EXPIRED", D("0.5"))  # partly filled IOC: done, not failed
    assert t.state == TxnState.BUYING and _ids(fx.send) == ["o3"]
    fx = t.on_close("o3", "FILLED", D(1))
    assert fx.done and t.state == TxnState.COMMITTED
    assert [g.state for g in t.legs] == [LegState.FILLED, LegState.PARTIAL, LegState.FILLED]
    assert t.problems() == []


def test_a_rejected_sell_cancels_the_buys_and_keeps_what_filled() -> None:
    t = _txn(sells=2, buys=2)
    t.start()
    t.on_close("o1", "FILLED", D(1))
    fx = t.on_close("o2", "REJECTED", D(0))
    assert fx.done and t.state == TxnState.ROLLED_BACK
    assert _ids(fx.release) == ["o3", "o4"] and fx.send == [] and fx.compensate == []
    assert "o2" in t.cause and "REJECTED" in t.cause
    assert [g.state for g in t.legs][2:] == [LegState.CANCELLED, LegState.CANCELLED]
    assert t.problems() == []


def test_a_failed_buy_cancels_the_other_outstanding_buys_and_waits_for_them() -> None:
    t = _txn(sells=0, buys=3, policy="compensate")
    assert _ids(t.start().send) == ["o1", "o2", "o3"]
    t.on_close("o1", "FILLED", D(1))
    fx = t.on_close("o2", "NOT_SENT", D(0))
    assert t.state == TxnState.ROLLING_BACK and _ids(fx.cancel) == ["o3"] and not fx.done
    fx = t.on_close("o3", "CANCELLED", D("0.25"))
    assert fx.done and t.state == TxnState.ROLLED_BACK
    # compensate: the buys that filled are sold back, sells (none here) kept
    assert fx.compensate == [("B0-USD", D(1)), ("B2-USD", D("0.25"))]


def test_a_newer_risk_version_supersedes_unsent_legs_but_never_resizes_sent_ones() -> None:
    t = _txn(sells=1, buys=1)
    t.start()
    assert t.supersede(5) == Effects()  # the same version: nothing
    fx = t.supersede(6)
    assert t.state == TxnState.SUPERSEDING and _ids(fx.release) == ["o2"] and fx.cancel == []
    fx = t.on_close("o1", "FILLED", D(1))
    assert fx.done and t.state == TxnState.SUPERSEDED and fx.send == []
    # once every leg is out, a newer version changes nothing (no mix: all legs are v5's)
    u = _txn(sells=0, buys=1)
    u.start()
    assert u.supersede(6) == Effects() and u.state == TxnState.BUYING


def test_a_timeout_cancels_the_leg_and_rolls_back() -> None:
    t = _txn(sells=1, buys=1)
    t.start()
    fx = t.on_timeout("o1")
    assert t.state == TxnState.ROLLING_BACK and _ids(fx.cancel) == ["o1"]
    assert _ids(fx.release) == ["o2"]
    fx = t.on_close("o1", "CANCELLED", D("0.3"))
    assert fx.done and t.legs[0].state == LegState.PARTIAL
    assert t.legs[0].outcome == "CANCELLED after timeout"


def test_a_restart_rebuilds_the_transaction_from_its_rows_and_rolls_it_back() -> None:
    t = _txn(sells=1, buys=1)
    t.start()
    rows = [g.row(t.txn_id, 1) for g in t.legs]
    again = Transaction.from_rows(t.row(1), rows)
    assert again == t
    fx = again.recover()
    assert again.state == TxnState.ROLLING_BACK and _ids(fx.cancel) == ["o1"]
    assert _ids(fx.release) == ["o2"]
    assert again.on_close("o1", "FILLED", D(1)).done and again.state == TxnState.ROLLED_BACK


def test_bad_transactions_are_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="sells must come before buys"):
        Transaction("t", 1, [_leg(1, Side.BUY), _leg(2, Side.SELL)], 0)
    with pytest.raises(ValueError, match="has no legs"):
        Transaction("t", 1, [], 0)
    with pytest.raises(ValueError, match="rollback policy"):
        Transaction("t", 1, [_leg(1, Side.BUY)], 0, policy="pray")


class TransactionMachine(RuleBasedStateMachine):
    """Random events against one transaction; a model of what was sent, released, cancelled."""

    def __init__(self) -> None:
        super().__init__()
        self.txn: Transaction | None = None
        self.sent: list[str] = []
        self.released: list[str] = []
        self.cancelled: list[str] = []
        self.compensated: list[tuple[str, Decimal]] = []
        self.superseded = False
        self.ended = False

    def _take(self, fx: Effects) -> None:
        assert self.txn is not None
        if self.ended:
            assert fx.send == [] and fx.release == [] and fx.cancel == [] and not fx.done
        self.sent += _ids(fx.send)
        self.released += _ids(fx.release)
        self.cancelled += _ids(fx.cancel)
        self.compensated += fx.compensate
        for g in fx.send:  # no buy goes out while a sell is still open
            if g.side == Side.BUY:
                assert all(s.state.terminal for s in self.txn.legs if s.side == Side.SELL)
        self.ended = self.ended or fx.done
        assert fx.done == (self.txn.state.terminal and fx.done)

    @rule(
        sells=st.integers(0, 3),
        buys=st.integers(0, 3),
        policy=st.sampled_from(["keep", "compensate"]),
    )
    @precondition(lambda self: self.txn is None)
    def create(self, sells: int, buys: int, policy: str) -> None:
        if sells + buys == 0:
            sells = 1
        self.txn = _txn(sells, buys, policy)
        self._take(self.txn.start())

    def _sent_leg(self, data: st.DataObject) -> Leg | None:
        assert self.txn is not None
        out = self.txn.of(LegState.SENT)
        return data.draw(st.sampled_from(out)) if out else None

    @precondition(lambda self: self.txn is not None)
    @rule(
        data=st.data(),
        status=st.sampled_from(["FILLED", "EXPIRED", "CANCELLED", "REJECTED"]),
        share=st.sampled_from(["0", "0.5", "1"]),
    )
    def close(self, data: st.DataObject, status: str, share: str) -> None:
        g = self._sent_leg(data)
        if g is None:
            return
        filled = D(0) if status == "REJECTED" else g.quantity * D(share)
        assert self.txn is not None
        self._take(self.txn.on_close(g.client_order_id, status, filled))

    @precondition(lambda self: self.txn is not None)
    @rule(data=st.data())
    def timeout(self, data: st.DataObject) -> None:
        g = self._sent_leg(data)
        if g is not None and self.txn is not None:
            self._take(self.txn.on_timeout(g.client_order_id))

    @precondition(lambda self: self.txn is not None)
    @rule(version=st.integers(4, 8))
    def new_risk_version(self, version: int) -> None:
        assert self.txn is not None
        before = self.txn.state
        fx = self.txn.supersede(version)
        if self.txn.state != before:
            self.superseded = True
        self._take(fx)

    @precondition(lambda self: self.txn is not None)
    @rule()
    def abort(self) -> None:
        assert self.txn is not None
        self._take(self.txn.abort("unwind takes over"))

    @precondition(lambda self: self.txn is not None)
    @rule()
    def crash_and_restart(self) -> None:
        assert self.txn is not None
        rows = [g.row(self.txn.txn_id, 9) for g in self.txn.legs]
        self.txn = Transaction.from_rows(self.txn.row(9), rows)
        self._take(self.txn.recover())

    @invariant()
    def consistent(self) -> None:
        t = self.txn
        if t is None:
            return
        assert t.problems() == []
        assert len(self.sent) == len(set(self.sent))
        assert len(self.released) == len(set(self.released))
        assert not set(self.sent) & set(self.released)  # a sent leg is never "released"
        assert set(self.cancelled) <= set(self.sent)
        for g in t.legs:
            if g.client_order_id in self.released:
                assert g.state == LegState.CANCELLED
            if g.state == LegState.CANCELLED:
                assert g.client_order_id in self.released
        if t.state.terminal:
            assert self.ended
            assert set(self.sent) | set(self.released) == {g.client_order_id for g in t.legs}
        if t.state == TxnState.COMMITTED:
            assert not self.released and not any(g.failed for g in t.legs)
        if t.state == TxnState.SUPERSEDED:
            assert self.superseded
        buys = {(g.product, g.filled) for g in t.legs if g.side == Side.BUY and g.filled}
        if t.policy == "compensate" and t.state == TxnState.ROLLED_BACK:
            assert set(self.compensated) == buys  # every filled buy is sold back, nothing else
        else:
            assert self.compensated == []


TransactionMachine.TestCase.settings = settings(
    max_examples=300, stateful_step_count=25, deadline=None, database=None
)
test_transaction_state_machine = TransactionMachine.TestCase
