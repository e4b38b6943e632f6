"""One full reconciliation of the tracked orders with Coinbase over REST (the venue wins).

:class:`Reconciler` runs on start, after every user-channel (re)connect or sequence gap, and on
an interval (the ExecutionActor decides when). One pass:

1. lists every OPEN order at Coinbase and applies each to its tracker;
2. lists the fills since the last ``sequence_timestamp`` seen (the first pass starts at the time
   the actor gives: the oldest open journalled order or the newest journalled fill), and re-reads
   every order those fills belong to unless step 1 already refreshed it, it is terminal, or
   nobody tracks it and the journal has it settled (terminal with every fill booked: the
   actor's ``settled`` check), so a restart does not look up orders it finished long ago;
3. re-reads every accepted tracked order that is still not terminal and was not refreshed by
   1 or 2 (it closed without a fill while nobody listened, e.g. cancelled or expired);
4. PENDING orders whose create outcome is unknown are left to ``CoinbaseVenue.resolve``.

Every event a report causes (a missed acceptance, fill or close) goes to the listener as usual
and is also returned as a :class:`~cryptoj.venues.base.ReconcileDiff` for the journal. Orders at
Coinbase that no tracker knows are reported once as ``untracked`` (the actor adopts them when
the journal knows their id; anything else, e.g. an order placed by hand, is left alone). An
accepted order that Coinbase no longer knows is reported as ``absent``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Generator
from typing import Any

from cryptoj.adapters.coinbase.execution.client import CoinbaseRestClient, rfc3339_seconds
from cryptoj.adapters.coinbase.execution.orders import OrderTracker, OrderUpdate
from cryptoj.adapters.coinbase.execution.schemas import RestFill, RestOrder, dec, reason_text
from cryptoj.adapters.coinbase.execution.trackers import Trackers
from cryptoj.adapters.coinbase.parse import rfc3339_ns
from cryptoj.models.base import Message
from cryptoj.models.orders import Fill, OrderAccepted, OrderClosed
from cryptoj.venues.base import ReconcileDiff

NS = 1_000_000_000

Call = Callable[[], Any]
"""One REST call of a reconciliation pass, ready to run (see :meth:`Reconciler.steps`)."""


def rest_update(o: RestOrder, source: str) -> OrderUpdate:
    """A REST order as an :class:`OrderUpdate`."""
    return OrderUpdate(
        venue_order_id=o.order_id or "",
        client_order_id=o.client_order_id or "",
        status=(o.status or "").upper(),
        filled_size=dec(o.filled_size),
        filled_value=dec(o.filled_value),
        total_fees=dec(o.total_fees),
        average_price=dec(o.average_filled_price),
        reason=reason_text(o.reject_reason, o.reject_message, o.cancel_message),
        source=source,
    )


def diffs_of(t: OrderTracker, events: list[Message]) -> list[ReconcileDiff]:
    """The differences a report's events stand for."""
    out = []
    for ev in events:
        if isinstance(ev, OrderAccepted):
            kind, detail = "accepted", f"venue order {ev.venue_order_id}"
        elif isinstance(ev, Fill):
            kind, detail = "fill", f"{ev.fill_id}: {ev.quantity} at {ev.price}, fee {ev.fee}"
        elif isinstance(ev, OrderClosed):
            kind, detail = "status", f"{ev.status} at {ev.filled_quantity}"
        else:
            continue
        out.append(
            ReconcileDiff(
                kind=kind,
                client_order_id=t.client_order_id,
                venue_order_id=t.venue_order_id or "",
                product=t.product,
                detail=detail,
            )
        )
    return out


class Reconciler:
    """Runs reconciliation passes (see the module docstring); remembers the fills cursor."""

    def __init__(
        self,
        client: CoinbaseRestClient,
        trackers: Trackers,
        clock: Callable[[], int],
        *,
        lookback_s: float = 600.0,
    ) -> None:
        self.client = client
        self.trackers = trackers
        self.clock = clock
        self.lookback_s = lookback_s
        self.fills_cursor: str | None = None
        self._cursor_ns = -1
        self._reported: set[str] = set()

    def run(
        self,
        diffs: list[ReconcileDiff],
        since_ns: int | None = None,
        settled: Callable[[str], bool] | None = None,
    ) -> None:
        """One whole pass, its calls made here; differences are appended to ``diffs`` as they
        are found (so a pass that fails half way still reports what it applied). Raises the
        client's errors."""
        steps = self.steps(diffs, since_ns, settled)
        result: Any = None
        try:
            while True:
                result = steps.send(result)()
        except StopIteration:
            return

    def steps(
        self,
        diffs: list[ReconcileDiff],
        since_ns: int | None = None,
        settled: Callable[[str], bool] | None = None,
    ) -> Generator[Call, Any, None]:
        """One pass as a coroutine: it yields each REST call to make (a :data:`Call`, to run on
        any thread) and is sent the call's result; it applies what the venue said on the
        thread that drives it. So a caller can spread a pass over several messages, with the
        I/O elsewhere (new orders and cancels go out in between).

        Differences are appended to ``diffs`` as they are found. Between two calls other
        threads may apply reports to the trackers: every step works from the trackers' state
        at that moment (states never regress).
        """
        refreshed: set[str] = set()
        since = self.fills_cursor or rfc3339_seconds(
            since_ns if since_ns is not None else self.clock() - int(self.lookback_s * NS)
        )
        client = self.client
        for o in (yield lambda: client.list_orders(statuses=["OPEN"])):
            self._take(o, diffs, refreshed)
        for vid in self._filled_order_ids((yield lambda: client.list_fills(since=since))):
            t = self.trackers.for_venue_id(vid)
            if t is not None and (t.client_order_id in refreshed or t.terminal):
                continue
            if t is None and settled is not None and settled(vid):
                self.trackers.counts["settled_skipped"] += 1
                continue
            found = yield functools.partial(client.get_order, vid)
            if found is not None:
                self._take(found, diffs, refreshed)
        for t in self.trackers.live():
            if not t.accepted or t.client_order_id in refreshed or t.terminal:
                continue  # PENDING with an unknown outcome: CoinbaseVenue.resolve handles it
            current = yield functools.partial(client.get_order, t.venue_order_id or "")
            if current is None:
                self.trackers.counts["absent"] += 1
                diffs.append(
                    ReconcileDiff(
                        kind="absent",
                        client_order_id=t.client_order_id,
                        venue_order_id=t.venue_order_id or "",
                        product=t.product,
                        detail="accepted earlier, now unknown to Coinbase",
                    )
                )
                continue
            self._take(current, diffs, refreshed)

    def _filled_order_ids(self, fills: list[RestFill]) -> list[str]:
        """The order ids of ``fills`` (first seen first); moves the fills cursor on."""
        order_ids: list[str] = []
        for f in fills:
            if f.sequence_timestamp:
                try:
                    seq_ns = rfc3339_ns(f.sequence_timestamp)
                except ValueError:
                    seq_ns = -1
                if seq_ns > self._cursor_ns:
                    self._cursor_ns = seq_ns
                    self.fills_cursor = f.sequence_timestamp
            if f.order_id and f.order_id not in order_ids:
                order_ids.append(f.order_id)
        return order_ids

    def _take(self, o: RestOrder, diffs: list[ReconcileDiff], refreshed: set[str]) -> None:
        u = rest_update(o, "reconcile")
        t = self.trackers.for_update(u)
        if t is None:
            key = u.client_order_id or u.venue_order_id
            if key and key not in self._reported:
                self._reported.add(key)
                self.trackers.counts["untracked"] += 1
                diffs.append(
                    ReconcileDiff(
                        kind="untracked",
                        client_order_id=u.client_order_id,
                        venue_order_id=u.venue_order_id,
                        product=o.product_id or "",
                        detail=f"{o.status} at Coinbase, filled {o.filled_size}",
                    )
                )
            return
        refreshed.add(t.client_order_id)
        diffs.extend(diffs_of(t, self.trackers.apply(t, u)))


__all__ = ["Call", "Reconciler", "diffs_of", "rest_update"]
