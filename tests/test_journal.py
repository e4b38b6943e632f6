"""The journal's writes: atomic, idempotent where they must be, nothing lost silently."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from cryptoj.journal import Journal
from cryptoj.models.orders import Fill, Side

T0 = 1_700_000_000_000_000_000


def _txn(state: str = "SELLING") -> dict[str, Any]:
    return {
        "txn_id": "T1",
        "kind": "rebalance",
        "parent": None,
        "params_version": 3,
        "policy": "keep",
        "state": state,
        "cause": "",
        "created_ts": T0,
        "updated_ts": T0,
    }


def _leg(coid: str, seq: int) -> dict[str, Any]:
    return {
        "client_order_id": coid,
        "txn_id": "T1",
        "seq": seq,
        "product": "BTC-USD",
        "side": "SELL",
        "order_type": "MARKET",
        "quantity": "0.12345678",
        "limit_price": None,
        "reserved_cash": "0",
        "reserved_base": "0.12345678",
        "visible": "1.5",
        "beyond_depth": 0,
        "reason": "rebalance: ünïcode and 'quotes'",
        "state": "SENT",
        "filled": "0",
        "outcome": "",
        "cancel_requested": 0,
        "timed_out": 0,
        "updated_ts": T0,
    }


def _intent(coid: str) -> dict[str, Any]:
    return {
        "client_order_id": coid,
        "product": "BTC-USD",
        "side": "SELL",
        "order_type": "MARKET",
        "quantity": Decimal("0.12345678"),
        "limit_price": None,
        "reserved_cash": Decimal(0),
        "reserved_base": Decimal("0.12345678"),
        "reason": "rebalance",
        "ts": T0,
    }


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal(tmp_path / "journal.sqlite")


def test_a_transaction_step_writes_every_row_in_order_with_each_steps_state(
    journal: Journal,
) -> None:
    steps = [("planned", "PLANNED", '{"legs": 2}'), ("sells_sent", "SELLING", "{}")]
    journal.record_txn(
        _txn(),
        [_leg("c1", 1), _leg("c2", 2)],
        steps,
        ts=T0,
        intents=[_intent("c1"), _intent("c2")],
    )
    (txn,) = journal.txns()
    assert (txn["txn_id"], txn["params_version"], txn["state"]) == ("T1", 3, "SELLING")
    legs = journal.txn_legs("T1")
    assert [g["client_order_id"] for g in legs] == ["c1", "c2"]
    assert legs[0]["reason"] == "rebalance: ünïcode and 'quotes'"
    assert legs[0]["limit_price"] is None and legs[0]["beyond_depth"] == 0
    assert [(s["step"], s["state"], s["detail"]) for s in journal.txn_steps("T1")] == steps
    intents = journal.open_intents()
    assert [i["client_order_id"] for i in intents] == ["c1", "c2"]
    assert intents[0]["quantity"] == "0.12345678" and intents[0]["ts"] == T0


def test_a_step_that_closes_a_leg_closes_its_intent(journal: Journal) -> None:
    journal.record_txn(_txn(), [_leg("c1", 1)], [], ts=T0, intents=[_intent("c1")])
    journal.record_txn(
        _txn("COMMITTED"),
        [_leg("c1", 1)],
        [("leg_closed", "COMMITTED", "{}")],
        ts=T0 + 5,
        closed=("c1", "FILLED"),
    )
    (intent,) = journal.intents()
    assert (intent["status"], intent["closed_ts"]) == ("FILLED", T0 + 5)
    assert journal.open_intents() == []


def test_a_failing_row_leaves_nothing_of_its_step(journal: Journal) -> None:
    journal.record_txn(_txn(), [_leg("c1", 1)], [], ts=T0, intents=[_intent("c1")])
    with pytest.raises(sqlite3.IntegrityError):
        journal.record_txn(  # the same intent id again: the whole step is undone
            _txn("BUYING"),
            [_leg("c1", 1), _leg("c9", 2)],
            [("buys_sent", "BUYING", "{}")],
            ts=T0 + 1,
            intents=[_intent("c9"), _intent("c1")],
        )
    assert journal.txns()[0]["state"] == "SELLING"
    assert [g["client_order_id"] for g in journal.txn_legs()] == ["c1"]
    assert journal.txn_steps() == []
    assert [i["client_order_id"] for i in journal.intents()] == ["c1"]


def test_a_fill_is_journalled_once_with_its_position_change(journal: Journal) -> None:
    fill = Fill(
        ts=T0,
        fill_id="F1",
        client_order_id="c1",
        product="BTC-USD",
        side=Side.BUY,
        quantity=Decimal("0.5"),
        price=Decimal("10000"),
        fee=Decimal("5"),
        liquidity="TAKER",
    )
    assert journal.record_fill(fill, Decimal("0.5"), Decimal("10000"), Decimal("94995"))
    assert not journal.record_fill(fill, Decimal("1.0"), Decimal("10000"), Decimal("89990"))
    assert journal.fills() == [fill]
    assert journal.position_history() == [(T0, "BTC-USD", Decimal("0.5"), Decimal("94995"))]


def test_the_cancel_questions_name_only_the_ids_asked_for(journal: Journal) -> None:
    """``has_event`` and ``leg_cancel_requested`` (what ``resendable_order`` asks): a match on
    any of the ids given, never on another id, another kind or a leg not asked to cancel."""
    journal.record_event(T0, "execution", "split_cancel", "p1")
    journal.record_event(T0, "execution", "other", "c9")
    asked = {**_leg("c1", 1), "cancel_requested": 1}
    journal.record_txn(_txn(), [asked, _leg("c2", 2)], [], ts=T0)
    assert journal.has_event("split_cancel", {"c3", "p1"})
    assert not journal.has_event("split_cancel", {"c3", "c9"})
    assert journal.leg_cancel_requested({"c1", "c3"})
    assert not journal.leg_cancel_requested({"c2", "c3"})
