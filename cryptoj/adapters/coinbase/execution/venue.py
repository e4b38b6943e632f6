"""CoinbaseVenue: the ExecutionVenue (and ReconcilingVenue) for Coinbase Advanced Trade.

The ExecutionActor uses it exactly like the paper venue: ``submit`` returns OrderAccepted or
OrderRejected (or :class:`~cryptoj.models.OrderOutcomeUnknown`, see below), and fills, closes
and acceptances are pushed through the listener. Every order has one
:class:`~.orders.OrderTracker` (the pure state machine: cumulative reports → fill deltas with
deterministic ids, states never regress), fed by three sources under one lock: the create
response, the user channel (:mod:`.user_channel`) and REST reads (lookups, reconciliation).

The venue is one object made of parts, each in its own module: its shared state and settings
(:mod:`.venue_core`), submitting (:mod:`.placing`), resolving unknown outcomes and journalled
orders (:mod:`.resolving`) and reconciliation passes (:mod:`.reconcile_steps`); this module
adds connecting, the lifecycle, the user channel's callbacks, cancels and the queries.

Emergency flatten support (``BookVenue``): ``on_quote`` keeps the last quote per product (the
feed is the market-data side), ``levels`` is that top of book, ``available``/``balances`` read
``GET /accounts``.

Threads: REST calls are serialised by the client; the trackers and the event outbox are under
one lock (:mod:`.trackers`), events are delivered after it is released, in order; multi-step
operations (submit, resolve, reconcile, cancel) are serialised by a second lock, so the
ExecutionActor and the ShutdownActor can share the venue. The listener must not block.

Counters (:meth:`counters`): ``submits``, ``accepted``, ``rejected``, ``local_rejects``,
``not_sent``, ``outcome_unknown`` (create tries whose outcome was unknown),
``unknown_outcomes`` (orders that had one), ``unknown_outcomes_resolved``,
``unknown_outcomes_pending``, ``submit_unresolved`` (submits that returned OrderOutcomeUnknown),
``resends``, ``lookups``, ``reconciles``, ``reconcile_errors``, ``reconcile_diffs``,
``untracked``, ``settled_skipped`` (fills of orders the journal has settled, not looked up
again), ``absent``, ``fills``, ``closes``, ``user_updates``, ``user_ignored``
(duplicate/stale/replayed reports), ``user_unmatched``, ``user_lives``, ``user_gaps``,
``anomalies``, ``cancels``, ``cancel_failures``, ``auth_failures``, ``stops_at_market``,
``resent_after_restart`` (orders of an earlier process sent again under their id), and the
REST client's ``rest_requests``, ``rest_retries``, ``rest_fault_<kind>``, ``rest_throttled``.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable
from decimal import Decimal

from cryptoj.adapters.coinbase.execution.background import CallRunner, Runner
from cryptoj.adapters.coinbase.execution.client import CoinbaseRestClient
from cryptoj.adapters.coinbase.execution.errors import (
    AuthenticationFailed,
    CoinbaseError,
    RetryPolicy,
    redact,
)
from cryptoj.adapters.coinbase.execution.orders import OrderTracker, OrderUpdate, OrderView
from cryptoj.adapters.coinbase.execution.placing import STOP_CROSSED_REASONS, stop_already_crossed
from cryptoj.adapters.coinbase.execution.ratelimit import TokenBucket
from cryptoj.adapters.coinbase.execution.reconcile import Call, rest_update
from cryptoj.adapters.coinbase.execution.reconcile_steps import ReconcileSteps
from cryptoj.adapters.coinbase.execution.resolving import OrderResolving
from cryptoj.adapters.coinbase.execution.schemas import dec
from cryptoj.adapters.coinbase.execution.trackers import COUNTERS, Listener
from cryptoj.adapters.coinbase.execution.user_channel import UserChannel
from cryptoj.adapters.coinbase.execution.venue_core import NS, Outcome, VenueSettings, run_call
from cryptoj.adapters.coinbase.jwt_auth import Credentials, ws_jwt_factory
from cryptoj.models.market import Quote
from cryptoj.models.orders import Fill, ReconcileVenue, Side, VenueCallDone
from cryptoj.venues.base import TrackedOrder


class CoinbaseVenue(OrderResolving, ReconcileSteps):
    """See the module docstring."""

    @classmethod
    def connect(
        cls,
        rest_url: str,
        credentials: Credentials,
        *,
        ca_file: str | None = None,
        user_ws_url: str | None = None,
        timeout_s: float = 10.0,
        rate_per_s: float = 25.0,
        burst: int = 10,
        policy: RetryPolicy | None = None,
        settings: VenueSettings | None = None,
        user_stale_s: float = 10.0,
        clock: Callable[[], int] = time.time_ns,
        monotonic: Callable[[], int] = time.monotonic_ns,
        sleep: Callable[[float], None] = time.sleep,
        seed: int | None = None,
        run_calls: Runner | None = None,
        run_cancels: Runner | None = None,
    ) -> CoinbaseVenue:
        """A venue on three new REST clients (orders; reconciliation reads; the actor's
        cancels) sharing one rate limit, a :class:`~.background.CallRunner` for the reads of
        stepwise passes and lookups (or ``run_calls``), another for the cancels (or
        ``run_cancels``; default ``run_calls`` when that is given), and a user channel when
        ``user_ws_url`` is given.

        Nothing is contacted until :meth:`start` or the first call.
        """
        rng = random.Random(seed)
        limiter = TokenBucket(rate_per_s, burst, monotonic)

        def rest_client(r: random.Random) -> CoinbaseRestClient:
            return CoinbaseRestClient(
                rest_url,
                credentials,
                ca_file=ca_file,
                timeout_s=timeout_s,
                policy=policy,
                limiter=limiter,
                sleep=sleep,
                wall=lambda: clock() / NS,
                rng=r,
            )

        venue = cls(
            rest_client(rng),
            settings=settings,
            clock=clock,
            sleep=sleep,
            rng=rng,
            reader=rest_client(random.Random(rng.random())),
            run_calls=run_calls or CallRunner(),
        )
        if user_ws_url:
            venue.user_channel = UserChannel(
                user_ws_url,
                _safe_jwt(ws_jwt_factory(credentials), credentials),
                on_updates=venue.trackers.on_user_updates,
                on_live=venue.on_user_live,
                on_gap=venue.on_user_gap,
                ca_file=ca_file,
                connect_timeout_s=timeout_s,
                stale_after_s=user_stale_s,
                rng=random.Random(rng.random()),
            )
        venue.canceller = rest_client(random.Random(rng.random()))
        venue.run_cancels = run_cancels or run_calls or CallRunner("coinbase-cancel")
        return venue

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the user channel (if configured)."""
        if self.user_channel is not None and not self.user_channel.is_alive():
            self.user_channel.start()

    def stop(self) -> None:
        """Stop the user channel and the background runner."""
        if self.user_channel is not None:
            self.user_channel.stop()
        for runner in (self.run_calls, self.run_cancels):
            if isinstance(runner, CallRunner):
                runner.stop()

    @property
    def reconcile_interval_ns(self) -> int:
        """How often the actor reconciles (``reconcile_interval_s``)."""
        return int(self.settings.reconcile_interval_s * NS)

    @property
    def outcome_retry_ns(self) -> int:
        """How soon an unknown outcome is looked up again (``outcome_retry_s``)."""
        return int(self.settings.outcome_retry_s * NS)

    @property
    def quote_currency(self) -> str:
        """The account's cash currency."""
        return self.settings.quote_currency

    def set_listener(self, fn: Listener | None) -> None:
        """Where fills, closes, acceptances and reconcile requests go (after this call)."""
        self.trackers.set_listener(fn)

    def track(self, order: TrackedOrder) -> None:
        """Register a journalled order (see :class:`~cryptoj.venues.base.ReconcilingVenue`);
        the order itself is kept while its create outcome is unknown (:mod:`.resolving`)."""
        self.trackers.track(order)
        if order.order is not None and self.trackers.is_unknown(order.client_order_id):
            with self._op_lock:
                self._journalled[order.client_order_id] = order.order

    def take_notes(self) -> list[tuple[str, str, str]]:
        """Unknown outcomes and their settlement since the last call (for the journal)."""
        return self.trackers.take_notes()

    # -- user channel callbacks (user-channel thread) ----------------------------------------

    def on_user_updates(self, updates: list[OrderUpdate]) -> None:
        """Apply user-channel reports (see :meth:`.trackers.Trackers.on_user_updates`)."""
        self.trackers.on_user_updates(updates)

    def on_user_live(self, lives: int) -> None:
        """The user channel (re)subscribed: ask the actor to reconcile over REST."""
        self._counts["user_lives"] += 1
        word = "connected" if lives == 1 else f"reconnected (connection {lives})"
        self.trackers.emit([ReconcileVenue(ts=self.clock(), reason=f"user channel {word}")])
        self.trackers.deliver()

    def on_user_gap(self) -> None:
        """A sequence gap on the user channel: something may be missing; reconcile."""
        self._counts["user_gaps"] += 1
        self.trackers.emit([ReconcileVenue(ts=self.clock(), reason="user channel sequence gap")])
        self.trackers.deliver()

    # -- cancel ------------------------------------------------------------------------------

    def cancel(self, client_order_id: str, ts: int) -> bool:
        """Cancel one accepted, open order here; True if Coinbase accepted the cancel."""
        return client_order_id in self._cancel([client_order_id])

    def cancel_all(self, ts: int) -> list[str]:
        """Cancel every accepted order this venue tracks that is not terminal, here."""
        return self._cancel(self._open_ids())

    def cancel_later(self, client_order_ids: list[str] | None = None) -> bool:
        """Hand the cancel of these orders (None: every open one) to the cancels' background
        runner and connection, so that no order waits for it: the cancel call, then a lookup
        of each order (its final state; after a cancel whose outcome is unknown too). A
        :class:`~cryptoj.models.VenueCallDone` with ``call="cancel"`` follows when they are
        back, and :meth:`cancels_back` applies them on the caller's thread. False when there
        is no runner: :meth:`cancel` must be called instead."""
        if self.run_cancels is None:
            return False
        coids = self._open_ids() if client_order_ids is None else client_order_ids
        targets = self._cancel_targets(coids)
        if targets:
            reads = [(t, self._lookup_call(t, self.canceller)) for t in targets.values()]
            cancel = functools.partial(self.canceller.cancel_orders, list(targets))
            self.run_cancels(functools.partial(self._background_cancel, targets, cancel, reads))
        return True

    def cancels_back(self) -> list[str]:
        """Apply the cancels handed over by :meth:`cancel_later` that are back (their states
        and fills go through the listener); the orders whose cancel Coinbase accepted."""
        with self._calls_lock:
            back, self._cancels_back = self._cancels_back, []
        done: list[str] = []
        with self._op_lock:
            try:
                for targets, outcome, reads in back:
                    done += self._cancel_applied(targets, outcome, reads)
            finally:
                self.trackers.deliver()
        return done

    def _open_ids(self) -> list[str]:
        return [v.client_order_id for v in self.trackers.open_views()]

    def _cancel_targets(self, coids: list[str]) -> dict[str, OrderTracker]:
        """The accepted, open orders among ``coids``, by venue order id (counted as cancels).
        One whose create outcome is unknown cannot be cancelled yet: it is no longer sent
        again (:mod:`.resolving`), only found or waited for."""
        targets: dict[str, OrderTracker] = {}
        for c in coids:
            t = self.trackers.get(c)
            if t is not None and t.venue_order_id and not t.terminal:
                targets[t.venue_order_id] = t
            elif t is not None and not t.terminal:  # outcome unknown: never sent again
                self._specs.pop(c, None)
                self._journalled.pop(c, None)
        self._counts["cancels"] += len(targets)
        return targets

    def _background_cancel(
        self, targets: dict[str, OrderTracker], cancel: Call, reads: list[tuple[OrderTracker, Call]]
    ) -> None:
        """On the cancels' runner thread: the cancel, then the lookups; keep their outcomes and
        wake the actor."""
        outcome = run_call(cancel)
        looked = [(t, run_call(read)) for t, read in reads]
        with self._calls_lock:
            self._cancels_back.append((targets, outcome, looked))
        self.trackers.emit([VenueCallDone(ts=self.clock(), call="cancel")])
        self.trackers.deliver()

    def _cancel(self, coids: list[str]) -> list[str]:
        """Cancel here: the cancel call, and when it is answered a lookup of each order."""
        targets = self._cancel_targets(coids)
        if not targets:
            return []
        with self._op_lock:
            try:
                outcome = run_call(functools.partial(self.client.cancel_orders, list(targets)))
                looked = []
                if outcome[1] is None:
                    looked = [
                        (t, run_call(self._lookup_call(t, self.client))) for t in targets.values()
                    ]
                return self._cancel_applied(targets, outcome, looked)
            finally:
                self.trackers.deliver()

    def _cancel_applied(
        self,
        targets: dict[str, OrderTracker],
        outcome: Outcome,
        looked: list[tuple[OrderTracker, Outcome]],
    ) -> list[str]:
        """Count a cancel's outcome and apply its lookups (the CANCELLED, or FILLED, state);
        the orders whose cancel Coinbase accepted. A failed call (not an authentication
        failure) is left to the user channel or the next reconciliation."""
        results, error = outcome
        _raise_unless_coinbase(self, error)
        ok = {r.order_id for r in results or () if r.success and r.order_id}
        self._counts["cancel_failures"] += len(targets) - len(ok)
        for t, (o, e) in looked:
            _raise_unless_coinbase(self, e)
            if e is None:
                self._apply_lookup(t, o)
        return [t.client_order_id for vid, t in targets.items() if vid in ok]

    # -- queries -----------------------------------------------------------------------------

    def get_order(self, client_order_id: str) -> OrderView | None:
        """The tracked order (None when untracked, or PENDING and not yet confirmed)."""
        return self.trackers.view(client_order_id)

    def open_orders(self) -> list[OrderView]:
        """Accepted orders that are not terminal."""
        return self.trackers.open_views()

    def fills_for(self, client_order_id: str) -> tuple[Fill, ...]:
        """The fills this process derived for one order."""
        return self.trackers.fills_for(client_order_id)

    def all_fills(self) -> tuple[Fill, ...]:
        """Every fill this process derived, per order in tracking order."""
        return self.trackers.all_fills()

    def unknown_outcomes(self) -> list[str]:
        """Client order ids whose create outcome is still unknown."""
        return self.trackers.unknown()

    def balances(self) -> dict[str, Decimal]:
        """Total (available + hold) per currency, from ``GET /accounts``."""
        out: dict[str, Decimal] = {}
        for a in self.client.accounts():
            if not a.currency:
                continue
            avail = dec(a.available_balance.value) if a.available_balance else None
            hold = dec(a.hold.value) if a.hold else None
            out[a.currency] = out.get(a.currency, Decimal(0)) + (avail or 0) + (hold or 0)
        return out

    def available(self, currency: str) -> Decimal:
        """Available (not held) balance of ``currency``."""
        total = Decimal(0)
        for a in self.client.accounts():
            if a.currency == currency and a.available_balance is not None:
                total += dec(a.available_balance.value) or 0
        return total

    def on_quote(self, q: Quote) -> None:
        """Keep the last quote of each product (the feed's quote sink)."""
        prev = self._quotes.get(q.product)
        if prev is None or q.ts >= prev.ts:
            self._quotes[q.product] = q

    def last_quote(self, product: str) -> Quote | None:
        """The last quote the feed delivered for ``product``."""
        return self._quotes.get(product)

    def levels(self, product: str, side: Side) -> list[tuple[Decimal, Decimal]]:
        """The top of book on the side an order on ``side`` takes from (one level)."""
        q = self.last_quote(product)
        if q is None:
            return []
        return [(q.ask, q.ask_size)] if side is Side.BUY else [(q.bid, q.bid_size)]

    def ping(self) -> None:
        """Raise when the venue is not usable (authentication failed, user channel down 30s+)."""
        if self._auth_error:
            raise RuntimeError(f"authentication failed: {self._auth_error}")
        uc = self.user_channel
        if uc is not None and uc.down_since_ns is not None:
            down_s = (self.clock() - uc.down_since_ns) / NS
            if down_s > 30:
                raise RuntimeError(
                    f"user channel down for {down_s:.0f}s ({uc.last_reason or 'connecting'})"
                )

    def counters(self) -> dict[str, int]:
        """Every counter (see the module docstring)."""
        out = self.trackers.counters()
        clients = {id(c): c for c in (self.client, self.reader, self.canceller)}
        for c in clients.values():
            for k, v in dict(c.stats).items():  # a copy: REST threads may add keys
                out[f"rest_{k}"] = out.get(f"rest_{k}", 0) + v
        out["rest_throttled"] = self.client.limiter.throttled
        if self.user_channel is not None:
            out["user_connects"] = self.user_channel.connects
        return out


def _raise_unless_coinbase(venue: CoinbaseVenue, error: Exception | None) -> None:
    """Re-raise a call's error unless it is a :class:`CoinbaseError` the caller may ignore (an
    authentication failure is recorded first)."""
    if isinstance(error, AuthenticationFailed):
        venue._auth_failed(error)
        raise error
    if error is not None and not isinstance(error, CoinbaseError):
        raise error


def _safe_jwt(make: Callable[[], str | None], credentials: Credentials) -> Callable[[], str | None]:
    """``make`` whose failures never carry the key (a websocket JWT per subscribe)."""

    def jwt() -> str | None:
        try:
            return make()
        except Exception as e:
            text = redact(f"cannot sign a websocket JWT: {type(e).__name__}", [credentials.secret])
            raise AuthenticationFailed(text) from None

    return jwt


__all__ = [
    "COUNTERS",
    "STOP_CROSSED_REASONS",
    "CoinbaseVenue",
    "VenueSettings",
    "rest_update",
    "stop_already_crossed",
]
