"""Wire types of the Coinbase Advanced Trade market-data websocket (msgspec Structs).

Every data message has one envelope (protocol notes §4.2)::

    {"channel": str, "client_id": "", "timestamp": RFC3339, "sequence_num": int, "events": [...]}

The data frames form a **tagged union on** ``channel`` (:data:`DataFrame`), decoded in one pass
with typed events; ``level2`` data arrives as ``l2_data``. Error frames have **no envelope**
(``{"type": "error", "message": "..."}``), so they cannot be a member of that union (msgspec
needs the tag key in every member); a frame the union rejects is decoded again as
:class:`Head`, which tells an error frame from an unknown channel or a malformed message. That
second decode only runs for the rare frames that are not data.

Prices and sizes are ``Decimal`` straight from the decimal strings, except level2 levels (their
text, see :class:`L2Update`). Fields the client does not
use are not declared (msgspec skips unknown keys), so new fields never break decoding.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec


class _Wire(msgspec.Struct, frozen=True, kw_only=True):
    """Base of the wire types (immutable, keyword construction)."""


# -- events ------------------------------------------------------------------------------------


class L2Update(_Wire, frozen=True, kw_only=True):
    """One level: ``new_quantity`` is the **absolute** size at ``price_level`` ("0" deletes).

    Kept as the decimal text (checked by :func:`.validate.levels_problem`; the book makes
    ``Decimal`` values only for what it hands on): most levels never reach the top of book.
    """

    side: str  # "bid" or "offer" (not "ask")
    event_time: str = ""
    price_level: str
    new_quantity: str


class L2Event(_Wire, frozen=True, kw_only=True):
    """A full-book ``snapshot`` or an ``update`` of one product."""

    type: str
    product_id: str
    updates: list[L2Update] = []


class TickerItem(_Wire, frozen=True, kw_only=True):
    """One ticker; the ``best_*`` fields came in 2024-04 and may be absent or empty."""

    product_id: str
    price: str = ""
    best_bid: str = ""
    best_bid_quantity: str = ""
    best_ask: str = ""
    best_ask_quantity: str = ""


class TickerEvent(_Wire, frozen=True, kw_only=True):
    """A ``snapshot`` or ``update`` holding tickers."""

    type: str = ""
    tickers: list[TickerItem] = []


class MarketTrade(_Wire, frozen=True, kw_only=True):
    """One trade; ``side`` is "BUY" or "SELL" (whose side it is is undocumented)."""

    product_id: str
    trade_id: str
    price: Decimal
    size: Decimal
    time: str
    side: str


class MarketTradesEvent(_Wire, frozen=True, kw_only=True):
    """Recent trades (``snapshot``) or new ones (``update``), newest first."""

    type: str = ""
    trades: list[MarketTrade] = []


class HeartbeatEvent(_Wire, frozen=True, kw_only=True):
    """A heartbeat; the counter is a JSON number in real captures, a string in the docs."""

    current_time: str = ""
    heartbeat_counter: int | str


class SubscriptionsEvent(_Wire, frozen=True, kw_only=True):
    """Every subscription on the connection after an (un)subscribe: channel → product ids."""

    subscriptions: dict[str, list[str]] = {}


# -- frames (tagged union on "channel") -------------------------------------------------------


class Envelope(_Wire, frozen=True, kw_only=True, tag_field="channel"):
    """Common envelope fields."""

    client_id: str = ""
    timestamp: str = ""
    sequence_num: int


class L2Frame(Envelope, frozen=True, kw_only=True, tag="l2_data"):
    """Level2 data (you subscribe to ``level2``, it arrives as ``l2_data``)."""

    events: list[L2Event] = []


class TickerFrame(Envelope, frozen=True, kw_only=True, tag="ticker"):
    """Ticker data."""

    events: list[TickerEvent] = []


class TickerBatchFrame(Envelope, frozen=True, kw_only=True, tag="ticker_batch"):
    """Ticker data batched every 5 s."""

    events: list[TickerEvent] = []


class MarketTradesFrame(Envelope, frozen=True, kw_only=True, tag="market_trades"):
    """Trades."""

    events: list[MarketTradesEvent] = []


class HeartbeatsFrame(Envelope, frozen=True, kw_only=True, tag="heartbeats"):
    """Heartbeats, one per second."""

    events: list[HeartbeatEvent] = []


class SubscriptionsFrame(Envelope, frozen=True, kw_only=True, tag="subscriptions"):
    """Acknowledgement of an (un)subscribe."""

    events: list[SubscriptionsEvent] = []


class SkippedTickerFrame(Envelope, frozen=True, kw_only=True, tag="ticker"):
    """A ticker frame whose events are not needed (level2 gives the quotes): not decoded."""

    events: msgspec.Raw = msgspec.Raw(b"[]")


class SkippedTickerBatchFrame(Envelope, frozen=True, kw_only=True, tag="ticker_batch"):
    """A ticker_batch frame whose events are not needed: not decoded."""

    events: msgspec.Raw = msgspec.Raw(b"[]")


DataFrame = (
    L2Frame
    | TickerFrame
    | TickerBatchFrame
    | MarketTradesFrame
    | HeartbeatsFrame
    | SubscriptionsFrame
)
"""Every data frame, fully decoded."""

LeanDataFrame = (
    L2Frame
    | SkippedTickerFrame
    | SkippedTickerBatchFrame
    | MarketTradesFrame
    | HeartbeatsFrame
    | SubscriptionsFrame
)
"""The union used when level2 gives the quotes: ticker events are skipped, not decoded."""


class Head(_Wire, frozen=True, kw_only=True):
    """What any JSON object frame says about itself (fallback decode of non-data frames)."""

    type: str = ""
    message: str = ""
    channel: str = ""
    sequence_num: int | None = None
    timestamp: str = ""


# -- client → server ---------------------------------------------------------------------------


class Subscribe(_Wire, frozen=True, kw_only=True, omit_defaults=True):
    """A subscribe or unsubscribe: exactly one channel per message."""

    type: str  # "subscribe" | "unsubscribe"
    product_ids: list[str] = []
    channel: str
    jwt: str = ""


# -- REST (public market endpoints) ------------------------------------------------------------


class RestTrade(_Wire, frozen=True, kw_only=True):
    """A trade of ``GET /market/products/{id}/ticker``."""

    trade_id: str
    product_id: str
    price: Decimal
    size: Decimal
    time: str
    side: str = ""


class RestTrades(_Wire, frozen=True, kw_only=True):
    """``GET /market/products/{id}/ticker``: recent trades, newest first."""

    trades: list[RestTrade] = []


class RestLevel(_Wire, frozen=True, kw_only=True):
    """One book level of a REST book."""

    price: Decimal
    size: Decimal


class RestPricebook(_Wire, frozen=True, kw_only=True):
    """One product's book of a REST answer."""

    product_id: str
    bids: list[RestLevel] = []
    asks: list[RestLevel] = []
    time: str = ""


class RestProductBook(_Wire, frozen=True, kw_only=True):
    """``GET /market/product_book``."""

    pricebook: RestPricebook


class RestBestBidAsk(_Wire, frozen=True, kw_only=True):
    """``GET /best_bid_ask`` (authenticated)."""

    pricebooks: list[RestPricebook] = []
