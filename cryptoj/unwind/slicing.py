"""How much one slice of an unwind sells, and what it cost. Pure.

A slice is decided when a product has a *fresh* book (a quote no earlier slice has used: the
paper venue does not deplete its book between quotes, so two slices on one quote would take
the same liquidity twice). Its size, for ``remaining`` base units still to sell::

    urgency    = (1 + adverse_bps / adverse_move_bps) × (volatile_multiplier if VOLATILE else 1)
    depth_cap  = depth_fraction × urgency × Σ size of the visible levels on the bid side
    volume_cap = min(1, max_participation × urgency) × recent volume (one bar)  (none unknown)
    books      = 1 + (deadline − now) // interval      fresh books left up to the deadline
    pace       = remaining × urgency / books           (none while the interval is unknown)
    slice      = min(remaining, max(min(depth_cap, volume_cap), pace)), floored to 1e-8

``adverse_bps`` is how far the mid has moved against the unwind since it started (for a sell:
``(start mid − mid) / start mid × 10,000``, 0 when it rose) and ``interval`` the market time
between the product's last two books. So the caps and the pace rise as the price falls (and in
the VOLATILE regime), and the pace makes the unwind end by its deadline
(``shutdown.unwind.max_duration_s`` after the decision, market time): with ``books`` fresh
books left it sells at least ``1/books`` of the remainder on each, and the last book before
the deadline (``books`` = 1) takes the whole remainder at market.

On bars coarser than the deadline (the interval between books is longer than the unwind's
whole duration, so it only ever gets the decision's book before its deadline) that last book
is the decision's own, and selling everything on it would walk the book deep. There the slice
is at most ``coarse_depth_multiple × urgency`` × the visible top size (3 by default: on the
paper venue the touch and the next two levels, within 2.5 level steps of the touch), at
market; the next book, after the deadline, sells the rest at market, so the unwind ends
within one bar. Waiting a bar for the deep part trades its certain impact (the fourth and
fifth levels cost 3 and 4 steps more than the touch) for one bar of price risk; a move
against the unwind or the VOLATILE regime raises the multiple (VOLATILE: 6, everything the
paper venue's five levels hold). With the defaults (``depth_fraction`` 0.5 of
the top level) and no urgency a slice never walks past the touch, so it costs half the spread;
an order larger than the touch walks the venue's deeper, worse levels.

* ``mode == "immediate"`` (what peers do: flatten at once at market): the whole remainder,
  every time, walking the book; what the venue cannot fill expires and is sent again on the
  next fresh book.
* At or after the deadline: the same, for every product still unwinding ("the remainder at
  market").

Worked example (pace): 1-minute books, 900 s deadline, 600 s in, 10 BTC left, no adverse move:
``books`` = 1 + 300 // 60 = 6, pace 10 / 6 = 1.67 BTC; after a 100 bps fall (``adverse_move_bps``
50, urgency 3) the pace is 5 BTC.

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
    adverse_move_bps: float = 50.0  # each such adverse move adds the base caps and pace once
    volatile_multiplier: float = 2.0  # caps and pace × this in the VOLATILE regime
    coarse_depth_multiple: float = 3.0  # books further apart than the deadline: × top now

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if not 0 < self.depth_fraction <= 1 or not 0 < self.max_participation <= 1:
            raise ValueError("depth_fraction and max_participation must be in (0, 1]")
        if self.depth_levels < 1:
            raise ValueError("depth_levels must be >= 1")
        if not self.adverse_move_bps > 0:
            raise ValueError(f"adverse_move_bps must be > 0, got {self.adverse_move_bps!r}")
        if not self.coarse_depth_multiple > 0:
            raise ValueError(
                f"coarse_depth_multiple must be > 0, got {self.coarse_depth_multiple!r}"
            )
        if not self.volatile_multiplier >= 1:
            raise ValueError(f"volatile_multiplier must be >= 1, got {self.volatile_multiplier!r}")


def urgency(rules: SliceRules, adverse_bps: float, volatile: bool) -> float:
    """How much faster than its base pace the unwind sells (module docstring), >= 1."""
    u = 1.0 + max(0.0, adverse_bps) / rules.adverse_move_bps
    return u * rules.volatile_multiplier if volatile else u


def books_left(now_ns: int, deadline_ns: int | None, interval_ns: int | None) -> int | None:
    """Fresh books expected from now up to the deadline, the one in hand included; None while
    the deadline or the interval between books is unknown."""
    if deadline_ns is None or interval_ns is None or interval_ns <= 0:
        return None
    return 1 + max(0, deadline_ns - now_ns) // interval_ns


def adverse_move_bps(start_mid: Decimal | None, mid: Decimal) -> float:
    """How far ``mid`` fell below ``start_mid`` in bps (a sell's adverse move), 0 if it rose."""
    if start_mid is None or start_mid <= 0 or mid >= start_mid:
        return 0.0
    return float((start_mid - mid) / start_mid * 10_000)


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
    interval_ns: int | None = None,
    adverse_bps: float = 0.0,
    volatile: bool = False,
    started_ns: int | None = None,
) -> SliceDecision | None:
    """The next slice (module docstring), or None when there is nothing to sell or no depth.

    ``levels`` are the visible (price, size) levels on the bid side, best first;
    ``interval_ns`` the market time between the product's books (None: unknown);
    ``started_ns`` when the unwind was decided (its deadline minus it is its duration).
    """
    remaining = floor_to(remaining, BASE_INCREMENT)
    if remaining <= 0:
        return None
    if rules.mode == "immediate":
        return SliceDecision(remaining, True, "immediate: the remainder at market")
    if deadline_ns is not None and now_ns >= deadline_ns:
        return SliceDecision(remaining, True, "deadline passed: the remainder at market")
    books = books_left(now_ns, deadline_ns, interval_ns)
    u = urgency(rules, adverse_bps, volatile)
    depth = visible_depth(levels, rules.depth_levels)
    if books == 1:
        coarse = (
            started_ns is not None
            and deadline_ns is not None
            and interval_ns is not None
            and interval_ns > deadline_ns - started_ns
        )
        if not coarse:
            return SliceDecision(
                remaining, True, "last book before the deadline: the remainder at market"
            )
        most = Decimal(repr(rules.coarse_depth_multiple * u)) * depth
        qty = floor_to(min(remaining, most), BASE_INCREMENT)
        why = (
            f"bars coarser than the deadline: up to {rules.coarse_depth_multiple * u:.2f} × the "
            "visible top now, the rest at market on the next book"
        )
        return SliceDecision(qty, True, why) if qty > 0 else None
    cap = Decimal(repr(rules.depth_fraction * u)) * depth
    why = f"{rules.depth_fraction:g} of visible depth {depth}"
    if recent_volume is not None and recent_volume > 0:
        share = min(1.0, rules.max_participation * u)
        by_volume = Decimal(repr(share)) * recent_volume
        if by_volume < cap:
            cap = by_volume
            why = f"{rules.max_participation:g} of recent volume {recent_volume}"
    if books is not None:
        pace = remaining * Decimal(repr(u)) / books
        if pace > cap:
            cap, why = pace, f"pace: 1/{books} of the remainder before the deadline"
    if u > 1:
        why += f", urgency {u:.2f}"
    qty = floor_to(min(remaining, cap), BASE_INCREMENT)
    if qty <= 0:
        return None
    return SliceDecision(qty, False, why)


def slippage_bps(reference_mid: Decimal, average_price: Decimal) -> float:
    """``(M − P) / M × 10,000`` for a sell (module docstring); 0 without a reference."""
    if reference_mid <= 0:
        return 0.0
    return float((reference_mid - average_price) / reference_mid * 10_000)
