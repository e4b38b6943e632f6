"""Decode Coinbase websocket frames and turn them into cryptoj market events (pure).

:class:`FrameDecoder` turns one raw frame into a data frame (see :mod:`.schemas`), an
:class:`ErrorFrame`, an :class:`UnknownFrame` (a channel this client does not know: ignored, as
the docs ask) or a :class:`MalformedFrame` (not JSON, or a known channel with a wrong shape).
The helpers below convert trades, tickers and REST books to :class:`~cryptoj.models.market.Trade`
and :class:`~cryptoj.models.market.Quote` with ``Decimal`` values and ns timestamps.
"""

from __future__ import annotations

import calendar
import time
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import msgspec

from cryptoj.adapters.coinbase.schemas import (
    DataFrame,
    Head,
    LeanDataFrame,
    MarketTrade,
    RestPricebook,
    RestTrade,
    TickerItem,
)
from cryptoj.adapters.coinbase.validate import pair_problem
from cryptoj.models.market import Quote, Trade

KNOWN_CHANNELS = frozenset(
    {"l2_data", "ticker", "ticker_batch", "market_trades", "heartbeats", "subscriptions"}
)


@dataclass(frozen=True, slots=True)
class ErrorFrame:
    """``{"type": "error", "message": ...}``: no envelope, no sequence number."""

    message: str


@dataclass(frozen=True, slots=True)
class UnknownFrame:
    """A well-formed frame of a channel (or type) this client does not handle: ignored."""

    channel: str
    sequence_num: int | None
    kind: str = ""


@dataclass(frozen=True, slots=True)
class MalformedFrame:
    """Not JSON, or a known channel whose events do not have the documented shape."""

    problem: str
    channel: str = ""
    sequence_num: int | None = None
    reason: str = "malformed"  # "undecodable" when the decoder itself failed (see validate)


Parsed = DataFrame | LeanDataFrame | ErrorFrame | UnknownFrame | MalformedFrame


class FrameDecoder:
    """Decodes raw frames (``bytes`` or ``str``); reusable, not thread-safe.

    ``tickers=False`` skips the events of ticker frames (they arrive as
    :class:`~.schemas.SkippedTickerFrame`): used when the level2 book gives the quotes.
    """

    def __init__(self, *, tickers: bool = True) -> None:
        self._data: msgspec.json.Decoder[DataFrame | LeanDataFrame] = msgspec.json.Decoder(
            DataFrame if tickers else LeanDataFrame
        )
        self._head = msgspec.json.Decoder(Head)

    def decode(self, raw: bytes | str) -> Parsed:
        """Decode one frame; never raises for bad input (see the module docstring).

        A failure of the decoder itself (``RecursionError`` on deeply nested JSON, ``MemoryError``,
        anything else) comes back as a :class:`MalformedFrame` with ``reason="undecodable"``.
        """
        try:
            return self._data.decode(raw)
        except msgspec.ValidationError as e:
            return self._classify(raw, str(e))
        except msgspec.DecodeError as e:
            return MalformedFrame(f"not JSON: {e}")
        except Exception as e:  # RecursionError (nesting), MemoryError, ...
            return MalformedFrame(f"undecodable: {type(e).__name__}", reason="undecodable")

    def _classify(self, raw: bytes | str, problem: str) -> Parsed:
        try:
            head = self._head.decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            return MalformedFrame(f"not a frame object: {e}")
        except Exception as e:  # RecursionError (nesting), MemoryError, ...
            return MalformedFrame(f"undecodable: {type(e).__name__}", reason="undecodable")
        if head.type == "error":
            return ErrorFrame(head.message)
        if head.channel and head.channel not in KNOWN_CHANNELS:
            return UnknownFrame(head.channel, head.sequence_num, head.type)
        if not head.channel:
            return UnknownFrame("", head.sequence_num, head.type)
        return MalformedFrame(problem, head.channel, head.sequence_num)


# -- timestamps --------------------------------------------------------------------------------

_EPOCH_CACHE: dict[str, int] = {}
_NS_PAD = "000000000"
_SCALE: tuple[int, ...] = tuple(
    10 ** (9 - k) for k in range(10)
)  # a fraction of k digits → ns: × _SCALE[k]


def rfc3339_ns(text: str) -> int:
    """``2024-10-04T07:04:40.812675707Z`` (0–9 fraction digits, ``Z`` or ``±HH:MM``) → ns.

    Raises ``ValueError`` for anything else. The whole-second prefix is cached (frames of one
    second share it), so this costs a slice and a dict lookup per call.
    """
    base = text[:19]
    secs = _EPOCH_CACHE.get(base)
    n = len(text)
    if secs is not None and 21 < n < 31 and text[-1] == "Z" and text[19] == ".":  # fast path
        digits = text[20:-1]
        if digits.isdigit():
            return secs * 1_000_000_000 + int(digits) * _SCALE[n - 21]
    if secs is None:
        if len(base) != 19 or base[4] != "-" or base[10] not in "Tt " or base[13] != ":":
            raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
        secs = calendar.timegm(
            (
                int(base[0:4]),
                int(base[5:7]),
                int(base[8:10]),
                int(base[11:13]),
                int(base[14:16]),
                int(base[17:19]),
            )
        )
        if len(_EPOCH_CACHE) > 4096:
            _EPOCH_CACHE.clear()
        _EPOCH_CACHE[base] = secs
    rest = text[19:]
    frac = 0
    if rest.startswith("."):
        end = 1
        while end < len(rest) and rest[end].isdigit():
            end += 1
        digits = rest[1:end]
        if not digits or len(digits) > 9:
            raise ValueError(f"bad fraction in {text!r}")
        frac = int((digits + _NS_PAD)[:9])
        rest = rest[end:]
    if rest in ("Z", "z", "+00:00", "-00:00", ""):
        offset = 0
    elif len(rest) == 6 and rest[0] in "+-" and rest[3] == ":":
        offset = (int(rest[1:3]) * 3600 + int(rest[4:6]) * 60) * (1 if rest[0] == "+" else -1)
    else:
        raise ValueError(f"bad time zone in {text!r}")
    return (secs - offset) * 1_000_000_000 + frac


_LAST_SECOND: list[tuple[int, str]] = [(-1, "")]


def format_rfc3339_ns(ns: int) -> str:
    """ns since the epoch → ``YYYY-MM-DDTHH:MM:SS.fffffffffZ`` (Coinbase's envelope format)."""
    secs, frac = divmod(ns, 1_000_000_000)
    cached_secs, prefix = _LAST_SECOND[0]
    if cached_secs != secs:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
        _LAST_SECOND[0] = (secs, prefix)
    return f"{prefix}.{frac:09d}Z"


def heartbeat_counter(value: int | str) -> int | None:
    """A heartbeat counter as an int (JSON number or decimal string), None when unusable."""
    if isinstance(value, int):
        return value
    try:
        return int(value)
    except ValueError:
        return None


# -- conversions -------------------------------------------------------------------------------


def trade_event(t: MarketTrade | RestTrade, fallback_ts: int) -> Trade:
    """A websocket or REST trade as a :class:`Trade` (``ts`` = the trade's time)."""
    try:
        ts = rfc3339_ns(t.time)
    except ValueError:
        ts = fallback_ts
    return Trade(
        ts=ts,
        product=t.product_id,
        price=t.price,
        quantity=t.size,
        taker_side=t.side.upper(),
        trade_id=t.trade_id,
    )


def ticker_problem(item: TickerItem) -> str | None:
    """Why a ticker's ``best_*`` values are unusable (see :mod:`.validate`), or None.

    Absent or empty fields are not a problem (older tickers lack them: no quote is made); a
    value that is present must parse and pass the price and size checks.
    """
    for price_text, size_text in (
        (item.best_bid, item.best_bid_quantity),
        (item.best_ask, item.best_ask_quantity),
    ):
        try:
            price = Decimal(price_text) if price_text else Decimal(1)
            size = Decimal(size_text) if size_text else Decimal(0)
        except InvalidOperation:
            return "malformed"
        problem = pair_problem(price, size)
        if problem is not None:
            return problem
    if item.best_bid and item.best_ask and Decimal(item.best_bid) >= Decimal(item.best_ask):
        return "crossed_book"
    return None


def _dec(text: str) -> Decimal | None:
    if not text:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def ticker_quote(item: TickerItem, ts: int) -> Quote | None:
    """The top of book a ticker carries; None when its ``best_*`` fields are missing or
    unusable (:func:`ticker_problem` says why)."""
    bid, ask = _dec(item.best_bid), _dec(item.best_ask)
    bid_size, ask_size = _dec(item.best_bid_quantity), _dec(item.best_ask_quantity)
    if bid is None or ask is None or bid_size is None or ask_size is None or bid >= ask:
        return None
    return Quote(
        ts=ts, product=item.product_id, bid=bid, bid_size=bid_size, ask=ask, ask_size=ask_size
    )


def pricebook_quote(book: RestPricebook, fallback_ts: int) -> Quote | None:
    """The best bid/ask of a REST pricebook; None when a side is empty, a value fails the
    checks of :mod:`.validate` or the book is crossed."""
    if not book.bids or not book.asks:
        return None
    try:
        ts = rfc3339_ns(book.time) if book.time else fallback_ts
    except ValueError:
        ts = fallback_ts
    bid, ask = book.bids[0], book.asks[0]
    if (
        pair_problem(bid.price, bid.size)
        or pair_problem(ask.price, ask.size)
        or bid.price >= ask.price
    ):
        return None
    return Quote(
        ts=ts,
        product=book.product_id,
        bid=bid.price,
        bid_size=bid.size,
        ask=ask.price,
        ask_size=ask.size,
    )
