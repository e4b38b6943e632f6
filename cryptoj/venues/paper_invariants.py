"""The paper venue's invariants, recomputed from its fills and orders (pure).

:meth:`cryptoj.venues.paper.PaperExchange.check_invariants` calls :func:`account_problems`
with its state, under its lock and in its decimal context.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from decimal import Decimal

from cryptoj.models.orders import Fill, OrderStatus, Side
from cryptoj.venues.paper_model import OrderRecord, fill_cash_delta, required_hold

_ZERO = Decimal(0)


def account_problems(
    *,
    quote_ccy: str,
    starting_cash: Decimal,
    maker_fee: Decimal,
    balances: Mapping[str, Decimal],
    held: Mapping[str, Decimal],
    fills: Sequence[Fill],
    orders: Collection[OrderRecord],
    open_ids: Collection[str],
) -> list[str]:
    """The violated invariants, one line each (empty when everything holds): filled ≤
    quantity per order, no negative total or available balance, cash and base conservation,
    held funds equal to what the open orders (``open_ids``) require, unique fill ids."""
    problems = _balance_problems(balances, held)
    problems += _conservation_problems(quote_ccy, starting_cash, balances, fills)
    required: dict[str, Decimal] = {}
    for o in orders:
        cid = o.client_order_id
        if not 0 <= o.filled <= o.quantity:
            problems.append(f"order {cid}: filled {o.filled} outside [0, {o.quantity}]")
        if sum((f.quantity for f in o.fills), _ZERO) != o.filled:
            problems.append(f"order {cid}: fills do not add up to filled {o.filled}")
        is_open = cid in open_ids
        if is_open != (o.status is OrderStatus.OPEN):
            problems.append(f"order {cid}: status {o.status} but open={is_open}")
        if o.status is OrderStatus.FILLED and o.filled != o.quantity:
            problems.append(f"order {cid}: FILLED at {o.filled} of {o.quantity}")
        if o.status is OrderStatus.OPEN and o.remaining <= 0:
            problems.append(f"order {cid}: OPEN with nothing remaining")
        need = required_hold(o, maker_fee)
        if o.hold != need:
            problems.append(f"order {cid}: holds {o.hold}, requires {need}")
        ccy = quote_ccy if o.side is Side.BUY else o.base
        required[ccy] = required.get(ccy, _ZERO) + need
    for ccy in sorted(set(required) | set(held)):
        if required.get(ccy, _ZERO) != held.get(ccy, _ZERO):
            problems.append(
                f"held {ccy} {held.get(ccy, _ZERO)} != {required.get(ccy, _ZERO)} "
                f"required by open orders"
            )
    return problems


def _balance_problems(balances: Mapping[str, Decimal], held: Mapping[str, Decimal]) -> list[str]:
    """Negative totals, holds or available amounts; holds of a currency without a balance."""
    problems: list[str] = []
    for ccy, total in sorted(balances.items()):
        if total < 0:
            problems.append(f"balance {ccy} is negative: {total}")
        ccy_held = held.get(ccy, _ZERO)
        if ccy_held < 0:
            problems.append(f"held {ccy} is negative: {ccy_held}")
        if total - ccy_held < 0:
            problems.append(f"available {ccy} is negative: {total} - {ccy_held}")
    for ccy in held:
        if ccy not in balances and held[ccy] != 0:
            problems.append(f"held {ccy} without a balance: {held[ccy]}")
    return problems


def _conservation_problems(
    quote_ccy: str,
    starting_cash: Decimal,
    balances: Mapping[str, Decimal],
    fills: Sequence[Fill],
) -> list[str]:
    """Cash and base balances against what the fills add up to; duplicate fill ids."""
    problems: list[str] = []
    cash = starting_cash
    base: dict[str, Decimal] = {}
    fill_ids: set[str] = set()
    for f in fills:
        if f.fill_id in fill_ids:
            problems.append(f"duplicate fill id {f.fill_id}")
        fill_ids.add(f.fill_id)
        cash += fill_cash_delta(f)
        ccy = f.product.partition("-")[0]
        signed = f.quantity if f.side is Side.BUY else -f.quantity
        base[ccy] = base.get(ccy, _ZERO) + signed
    if cash != balances[quote_ccy]:
        problems.append(
            f"cash conservation: {quote_ccy} balance {balances[quote_ccy]} != {cash} "
            f"(starting cash − buys + sells − fees)"
        )
    for ccy in sorted(set(base) | (set(balances) - {quote_ccy})):
        want, have = base.get(ccy, _ZERO), balances.get(ccy, _ZERO)
        if want != have:
            problems.append(f"base conservation: {ccy} balance {have} != {want} (buys − sells)")
    return problems
