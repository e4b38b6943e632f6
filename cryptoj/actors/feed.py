"""FeedActor: turns a market-data source into market events for the other actors.

In this version the source is a recorded replay (:class:`ReplaySource`); the live Coinbase
websocket plugs in behind the same actor. The source object lives outside the actor, like the
network: a restarted FeedActor resumes from where the source is (events while it was down are
missed, as on a real reconnect). Each batch (all events sharing one timestamp) gets its own
correlation id, so the trace can follow everything one market update caused.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal

from cryptoj.actors.base import Actor, Context
from cryptoj.models.market import Bar, FeedFinished, MarketEvent, Quote
from cryptoj.models.system import Tick

POLL = Tick(kind="poll")
_Q8 = Decimal("0.00000001")


class ReplaySource:
    """Recorded batches of market events with a cursor that survives FeedActor restarts.

    For products the data has no quotes for (bar-only data such as 4h candles), a quote is
    modelled from each bar so the portfolio can mark and the paper venue can fill: bid/ask at
    ``close × (1 ∓ bar_spread_bps / 20,000)`` with ``bar_depth_fraction × volume`` on each side
    (at least one base increment). Such quotes carry ``derived=True`` and are never presented as
    recorded data.
    """

    def __init__(
        self,
        batches: Sequence[tuple[MarketEvent, ...]],
        *,
        bar_spread_bps: float = 10.0,
        bar_depth_fraction: float = 0.05,
    ) -> None:
        self.batches = batches
        self.cursor = 0
        self.emitted = 0
        self.half_spread = Decimal(repr(bar_spread_bps)) / Decimal(20_000)
        self.depth_fraction = Decimal(repr(bar_depth_fraction))
        quoted = {e.product for b in batches for e in b if isinstance(e, Quote)}
        barred = {e.product for b in batches for e in b if isinstance(e, Bar)}
        self.bar_only = frozenset(barred - quoted)

    def derive_quote(self, bar: Bar) -> Quote:
        """The modelled quote of a bar-only product (see the class docstring)."""
        size = max(Decimal("0.00000001"), (bar.volume * self.depth_fraction).quantize(_Q8))
        return Quote(
            ts=bar.ts,
            product=bar.product,
            derived=True,
            bid=(bar.close * (1 - self.half_spread)).quantize(_Q8),
            bid_size=size,
            ask=(bar.close * (1 + self.half_spread)).quantize(_Q8),
            ask_size=size,
        )

    def next_batch(self) -> tuple[MarketEvent, ...] | None:
        """The next batch, or None at the end."""
        if self.cursor >= len(self.batches):
            return None
        batch = self.batches[self.cursor]
        self.cursor += 1
        self.emitted += len(batch)
        return batch

    def peek_ts(self) -> int | None:
        """Timestamp of the next batch, or None at the end."""
        return self.batches[self.cursor][0].ts if self.cursor < len(self.batches) else None

    @property
    def first_ts(self) -> int:
        """Timestamp of the first batch."""
        return self.batches[0][0].ts

    @property
    def last_ts(self) -> int:
        """Timestamp of the last batch."""
        return self.batches[-1][0].ts


class FeedActor(Actor):
    """Emits market events: bars to strategy and risk, quotes to portfolio (and the venue)."""

    kind = "feed"

    def __init__(
        self,
        source: ReplaySource,
        *,
        quote_sink: Callable[[Quote], None] | None = None,
        bar_subscribers: tuple[str, ...] = ("strategy", "risk"),
        quote_subscribers: tuple[str, ...] = ("portfolio",),
        finished_to: str = "shutdown",
    ) -> None:
        self.source = source
        self.quote_sink = quote_sink
        self.bar_subscribers = bar_subscribers
        self.quote_subscribers = quote_subscribers
        self.finished_to = finished_to

    def on_start(self, ctx: Context) -> None:
        """Schedule the first poll at the next batch's time."""
        self._schedule_next(ctx)

    def _schedule_next(self, ctx: Context) -> None:
        ts = self.source.peek_ts()
        if ts is None:
            ctx.send(self.finished_to, FeedFinished(ts=ctx.now(), events=self.source.emitted))
        else:
            ctx.schedule(ts - ctx.now(), POLL)

    def _handle_tick(self, msg: Tick, ctx: Context) -> None:
        batch = self.source.next_batch()
        if batch is None:
            return
        corr = ctx.new_id("mkt")
        if self.source.bar_only:
            batch = batch + tuple(
                self.source.derive_quote(e)
                for e in batch
                if isinstance(e, Bar) and e.product in self.source.bar_only
            )
        for event in batch:
            if isinstance(event, Quote):
                if self.quote_sink is not None:
                    self.quote_sink(event)
                for name in self.quote_subscribers:
                    ctx.send(name, event, correlation_id=corr)
            elif isinstance(event, Bar):
                for name in self.bar_subscribers:
                    ctx.send(name, event, correlation_id=corr)
        self._schedule_next(ctx)
