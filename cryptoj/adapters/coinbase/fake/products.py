"""Product specifications of the fake exchange (increments, minimums) and their REST shape.

Values (all products quote in USD):

===========  ==============  ==============  ===============  =============  =============
product      base_increment  quote/price     base_min_size    base_max_size  quote_min/max
===========  ==============  ==============  ===============  =============  =============
BTC-USD      0.00000001      0.01 / 0.01     0.00000001       3400           1 / 150000000
ETH-USD      0.00000001      0.01 / 0.01     0.00000001       50000          1 / 150000000
LTC-USD      0.00000001      0.01 / 0.01     0.00000001       250000         1 / 150000000
===========  ==============  ==============  ===============  =============  =============

BTC-USD is exactly the recorded product of ``shared/data/coinbase/rest/nautilus/
get_product_BTC-USD.json`` (2026-04). No fixture covers ETH-USD or LTC-USD: they reuse BTC-USD's
increments and quote limits (today's Coinbase spot USD books share them), with a
``base_max_size`` of our own choosing, scaled to their lower prices. The recorded 2018 prices of
the bundled data are all on the cent grid, so ``price_increment`` 0.01 fits them.

Tests (or a tool) pass their own :class:`ProductSpec` map to tighten a minimum, disable trading
or restrict a product to limit orders.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any


def fmt(d: Decimal) -> str:
    """A decimal as Coinbase writes it: plain notation, no trailing zeros (``"0"`` for zero)."""
    if not d:
        return "0"
    return f"{d.normalize():f}"


@dataclass(frozen=True, slots=True)
class ProductSpec:
    """One tradable product's trading rules."""

    product_id: str
    base_increment: Decimal = Decimal("0.00000001")
    quote_increment: Decimal = Decimal("0.01")
    price_increment: Decimal = Decimal("0.01")
    base_min_size: Decimal = Decimal("0.00000001")
    base_max_size: Decimal = Decimal("3400")
    quote_min_size: Decimal = Decimal("1")
    quote_max_size: Decimal = Decimal("150000000")
    trading_disabled: bool = False
    cancel_only: bool = False
    limit_only: bool = False
    post_only: bool = False

    @property
    def base_currency(self) -> str:
        """``BTC`` of ``BTC-USD``."""
        return self.product_id.split("-", 1)[0]

    @property
    def quote_currency(self) -> str:
        """``USD`` of ``BTC-USD``."""
        return self.product_id.split("-", 1)[1]


BASE_MAX = {"BTC": Decimal("3400"), "ETH": Decimal("50000"), "LTC": Decimal("250000")}
NAMES = {"BTC": "Bitcoin", "ETH": "Ethereum", "LTC": "Litecoin", "USD": "US Dollar"}


def default_specs(products: Iterable[str]) -> dict[str, ProductSpec]:
    """The specifications of the sim's products (see the module docstring)."""
    out = {}
    for p in products:
        if "-" not in p:
            raise ValueError(f"product id {p!r} is not BASE-QUOTE")
        base = p.split("-", 1)[0]
        out[p] = ProductSpec(p, base_max_size=BASE_MAX.get(base, Decimal("1000000")))
    return out


def product_json(spec: ProductSpec, price: Decimal | None) -> dict[str, Any]:
    """The REST Product object (``GET /products/{id}``), shaped like the recorded one."""
    base, quote = spec.base_currency, spec.quote_currency
    disabled = spec.trading_disabled
    return {
        "product_id": spec.product_id,
        "price": fmt(price) if price is not None else "",
        "price_percentage_change_24h": "0",
        "volume_24h": "0",
        "volume_percentage_change_24h": "0",
        "base_increment": fmt(spec.base_increment),
        "quote_increment": fmt(spec.quote_increment),
        "quote_min_size": fmt(spec.quote_min_size),
        "quote_max_size": fmt(spec.quote_max_size),
        "base_min_size": fmt(spec.base_min_size),
        "base_max_size": fmt(spec.base_max_size),
        "base_name": NAMES.get(base, base),
        "quote_name": NAMES.get(quote, quote),
        "watched": False,
        "is_disabled": disabled,
        "new": False,
        "status": "offline" if disabled else "online",
        "cancel_only": spec.cancel_only,
        "limit_only": spec.limit_only,
        "post_only": spec.post_only,
        "trading_disabled": disabled,
        "auction_mode": False,
        "product_type": "SPOT",
        "quote_currency_id": quote,
        "base_currency_id": base,
        "fcm_trading_session_details": None,
        "mid_market_price": "",
        "alias": "",
        "alias_to": [],
        "base_display_symbol": base,
        "quote_display_symbol": quote,
        "view_only": False,
        "price_increment": fmt(spec.price_increment),
        "display_name": spec.product_id,
        "product_venue": "CBE",
        "approximate_quote_24h_volume": "0",
    }
