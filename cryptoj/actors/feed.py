"""FeedActor: turns a market-data source into market events for the other actors.

In this version the source is a recorded replay (:class:`ReplaySource`); the live Coinbase
websocket plugs in behind the same actor. The source object lives outside the actor, like the
network: a restarted FeedActor resumes from where the source is (events while it was down are
missed, as on a real reconnect). Each batch (all events sharing one timestamp) gets its own
correlation id, so the trace can follow everything one market update caused.

One set of marks: a batch's quotes reach each quote subscriber as **one** message
(:class:`~cryptoj.models.market.QuoteBatch`; a single quote as the ``Quote`` itself), so the
portfolio applies every quote of a timestamp before it values, trades or reports anything on
it. On the live push path quotes arrive one at a time: each is its own batch, and the
portfolio values every product at its latest quote on each of them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal
from itertools import groupby
from typing import Any

from cryptoj.contract import Actor, Context
from cryptoj.marketdata.aggregation import TickBarAggregator, usable, usable_quote
from cryptoj.models.market import (
    Bar,
    FeedFinished,
    FeedStatus,
    MarketEvent,
    Quote,
    QuoteBatch,
    Trade,
)
from cryptoj.models.system import Tick
from cryptoj.strategies.history import MarketHistory

POLL = Tick(kind="poll")
_Q8 = Decimal("0.00000001")


class ReplaySource:
    """Recorded batches of market events with a cursor that survives FeedActor restarts.

    Products the data has no quotes for (bar-only data such as 4h candles, or trade ticks) get
    a **modelled** quote so the portfolio can mark and the paper venue can fill. Such quotes
    carry ``derived=True`` and are never presented as recorded data:

    * from a bar: bid/ask at ``close × (1 ∓ bar_spread_bps / 20,000)`` with
      ``bar_depth_fraction × volume`` on each side;
    * from trades: one quote per batch at the last trade price ``× (1 ∓ bar_spread_bps /
      20,000)`` with the batch's traded volume on each side.

    ``window_ns > 0`` merges consecutive timestamps into windows of that length (one feed step
    per window instead of per timestamp): used for tick data.
    """

    def __init__(
        self,
        batches: Sequence[tuple[MarketEvent, ...]],
        *,
        bar_spread_bps: float = 10.0,
        bar_depth_fraction: float = 0.05,
        window_ns: int = 0,
    ) -> None:
        if window_ns > 0:
            batches = [
                tuple(e for b in group for e in b)
                for _, group in groupby(batches, key=lambda b: b[0].ts // window_ns)
            ]
        self.batches = batches
        self.cursor = 0
        self.emitted = 0
        self.half_spread = Decimal(repr(bar_spread_bps)) / Decimal(20_000)
        self._bid_factor, self._ask_factor = 1 - self.half_spread, 1 + self.half_spread
        #: product -> (price, bid, ask) of its last modelled quote
        self._touch: dict[str, tuple[Decimal, Decimal, Decimal]] = {}
        self.depth_fraction = Decimal(repr(bar_depth_fraction))
        quoted = {e.product for b in batches for e in b if isinstance(e, Quote)}
        every = {e.product for b in batches for e in b}
        self.unquoted = frozenset(every - quoted)

    def derive_quote(self, bar: Bar) -> Quote:
        """The modelled quote of a bar of an unquoted product (see the class docstring)."""
        size = max(_Q8, (bar.volume * self.depth_fraction).quantize(_Q8))
        return self._quote(bar.ts, bar.product, bar.close, size)

    def quote_from_trades(self, last: Trade, volume: Decimal) -> Quote:
        """The modelled quote after a batch of trades (see the class docstring)."""
        return self._quote(last.ts, last.product, last.price, volume if volume > _Q8 else _Q8)

    def _quote(self, ts: int, product: str, price: Decimal, size: Decimal) -> Quote:
        touch = self._touch.get(product)
        if touch is None or touch[0] != price:  # the same price gives the same bid and ask
            bid = (price * self._bid_factor).quantize(_Q8)
            touch = self._touch[product] = (price, bid, (price * self._ask_factor).quantize(_Q8))
        return Quote(
            ts=ts,
            product=product,
            derived=True,
            bid=touch[1],
            bid_size=size,
            ask=touch[2],
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
        """Time of the next batch's last event (it is emitted then), or None at the end."""
        return self.batches[self.cursor][-1].ts if self.cursor < len(self.batches) else None

    @property
    def first_ts(self) -> int:
        """Timestamp of the first event (0 for a live source without recorded batches)."""
        return self.batches[0][0].ts if self.batches else 0

    @property
    def last_ts(self) -> int:
        """Timestamp of the last event (0 without recorded batches)."""
        return self.batches[-1][-1].ts if self.batches else 0


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
        status_subscribers: tuple[str, ...] = ("shutdown", "execution"),
        tick_bar_size: int = 100,
        poll: bool = True,
        trade_subscribers: tuple[str, ...] = (),
        history: MarketHistory | None = None,
    ) -> None:
        """``status_subscribers``: besides the bar and quote subscribers, who hears the feed's
        health (the guardian; execution, whose split children wait while a product is stale);
        ``history``: where emitted events are recorded for the strategies' warm-up;
        ``trade_subscribers``: who gets every trade (besides the bars made of them)."""
        self.source = source
        self.trade_subscribers = trade_subscribers
        self.history = history
        self.quote_sink = quote_sink
        self.bar_subscribers = bar_subscribers
        self.quote_subscribers = quote_subscribers
        self.finished_to = finished_to
        self.status_subscribers = status_subscribers
        self.poll = poll  # False: events are pushed by a connection (live), not replayed
        self.bars = TickBarAggregator(
            tick_bar_size
        )  # derived state: a partial bar is lost on restart
        self.rejected = 0  # pushed quotes and trades with unusable values (dropped)
        # whether quotes and trades go anywhere but the bars (checked once, not per event)
        self._keep_quotes = history is not None and "quotes" in history.kinds
        self._trades_out = bool(trade_subscribers) or (
            history is not None and "trades" in history.kinds
        )

    def on_start(self, ctx: Context) -> None:
        """Schedule the first poll at the next batch's time (replay mode)."""
        if self.poll:
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
        self._process(batch, ctx)
        self._schedule_next(ctx)

    def _handle_trade(self, trade: Trade, ctx: Context) -> None:
        """A trade pushed by a connection (live push path): handled as a batch of one.

        The feed validates every value at the boundary; a trade that still has an unusable
        price or quantity is dropped here (counted), never aggregated."""
        if not usable(trade):
            self.rejected += 1
            return
        self._process((trade,), ctx, quotes_first=True)

    def _handle_quote(self, quote: Quote, ctx: Context) -> None:
        """A quote pushed by a connection (live push path); unusable values: dropped, counted."""
        if not usable_quote(quote):
            self.rejected += 1
            return
        self._process((quote,), ctx)

    def _handle_feed_status(self, msg: FeedStatus, ctx: Context) -> None:
        """Connection health (stale / recovered / degraded) to every consumer, the guardian and
        execution."""
        subscribers = (*self.bar_subscribers, *self.quote_subscribers, *self.status_subscribers)
        for name in dict.fromkeys(subscribers):
            ctx.send(name, msg)

    def _process(
        self, batch: tuple[MarketEvent, ...], ctx: Context, *, quotes_first: bool = False
    ) -> None:
        """Emit one batch. Its quotes (recorded, then modelled) go out together after the
        batch's bars; with ``quotes_first`` (the live push path) before them, so an order a
        bar's signal causes is priced at the quote of the same trade, not at the previous
        trade's."""
        corr = ctx.new_id("mkt")
        unquoted = self.source.unquoted
        quotes: list[Quote] = []
        derived: list[Quote] = []
        held: list[Bar] = []
        # the last trade and the traded volume of each unquoted product (its modelled quote)
        traded: dict[str, list[Any]] = {}
        add_trade, trades_out = self.bars.add_usable, self._trades_out
        for event in batch:  # trades first: a tick replay's batches hold nothing else
            bar: Bar | None
            if isinstance(event, Trade):
                if not usable(event):
                    self.rejected += 1
                    continue
                if trades_out:
                    self._emit_trade(event, corr, ctx)
                bar = add_trade(event)  # checked just above
                product = event.product
                if product in unquoted:
                    seen = traded.get(product)
                    if seen is None:
                        traded[product] = [event, event.quantity]
                    else:
                        seen[0] = event
                        seen[1] += event.quantity
                if bar is None:
                    continue
            elif isinstance(event, Quote):
                quotes.append(event)
                continue
            elif isinstance(event, Bar):
                bar = event
                if event.product in unquoted:
                    derived.append(self.source.derive_quote(event))
            else:
                continue
            if quotes_first:
                held.append(bar)
            else:
                self._emit_bar(bar, corr, ctx)
        for last, volume in traded.values():
            derived.append(self.source.quote_from_trades(last, volume))
        if derived:
            quotes += derived
        if quotes:
            self._emit_quotes(quotes, corr, ctx)
        for bar in held:
            self._emit_bar(bar, corr, ctx)

    def _emit_quotes(self, quotes: list[Quote], corr: str, ctx: Context) -> None:
        """The batch's quotes: to the venue one by one, to each subscriber as one message."""
        if self.quote_sink is not None:
            for quote in quotes:
                self.quote_sink(quote)
        if self._keep_quotes and self.history is not None:
            for quote in quotes:
                self.history.record(quote)
        msg: Quote | QuoteBatch = (
            quotes[0] if len(quotes) == 1 else QuoteBatch(ts=quotes[-1].ts, quotes=tuple(quotes))
        )
        for name in self.quote_subscribers:
            ctx.send(name, msg, correlation_id=corr)

    def _emit_trade(self, trade: Trade, corr: str, ctx: Context) -> None:
        if self.history is not None:
            self.history.record(trade)
        for name in self.trade_subscribers:
            ctx.send(name, trade, correlation_id=corr)

    def _emit_bar(self, bar: Bar, corr: str, ctx: Context) -> None:
        if self.history is not None:
            self.history.record(bar)
        for name in self.bar_subscribers:
            ctx.send(name, bar, correlation_id=corr)
