"""Messages: immutable, exact Decimals, self-describing JSON that round-trips."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest

from cryptoj import models
from cryptoj.models.orders import OrderStatus
from tests.stubs import quote


def test_messages_are_immutable() -> None:
    q = quote()
    with pytest.raises(AttributeError):
        q.bid = Decimal(1)  # type: ignore[misc]


def test_every_message_round_trips_through_tagged_json() -> None:
    messages = [
        quote(),
        models.SubmitOrder(
            client_order_id="cj-1",
            product="BTC-USD",
            side=models.Side.BUY,
            order_type=models.OrderType.LIMIT,
            quantity=Decimal("0.12345678"),
            limit_price=Decimal("7000.01"),
        ),
        models.Fill(
            fill_id="F1",
            client_order_id="cj-1",
            product="BTC-USD",
            side=models.Side.SELL,
            quantity=Decimal("1"),
            price=Decimal("0.1"),
            fee=Decimal("0.0006"),
            liquidity="MAKER",
        ),
        models.RiskParameters(
            version=3,
            level=models.RiskLevel.CAUTION,
            max_weight=(("BTC-USD", 0.05),),
            stop_loss=0.05,
            min_position_size=0.02,
            size_multiplier=0.5,
        ),
        models.ChildExited(name="feed", generation=2, abnormal=True, reason="boom"),
    ]
    union = (
        models.Quote | models.SubmitOrder | models.Fill | models.RiskParameters | models.ChildExited
    )
    for m in messages:
        raw = msgspec.json.encode(m)
        assert msgspec.json.decode(raw, type=union) == m
        assert msgspec.json.decode(raw)["type"] == type(m).__name__


def test_decimal_prices_stay_exact() -> None:
    q = quote(bid="0.1", ask="0.30000000000000004")
    assert q.mid == Decimal("0.20000000000000002")
    assert b'"ask":"0.30000000000000004"' in msgspec.json.encode(q)


def test_fill_cash_delta_truncates_notional_to_the_cash_quantum() -> None:
    f = models.Fill(
        fill_id="F",
        client_order_id="c",
        product="BTC-USD",
        side=models.Side.BUY,
        quantity=Decimal("0.33333333"),
        price=Decimal("7000.123"),
        fee=Decimal("1.25"),
        liquidity="TAKER",
    )
    assert f.notional == Decimal("2333.37430999")
    assert f.cash_delta == -(Decimal("2333.37430999") + Decimal("1.25"))


def test_terminal_order_states() -> None:
    assert {s for s in OrderStatus if s.terminal} == {
        OrderStatus.FILLED,
        OrderStatus.CANCELLED,
        OrderStatus.REJECTED,
        OrderStatus.EXPIRED,
    }
