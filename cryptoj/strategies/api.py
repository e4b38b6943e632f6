"""The strategy interface: what a strategy is given and what it returns.

A strategy is a plain class (subclass :class:`Strategy`) with handlers for the market events it
subscribed to and for fills; each handler returns the **target weights** it wants now (a
:class:`Target`, a list of them, a mapping product → weight, or None for "no change"). Targets
are fractions of the strategy's capital share (``weight`` in the config); the StrategyActor
combines every strategy's targets and the portfolio turns them into orders under its
check-and-reserve and every risk limit, so a strategy can never bypass them. (Explicit order
intents are not part of this version: a strategy expresses everything as target weights.)

Read-only views come from the :class:`StrategyContext` (``self.ctx``): market time of the
event being handled (``now()``, never the wall clock), a seeded random generator, the last
``history_bars`` bars per product, the portfolio's positions and the current risk parameters
and regimes. A strategy does no I/O. Everything it decides depends only on the events it was
given, so it is deterministic in replay and testable by calling its handlers directly.

Warm-up: before live events, and again after a restart, the StrategyActor replays the history
the strategy declares (``warmup_bars``: the last N bars per product, None = all the history the
run has) through the same handlers, discarding their output; a restarted strategy therefore
decides as one that never stopped.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar, Generic, TypeVar

import msgspec

from cryptoj.models.market import Bar, Quote, Trade
from cryptoj.models.orders import Fill
from cryptoj.models.risk import RiskParameters


class NoParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The parameter schema of a strategy that takes none."""


P = TypeVar("P", bound=msgspec.Struct)


@dataclass(frozen=True)
class Target:
    """Hold ``weight`` (0..1, a fraction of the strategy's capital share) of ``product``."""

    product: str
    weight: float
    reason: str = ""


#: What a handler returns: None (no change), one target, several, or product → weight.
Output = None | Target | Iterable[Target] | Mapping[str, float]

#: Event kinds a strategy may subscribe to (``Strategy.subscribes``).
EVENT_KINDS = frozenset({"bars", "quotes", "trades", "fills", "risk"})


class StrategyContext:
    """What a strategy may read (all read-only) and its sources of time and randomness."""

    def __init__(
        self,
        name: str,
        *,
        seed: int,
        history_bars: int,
        products: frozenset[str] = frozenset(),
    ) -> None:
        self.name = name
        #: products this strategy subscribed to (empty: every product of the feed)
        self.products = products
        #: seeded per strategy (``seed`` and ``name``): the same draws in every run and warm-up
        self.rng = random.Random(f"{seed}:{name}")
        self.warming_up = False
        self._now = 0
        self._history_bars = history_bars
        self._bars: dict[str, list[Bar]] = {}
        self._positions: dict[str, Decimal] = {}
        self._risk: RiskParameters | None = None

    def now(self) -> int:
        """Market time (ns) of the event being handled: deterministic, never the wall clock."""
        return self._now

    def bars(self, product: str) -> tuple[Bar, ...]:
        """The last ``history_bars`` bars of ``product`` (oldest first; the current one last)."""
        return tuple(self._bars.get(product, ()))

    def position(self, product: str) -> Decimal:
        """The portfolio's quantity of ``product`` (strategies subscribed to ``fills``)."""
        return self._positions.get(product, Decimal(0))

    @property
    def positions(self) -> Mapping[str, Decimal]:
        """Every non-zero position (a copy)."""
        return {p: q for p, q in self._positions.items() if q}

    @property
    def risk(self) -> RiskParameters | None:
        """The current risk parameters (strategies subscribed to ``risk``; None until known)."""
        return self._risk

    def regime(self, product: str) -> str | None:
        """The product's regime (CALM / TRENDING / VOLATILE), None while unknown."""
        return None if self._risk is None else self._risk.regime(product)

    # -- written by the host only ---------------------------------------------------------

    def _on_bar(self, bar: Bar) -> None:
        self._now = bar.ts
        if self._history_bars > 0:
            window = self._bars.setdefault(bar.product, [])
            window.append(bar)
            if len(window) > self._history_bars:
                del window[0]

    def _set_now(self, ts: int) -> None:
        self._now = ts

    def _set_position(self, product: str, quantity: Decimal) -> None:
        self._positions[product] = quantity

    def _set_risk(self, params: RiskParameters) -> None:
        self._risk = params


class Strategy(Generic[P]):
    """Base class of every strategy. Override the handlers you subscribe to.

    Class attributes a strategy declares:

    * ``Params``: a msgspec Struct of its parameters (``strategy.params`` in the config is
      validated against it; one line per problem in ``check-config``);
    * ``subscribes``: the event kinds it wants: ``bars``, ``quotes``, ``trades``, ``fills``,
      ``risk`` (quotes, trades, fills and risk reach it only when some strategy asks);
    * ``history_bars``: the window of bars per product ``ctx.bars()`` keeps;
    * ``warmup_bars``: bars per product replayed before live events and after a restart
      (None: the whole history of the run, which an EMA's unbounded memory needs).
    """

    Params: ClassVar[type[msgspec.Struct]] = NoParams
    subscribes: ClassVar[frozenset[str]] = frozenset({"bars"})
    history_bars: ClassVar[int] = 0
    warmup_bars: ClassVar[int | None] = None

    def __init__(self, params: P, ctx: StrategyContext) -> None:
        self.params = params
        self.ctx = ctx

    def on_bar(self, bar: Bar) -> Output:
        """A closed bar of a subscribed product."""
        return None

    def on_quote(self, quote: Quote) -> Output:
        """A top-of-book quote of a subscribed product."""
        return None

    def on_trade(self, trade: Trade) -> Output:
        """A trade (tick) of a subscribed product."""
        return None

    def on_fill(self, fill: Fill) -> Output:
        """A fill of an order on a product this strategy trades (positions already updated)."""
        return None


def targets_of(out: Output) -> list[Target]:
    """A handler's output as a list of :class:`Target` (validated: finite weights in 0..1)."""
    if out is None:
        return []
    if isinstance(out, Target):
        items = [out]
    elif isinstance(out, Mapping):
        items = [Target(str(p), float(w)) for p, w in out.items()]
    else:
        items = list(out)
    for t in items:
        if not isinstance(t, Target):
            raise TypeError(f"a strategy handler returned {type(t).__name__}, not a Target")
        if not 0.0 <= t.weight <= 1.0:  # also refuses NaN
            raise ValueError(f"target weight of {t.product} must be in [0, 1], got {t.weight}")
    return items


def params_of(cls: type[Strategy[Any]], raw: Any) -> msgspec.Struct:
    """``raw`` converted to ``cls.Params`` (msgspec.ValidationError when it does not fit)."""
    return msgspec.convert(raw if raw is not None else {}, cls.Params)
