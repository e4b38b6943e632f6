"""How much one slice of an unwind sells, and what it cost. Pure.

A slice is decided when a product has a *fresh* book (a quote no earlier slice has used: the
paper venue does not deplete its book between quotes, so two slices on one quote would take
the same liquidity twice). Its size, for ``remaining`` base units still to sell::

    depth_cap  = depth_fraction × Σ size of the visible levels on the bid side
    volume_cap = max_participation × recent volume (one bar)     (no cap while unknown)
    slice      = min(remaining, depth_cap, volume_cap), floored to 1e-8

With the defaults
(``depth_fraction`` 0.5 of the top level) a slice never walks past the touch, so it costs
half the spread; an order larger than the touch walks the venue's deeper, worse levels.

* ``mode == "immediate"`` (what peers do: flatten at once at market): the whole remainder,
  every time, walking the book; what the venue cannot fill expires and is sent again on the
  next fresh book.
* At or after the deadline: the same, for every product still unwinding ("the remainder at
  market").

Slippage of a sell filled at average price P against a reference mid M, in basis points
(positive = received less than the mid)::

    slippage_bps = (M − P) / M × 10,000

Worked example: bid 9,990 × 2 BTC, ask 10,010, depth_fraction 0.5, volume 30 BTC,
max_participation 0.1, remaining 5 BTC → depth_cap 1, volume_cap 3 → slice 1 BTC at 9,990:
(10,000 − 9,990) / 10,000 = 10 bps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from cryptoj.execution.splitting import visible_depth
from cryptoj.models.orders import floor_to

BASE_INCREMENT = Decimal("0.00000001")
MODES = ("gradual", "immediate")


@dataclass(frozen=True)
class SliceRules:
    """The slicing parameters of a plan."""

    mode: str = "gradual"
    depth_fraction: float = 0.5
    max_participation: float = 0.1
    depth_levels: int = 1  # visible levels counted for the depth cap

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if not 0 < self.depth_fraction <= 1 or not 0 < self.max_participation <= 1:
            raise ValueError("depth_fraction and max_participation must be in (0, 1]")
        if self.depth_levels < 1:
            raise ValueError("depth_levels must be >= 1")


@dataclass(frozen=True)
class SliceDecision:
    """What to sell now: ``quantity``; ``at_market`` when it walks the book for the rest."""

    quantity: Decimal
    at_market: bool
    why: str


def next_slice(
    remaining: Decimal,
    levels: Sequence[tuple[Decimal, Decimal]],
    recent_volume: Decimal | None,
    rules: SliceRules,
    *,
    now_ns: int,
    deadline_ns: int | None,
) -> SliceDecision | None:
    """The next slice (module docstring), or None when there is nothing to sell or no depth.

    ``levels`` are the visible (price, size) levels on the bid side, best first.
    """
    remaining = floor_to(remaining, BASE_INCREMENT)
    if remaining <= 0:
        return None
    if rules.mode == "immediate":
        return SliceDecision(remaining, True, "immediate: the remainder at market")
    if deadline_ns is not None and now_ns >= deadline_ns:
        return SliceDecision(remaining, True, "deadline passed: the remainder at market")
    depth = visible_depth(levels, rules.depth_levels)
    cap = Decimal(repr(rules.depth_fraction)) * depth
    why = f"{rules.depth_fraction:g} of visible depth {depth}"
    if recent_volume is not None and recent_volume > 0:
        by_volume = Decimal(repr(rules.max_participation)) * recent_volume
        if by_volume < cap:
            cap = by_volume
            why = f"{rules.max_participation:g} of recent volume {recent_volume}"
    qty = floor_to(min(remaining, cap), BASE_INCREMENT)
    if qty <= 0:
        return None
    return SliceDecision(qty, False, why)


def slippage_bps(reference_mid: Decimal, average_price: Decimal) -> float:
    """``(M − P) / M × 10,000`` for a sell (module docstring); 0 without a reference."""
    if reference_mid <= 0:
        return 0.0
    return float((reference_mid - average_price) / reference_mid * 10_000)
