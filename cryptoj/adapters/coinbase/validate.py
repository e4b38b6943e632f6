"""Checks of the prices and sizes that arrive from the market-data wire (pure).

Every price and size of a level2 level, a ticker or a trade passes here once, before it can
become a :class:`~cryptoj.models.market.Quote` or :class:`~cryptoj.models.market.Trade`. A value
fails when it is not a finite decimal (``NaN``, ``sNaN``, ``Infinity``), a price is not positive,
a size is negative, or either is outside a sane magnitude (a level2 price also when it has more
than 15 significant digits: the book compares prices as floats). The check answers with a *reason*
(one of :data:`DROP_REASONS`), which the session counts; ``is_finite`` is asked first, so a
signalling NaN is never compared (that would raise ``InvalidOperation``).

:class:`RateLimitedLog` keeps what can flood (dropped frames, resyncs) to one log line per reason
per interval, with the number of lines it held back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal, InvalidOperation
from typing import Protocol

#: Prices above this (in the quote currency) are not believed.
MAX_PRICE = Decimal("1e12")
#: Sizes above this (in the base currency) are not believed.
MAX_SIZE = Decimal("1e15")
#: Non-zero prices and sizes below this are not believed (a lost exponent, not a market).
MIN_MAGNITUDE = Decimal("1e-18")

#: Why a frame (or one product's part of it) was dropped; the keys of the ``dropped`` counters.
DROP_REASONS = (
    "nonfinite_price",  # NaN, sNaN or Infinity
    "nonpositive_price",
    "price_out_of_range",
    "nonfinite_size",
    "negative_size",
    "size_out_of_range",
    "crossed_book",  # best bid at or above best ask after a snapshot or update
    "malformed",  # JSON, but not the documented shape of a known channel
    "undecodable",  # the decoder itself failed (nesting too deep, ...)
    "oversize",  # larger than max_frame_bytes: not decoded at all
)


def price_problem(value: Decimal) -> str | None:
    """Why ``value`` is not a usable price, or None when it is."""
    if not value.is_finite():
        return "nonfinite_price"
    if value <= 0:
        return "nonpositive_price"
    if value > MAX_PRICE or value < MIN_MAGNITUDE:
        return "price_out_of_range"
    return None


def size_problem(value: Decimal) -> str | None:
    """Why ``value`` is not a usable size (0 is usable: it deletes a level), or None."""
    if not value.is_finite():
        return "nonfinite_size"
    if value < 0:
        return "negative_size"
    if value > MAX_SIZE or (value and value < MIN_MAGNITUDE):
        return "size_out_of_range"
    return None


class LevelLike(Protocol):
    """A level2 level (``L2Update``): price and size as the wire wrote them."""

    @property
    def price_level(self) -> str: ...
    @property
    def new_quantity(self) -> str: ...


_MAX_PRICE, _MAX_SIZE, _MIN = float(MAX_PRICE), float(MAX_SIZE), float(MIN_MAGNITUDE)
#: Significant digits a level2 price may have: the book compares prices as floats, which
#: tell apart every two decimals of up to 15 significant digits.
MAX_PRICE_DIGITS = 15


def levels_problem(levels: Iterable[LevelLike]) -> str | None:
    """The first problem of a snapshot's or update's levels, or None when all are usable.

    The same checks as :func:`price_problem` and :func:`size_problem`, on the decimal text, plus:
    text that is not a decimal number is ``malformed``, a price of more than
    :data:`MAX_PRICE_DIGITS` significant digits is ``price_out_of_range``. The common case
    costs two ``float()`` calls a level; anything near a limit is decided exactly on
    ``Decimal`` values.
    """
    for lv in levels:
        price, size = lv.price_level, lv.new_quantity
        try:
            p, q = float(price), float(size)
        except ValueError:
            return _exact_problem(price, size)
        if (
            not _MIN <= p <= _MAX_PRICE
            or not (q == 0.0 or _MIN <= q <= _MAX_SIZE)
            or len(price) > MAX_PRICE_DIGITS
        ):
            problem = _exact_problem(price, size)
            if problem is not None:
                return problem
    return None


def _exact_problem(price: str, size: str) -> str | None:
    try:
        p, q = Decimal(price), Decimal(size)
    except (InvalidOperation, TypeError):
        return "malformed"
    problem = pair_problem(p, q)
    if problem is None and len(p.normalize().as_tuple().digits) > MAX_PRICE_DIGITS:
        return "price_out_of_range"
    return problem


def pair_problem(price: Decimal, size: Decimal) -> str | None:
    """The problem of a (price, size) pair (a trade, a ticker side), or None."""
    return price_problem(price) or size_problem(size)


class RateLimitedLog:
    """One line per key per ``interval_ns``; the next line says how many were held back.

    ``write(level, text)`` does the logging; time is passed in (ns).
    """

    def __init__(self, write: Callable[[str, str], None], interval_ns: int) -> None:
        self.write = write
        self.interval_ns = interval_ns
        self._last: dict[str, int] = {}
        self.suppressed: dict[str, int] = {}

    def __call__(self, key: str, level: str, text: str, now: int) -> bool:
        """Log ``text`` unless a line of ``key`` went out within the interval; True if logged."""
        last = self._last.get(key)
        if last is not None and now - last < self.interval_ns:
            self.suppressed[key] = self.suppressed.get(key, 0) + 1
            return False
        self._last[key] = now
        held = self.suppressed.pop(key, 0)
        self.write(level, f"{text} (+{held} more like it suppressed)" if held else text)
        return True
