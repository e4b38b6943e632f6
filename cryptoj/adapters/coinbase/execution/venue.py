"""CoinbaseVenue: the ExecutionVenue (and ReconcilingVenue) for Coinbase Advanced Trade.

The ExecutionActor uses it exactly like the paper venue: ``submit`` returns OrderAccepted or
OrderRejected (or :class:`~cryptoj.models.OrderOutcomeUnknown`, see below), and fills, closes
and acceptances are pushed through the listener. Every order has one
:class:`~.orders.OrderTracker` (the pure state machine: cumulative reports → fill deltas with
deterministic ids, states never regress), fed by three sources under one lock: the create
response, the user channel (:mod:`.user_channel`) and REST reads (lookups, reconciliation).

Submitting (:meth:`CoinbaseVenue.submit`)
    The order becomes an :class:`~.quantize.OrderSpec` (MARKET → market IOC by base size, or a
    limit IOC at its ``max_price`` when it has one: a buy capped at its reservation; LIMIT
    → limit GTC with ``post_only``, STOP_LIMIT → stop-limit GTC), is quantised to the product's
    rules (fetched once per ``product_ttl_s``) and refused locally if it cannot be sent. Its
    tracker exists **before** the request leaves, so a user-channel OPEN that overtakes the
    create response is matched by ``client_order_id``. Then up to ``place_attempts`` creates
    under the **same** ``client_order_id`` (the journal already holds it):

    * ``success: true`` → OrderAccepted; ``success: false`` or HTTP 4xx → OrderRejected with
      Coinbase's reason -- except a stop-limit refused because the last trade has already
      crossed its stop (``PREVIEW_STOP_PRICE_{ABOVE,BELOW}_LAST_TRADE_PRICE``): the stop has
      fired, so it is sent at once as a market IOC of the same base size under the same
      ``client_order_id`` (counted ``stops_at_market``, journalled as a
      ``stop_sent_at_market`` event), so a stop-loss exit is not lost;
    * 429 / connect failures are retried inside the client (nothing was processed); if they
      persist and no earlier try may have been processed → OrderRejected ("not sent");
    * after anything that may have been processed (5xx, timeout, dropped connection,
      unreadable body) the outcome is **unknown**: the order is looked up by
      ``client_order_id`` (GET by order id when known, else ``list_orders`` of the product
      from ``lookup_window_s`` before the intent). Found → accepted (and its fills booked).
      Certainly absent → the next try re-sends the same id (Coinbase answers a repeated id
      with the original order, so this cannot duplicate). Still unknown after the last try →
      :class:`~cryptoj.models.OrderOutcomeUnknown`: the order stays PENDING, and the actor calls
      :meth:`resolve` every ``outcome_retry_s`` until it is settled.
    * A 401 after the retry with a fresh JWT (or a 403) raises
      :class:`~.errors.AuthenticationFailed` (the actor crashes; supervision escalates).

Resolving after a restart
    The actor registers every journalled PENDING/OPEN order (:meth:`track`) with the journal's
    booked fills as the tracker's baseline, so fills are only derived beyond what is booked.
    :meth:`resolve` looks a PENDING order up by ``client_order_id``: found → adopted (same
    fill ids as before the restart); absent → re-sent under the same id while the intent is
    younger than ``absent_grace_s`` and this process still holds the request; otherwise
    UNKNOWN until ``absent_grace_s`` have passed since the intent **and** since the last
    create request may have left (this process's last try; for an order of an earlier process,
    this venue's creation, since that process is gone, or ``absent_grace_s`` after the intent,
    if earlier: no request is sent later), then ABSENT (the actor rejects it:
    "never reached the venue"). The read may run on the background runner's thread
    (:meth:`lookup_later`; the next :meth:`resolve` applies it on the caller's thread):
    absence is judged as of when the read began. So a request is never sent later than
    ``absent_grace_s`` after its intent, a request of a previous process never again, and an
    order is not declared absent while a request of it may still be committed (assumed:
    Coinbase commits a request within ``absent_grace_s`` of receiving it, or never). Declaring
    it absent earlier let the portfolio plan the same trade again while the first request was
    still to commit: the position at twice its target once both filled.

Reconciling (:meth:`reconcile`: on start, after every user-channel (re)connect or sequence
gap, and every ``reconcile_interval_s``)
    :mod:`.reconcile`: open orders, fills since the last seen one, every tracked order that is
    not terminal; differences are applied (the venue wins) and returned for the journal. With
    ``max_calls`` a pass goes on one REST call at a time (the ExecutionActor's steps), the
    operation lock held per call, so submits and cancels go out between two calls.

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
``anomalies``, ``cancels``, ``cancel_failures``, ``auth_failures``, ``stops_at_market``, and
the REST client's ``rest_requests``, ``rest_retries``, ``rest_fault_<kind>``,
``rest_throttled``.
"""

from __future__ import annotations

import functools
import random
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from loguru import logger

from cryptoj.adapters.coinbase.execution.background import CallRunner, Runner
from cryptoj.adapters.coinbase.execution.client import Accepted, CoinbaseRestClient
from cryptoj.adapters.coinbase.execution.errors import (
    AuthenticationFailed,
    CoinbaseError,
    OutcomeUnknown,
    RetryPolicy,
    redact,
)
from cryptoj.adapters.coinbase.execution.orders import OrderTracker, OrderUpdate, OrderView
from cryptoj.adapters.coinbase.execution.quantize import (
    OrderSpec,
    ProductRules,
    QuantizeError,
    quantize,
)
from cryptoj.adapters.coinbase.execution.ratelimit import TokenBucket
from cryptoj.adapters.coinbase.execution.reconcile import Call, Reconciler, rest_update
from cryptoj.adapters.coinbase.execution.schemas import dec
from cryptoj.adapters.coinbase.execution.trackers import COUNTERS, Listener, Trackers
from cryptoj.adapters.coinbase.execution.user_channel import UserChannel
from cryptoj.adapters.coinbase.jwt_auth import Credentials, ws_jwt_factory
from cryptoj.models.market import Quote
from cryptoj.models.orders import (
    Fill,
    OrderAccepted,
    OrderOutcomeUnknown,
    OrderRejected,
    OrderType,
    ReconcileVenue,
    Side,
    SubmitOrder,
    VenueCallDone,
)
from cryptoj.venues.base import ReconcileDiff, ReconcileReport, Resolution, TrackedOrder

NS = 1_000_000_000
_KINDS = {"market": OrderType.MARKET, "limit": OrderType.LIMIT, "stop_limit": OrderType.STOP_LIMIT}


@dataclass(frozen=True)
class VenueSettings:
    """Behaviour of the venue (all from the config's ``coinbase`` section)."""

    quote_currency: str = "USD"
    reconcile_interval_s: float = 60.0
    outcome_retry_s: float = 5.0
    absent_grace_s: float = 60.0
    lookup_window_s: float = 600.0
    place_attempts: int = 3
    product_ttl_s: float = 3600.0
    refresh_after_market: bool = True

    def __post_init__(self) -> None:
        if self.place_attempts < 1:
            raise ValueError("place_attempts: expected at least 1")
        for name in ("reconcile_interval_s", "outcome_retry_s", "product_ttl_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}: expected > 0")


class CoinbaseVenue:
    """See the module docstring."""

    def __init__(
        self,
        client: CoinbaseRestClient,
        *,
        settings: VenueSettings | None = None,
        clock: Callable[[], int] = time.time_ns,
        sleep: Callable[[float], None] | None = None,
        rng: random.Random | None = None,
        reader: CoinbaseRestClient | None = None,
        run_calls: Runner | None = None,
    ) -> None:
        """``clock`` gives ns since the epoch (intent times are compared with it). ``reader``:
        a second client (its own connection) for the reads of reconciliation passes, so that
        an order never waits for one (default ``client``); ``run_calls``: where the stepwise
        passes make their calls (None: on the caller's thread; see :meth:`reconcile`)."""
        self.client = client
        self.reader = reader or client
        self.settings = settings or VenueSettings()
        self.clock = clock
        self.sleep = sleep or client.sleep
        self.rng = rng or random.Random()
        self.user_channel: UserChannel | None = None
        self.trackers = Trackers(clock)
        self.reconciler = Reconciler(
            self.reader, self.trackers, clock, lookback_s=self.settings.lookup_window_s
        )
        self._op_lock = threading.RLock()  # multi-step operations (submit, resolve, reconcile)
        self._specs: dict[str, OrderSpec] = {}
        self._results: dict[str, OrderAccepted | OrderRejected] = {}
        self._quotes: dict[str, Quote] = {}
        self._rules: dict[str, tuple[ProductRules, int]] = {}
        self._auth_error = ""
        self._born_ns = clock()  # a request of an earlier process was sent before this
        self._sent_ns: dict[str, int] = {}  # client order id → when its last create left
        # the reconciliation pass in progress, stepwise (see reconcile); its call in flight
        self.run_calls = run_calls
        self._pass: Generator[Call, Any, None] | None = None
        self._pass_diffs: list[ReconcileDiff] = []
        self._pass_id = 0
        self._calls_lock = threading.Lock()
        self._inflight = False
        self._outcome: tuple[Any, Exception | None] | None = None
        # lookups handed over by lookup_later: client order id → (read began, outcome)
        self._looked_up: dict[str, tuple[int, tuple[Any, Exception | None]]] = {}

    @property
    def _counts(self) -> dict[str, int]:
        return self.trackers.counts

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
    ) -> CoinbaseVenue:
        """A venue on two new REST clients (orders; reconciliation reads) sharing one rate
        limit, a :class:`~.background.CallRunner` for the reads of stepwise passes (or
        ``run_calls``), and a user channel when ``user_ws_url`` is given.

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
        if isinstance(self.run_calls, CallRunner):
            self.run_calls.stop()

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
        """Register a journalled order (see :class:`~cryptoj.venues.base.ReconcilingVenue`)."""
        self.trackers.track(order)

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

    # -- submit ------------------------------------------------------------------------------

    def _rules_for(self, product: str) -> ProductRules:
        now = self.clock()
        cached = self._rules.get(product)
        if cached is not None and now - cached[1] < self.settings.product_ttl_s * NS:
            return cached[0]
        rules = self.client.product(product)
        self._rules[product] = (rules, now)
        return rules

    def product_rules(self, product: str) -> ProductRules | None:
        """``product``'s trading rules (cached for ``product_ttl_s``), or None when they cannot
        be read now (the ExecutionActor then sends an order whole instead of splitting it)."""
        try:
            with self._op_lock:
                return self._rules_for(product)
        except AuthenticationFailed as e:
            self._auth_failed(e)
            raise
        except CoinbaseError:
            return None

    @staticmethod
    def spec_for(order: SubmitOrder) -> OrderSpec:
        """The (not yet quantised) spec of a SubmitOrder; QuantizeError for what cannot map."""
        kinds = {v: k for k, v in _KINDS.items()}
        kind = kinds.get(order.order_type)
        if kind is None:
            raise QuantizeError(f"unsupported order type {order.order_type!r}")
        return OrderSpec(
            client_order_id=order.client_order_id,
            product=order.product,
            side=order.side,
            kind=kind,  # type: ignore[arg-type]
            base_size=order.quantity,
            limit_price=order.limit_price,
            stop_price=order.stop_price,
            post_only=order.post_only,
            max_price=order.max_price,
        )

    def submit(
        self, order: SubmitOrder, ts: int
    ) -> OrderAccepted | OrderRejected | OrderOutcomeUnknown:
        """Place ``order`` (see *Submitting* in the module docstring); idempotent on its id."""
        try:
            spec = self.spec_for(order)
        except QuantizeError as e:
            with self._op_lock:
                coid, product = order.client_order_id, order.product
                return self._refuse(coid, product, ts, f"not sent: {e}", local=True)
        return self.submit_spec(spec, ts)

    def submit_spec(
        self, spec: OrderSpec, ts: int
    ) -> OrderAccepted | OrderRejected | OrderOutcomeUnknown:
        """Place any :class:`OrderSpec` (e.g. a market BUY by quote size); like :meth:`submit`."""
        coid = spec.client_order_id
        with self._op_lock:
            previous = self._results.get(coid)
            if previous is not None:
                return previous
            t = self.trackers.get(coid)
            if t is not None and t.venue_order_id:
                return OrderAccepted(ts=ts, client_order_id=coid, venue_order_id=t.venue_order_id)
            self._counts["submits"] += 1
            try:
                rules = self._rules_for(spec.product)
                book = self._quotes.get(spec.product)
                spec = quantize(spec, rules, reference_price=book.mid if book else None)
            except QuantizeError as e:
                return self._refuse(coid, spec.product, ts, f"not sent: {e}", local=True)
            except AuthenticationFailed as e:
                self._auth_failed(e)
                raise
            except CoinbaseError as e:
                reason = f"not sent: product rules unavailable: {e}"
                return self._refuse(coid, spec.product, ts, reason, local=True)
            if t is None:
                t = self.trackers.add(
                    OrderTracker(
                        client_order_id=coid,
                        product=spec.product,
                        side=spec.side,
                        order_type=_KINDS[spec.kind],
                        created_ts=ts,
                        post_only=spec.post_only,
                    )
                )
            self._specs[coid] = spec
            try:
                result = self._place(t, spec, ts)
            finally:
                self.trackers.deliver()
            if isinstance(result, OrderOutcomeUnknown):
                self._counts["submit_unresolved"] += 1
            else:
                self._results[coid] = result
            self._after_place(t, self._specs.get(coid, spec), result)
            return result

    def _after_place(
        self, t: OrderTracker, spec: OrderSpec, result: OrderAccepted | OrderRejected | object
    ) -> None:
        """A market order is over within milliseconds: read its fills now (one GET)."""
        if (
            isinstance(result, OrderAccepted)
            and spec.kind == "market"
            and self.settings.refresh_after_market
        ):
            self._refresh_quietly(t)

    def _refuse(
        self, coid: str, product: str, ts: int, reason: str, local: bool = False
    ) -> OrderRejected:
        t = self.trackers.get(coid)
        if t is not None:
            with self.trackers.lock:
                t.refuse(reason, ts)
        self.trackers.resolved(coid, f"refused: {reason}")
        self._counts["local_rejects" if local else "rejected"] += 1
        result = OrderRejected(ts=ts, client_order_id=coid, product=product, reason=reason)
        self._results[coid] = result
        return result

    def _place(
        self, t: OrderTracker, spec: OrderSpec, ts: int
    ) -> OrderAccepted | OrderRejected | OrderOutcomeUnknown:
        """Create under ``spec.client_order_id``, looking it up after unknown outcomes."""
        coid = t.client_order_id
        uncertain = self.trackers.is_unknown(coid)
        last = ""
        attempts = self.settings.place_attempts
        for attempt in range(1, attempts + 1):
            if attempt > 1:
                self._counts["resends"] += 1
            self._sent_ns[coid] = self.clock()
            try:
                out = self.client.create_order(spec)
            except OutcomeUnknown as e:
                self._counts["outcome_unknown"] += 1
                uncertain, last = True, str(e)
                self.trackers.mark_unknown(coid, str(e))
                logger.warning("coinbase: {} (try {}): {}; looking it up", coid, attempt, e)
                try:
                    found = self._lookup(t)
                except AuthenticationFailed as auth:
                    self._auth_failed(auth)
                    raise
                except CoinbaseError as lookup_error:
                    last = f"{last}; lookup failed: {lookup_error}"
                    found = Resolution.UNKNOWN
                if found is Resolution.FOUND:
                    logger.info("coinbase: {} found by client_order_id: accepted", coid)
                    return self._accepted(t, ts)
                if attempt < attempts:
                    logger.info("coinbase: {} not at Coinbase: sending it again, same id", coid)
                    self.sleep(self.client.policy.backoff_s(attempt, self.rng.random()))
                continue
            except AuthenticationFailed as e:
                self._auth_failed(e)
                raise
            except CoinbaseError as e:
                last = str(e)
                if uncertain:
                    break  # an earlier try may have created it: never call it rejected
                self._counts["not_sent"] += 1
                return self._refuse(coid, spec.product, ts, f"not sent: {e}")
            if isinstance(out, Accepted):
                self.trackers.learn_id(t, out.order_id)
                return self._accepted(t, ts)
            if spec.kind == "stop_limit" and stop_already_crossed(out.reason):
                return self._place(t, self._stop_at_market(t, spec, out.reason), ts)
            return self._refuse(coid, spec.product, ts, out.reason)
        reason = last or "outcome unknown"
        logger.warning(
            "coinbase: {} outcome still unknown after {} tries: {}", coid, attempts, reason
        )
        return OrderOutcomeUnknown(ts=ts, client_order_id=coid, product=spec.product, reason=reason)

    def _stop_at_market(self, t: OrderTracker, spec: OrderSpec, reason: str) -> OrderSpec:
        """Coinbase refused a stop-limit whose stop the last trade has already crossed (nothing
        was created): the stop has fired, so the order goes out now as a market IOC of the same
        base size under the same ``client_order_id`` (a stop-loss exit is not lost)."""
        market = OrderSpec(
            client_order_id=spec.client_order_id,
            product=spec.product,
            side=spec.side,
            kind="market",
            base_size=spec.base_size,
        )
        self._specs[spec.client_order_id] = market
        with self.trackers.lock:
            t.order_type = OrderType.MARKET
        self._counts["stops_at_market"] += 1
        detail = f"stop {spec.stop_price} already crossed ({reason}): sent at market"
        self.trackers.note("stop_sent_at_market", spec.client_order_id, detail)
        logger.warning("coinbase: {}: {}", spec.client_order_id, detail)
        return market

    def _accepted(self, t: OrderTracker, ts: int) -> OrderAccepted:
        self._counts["accepted"] += 1
        vid = t.venue_order_id or ""
        return OrderAccepted(ts=ts, client_order_id=t.client_order_id, venue_order_id=vid)

    def _lookup(self, t: OrderTracker) -> Resolution:
        """Find ``t`` at Coinbase (by order id, else by client order id) and apply what is there."""
        return self._apply_lookup(t, self._lookup_call(t, self.client)())

    def _lookup_call(self, t: OrderTracker, client: CoinbaseRestClient) -> Call:
        """The read of :meth:`_lookup` on ``client`` (made later, maybe on another thread)."""
        self._counts["lookups"] += 1
        if t.venue_order_id:
            return functools.partial(client.get_order, t.venue_order_id)
        since = t.created_ts - int(self.settings.lookup_window_s * NS)
        return functools.partial(client.find_order, t.client_order_id, t.product, since)

    def _apply_lookup(self, t: OrderTracker, o: Any) -> Resolution:
        if o is None or not o.order_id:
            return Resolution.ABSENT
        self.trackers.apply(t, rest_update(o, "lookup"))
        return Resolution.FOUND

    def _last_send_ns(self, t: OrderTracker) -> int:
        """When ``t``'s last create request may have left: this process's last try, else (an
        order of an earlier process) no later than this venue's creation, nor than
        ``absent_grace_s`` after the intent (a request is never sent later than that)."""
        sent = self._sent_ns.get(t.client_order_id)
        if sent is not None:
            return sent
        grace_ns = int(self.settings.absent_grace_s * NS)
        return max(t.created_ts, min(self._born_ns, t.created_ts + grace_ns))

    def _refresh_quietly(self, t: OrderTracker) -> None:
        try:
            with self._op_lock:
                self._lookup(t)
        except AuthenticationFailed as e:
            self._auth_failed(e)
            raise
        except CoinbaseError:
            pass  # the user channel or the next reconciliation brings it
        finally:
            self.trackers.deliver()

    def _auth_failed(self, e: AuthenticationFailed) -> None:
        self._counts["auth_failures"] += 1
        self._auth_error = str(e)
        logger.error("coinbase: authentication failed: {}", e)

    # -- resolve and reconcile ---------------------------------------------------------------

    def lookup_later(self, client_order_id: str, *, force: bool = False) -> bool:
        """Hand the read :meth:`resolve` would make for ``client_order_id`` to the background
        runner (the reads' own connection). True when it was handed over: a
        :class:`~cryptoj.models.VenueCallDone` follows when it is back, and the next
        :meth:`resolve` of the order applies its result (on the caller's thread) instead of
        calling. False when nothing is to be read (untracked, or known and not ``force``) or
        there is no runner: :meth:`resolve` then reads on the caller's thread."""
        t = self.trackers.get(client_order_id)
        if self.run_calls is None or t is None:
            return False
        if not force and (t.accepted or t.terminal):
            return False
        call = self._lookup_call(t, self.reader)
        self.run_calls(functools.partial(self._background_lookup, t.client_order_id, call))
        return True

    def _background_lookup(self, client_order_id: str, call: Call) -> None:
        """On the runner's thread: read, keep the outcome with the time the read began."""
        began = self.clock()
        outcome = _run_call(call)
        with self._calls_lock:
            self._looked_up[client_order_id] = (began, outcome)
        self.trackers.emit([VenueCallDone(ts=self.clock())])
        self.trackers.deliver()

    def _read(self, t: OrderTracker) -> tuple[int, Resolution]:
        """The lookup of ``t`` handed over by :meth:`lookup_later` if it is back, else one made
        now; and when it began (what it did not find was absent then, not later)."""
        with self._calls_lock:
            kept = self._looked_up.pop(t.client_order_id, None)
        if kept is None:
            began = self.clock()
            return began, self._lookup(t)
        began, (o, error) = kept
        if error is not None:
            raise error
        return began, self._apply_lookup(t, o)

    def resolve(
        self, client_order_id: str, ts: int, *, force: bool = False
    ) -> tuple[Resolution, str]:
        """Settle one tracked order (see *Resolving after a restart*)."""
        coid = client_order_id
        with self._op_lock:
            t = self.trackers.get(coid)
            if t is None:
                return Resolution.ABSENT, "not tracked"
            pending = not t.accepted and not t.terminal
            if not pending and not force:
                return Resolution.FOUND, f"known: {t.view().status}"
            try:
                read_ns, found = self._read(t)
            except AuthenticationFailed as e:
                self._auth_failed(e)
                raise
            except CoinbaseError as e:
                return Resolution.UNKNOWN, f"lookup failed: {e}"
            finally:
                self.trackers.deliver()
            if found is Resolution.FOUND or not pending:
                return Resolution.FOUND, f"found at Coinbase: {t.view().status}"
            young = self.clock() - t.created_ts < self.settings.absent_grace_s * NS
            spec = self._specs.get(coid)
            if spec is not None and young:  # this process holds the request: same id again
                result = self._place(t, spec, ts)
                self.trackers.deliver()
                if isinstance(result, OrderOutcomeUnknown):
                    return Resolution.UNKNOWN, result.reason
                self._results[coid] = result
                self._after_place(t, self._specs.get(coid, spec), result)
                return Resolution.FOUND, f"sent again under the same id: {type(result).__name__}"
            age_ns = read_ns - t.created_ts  # absence counts from when the read began
            if age_ns < self.settings.absent_grace_s * NS:
                return Resolution.UNKNOWN, (
                    f"not at Coinbase yet ({age_ns / NS:.0f}s after the intent; absent is "
                    f"final after {self.settings.absent_grace_s:.0f}s)"
                )
            quiet_ns = read_ns - self._last_send_ns(t)
            if quiet_ns < self.settings.absent_grace_s * NS:  # a request may still commit
                return Resolution.UNKNOWN, (
                    f"not at Coinbase yet, but a request may be in flight ({quiet_ns / NS:.0f}s "
                    f"after the last possible send; absent is final after "
                    f"{self.settings.absent_grace_s:.0f}s)"
                )
            self.trackers.remove(coid)
            self._counts["absent"] += 1
            return Resolution.ABSENT, "not at Coinbase"

    def reconcile(
        self,
        ts: int,
        since_ns: int | None = None,
        settled: Callable[[str], bool] | None = None,
        *,
        max_calls: int | None = None,
        new_pass: bool = True,
    ) -> ReconcileReport:
        """Run :class:`~.reconcile.Reconciler` (see *Reconciling*).

        Without ``max_calls``: a whole pass, here. With it, one step of a pass (a new one when
        ``new_pass`` or none is under way): what the last call brought is applied; then, with
        a background runner, the next call is handed to it and the report says ``waiting``
        (a :class:`~cryptoj.models.VenueCallDone` follows when it is back); without one, up to
        ``max_calls`` calls are made here. ``done`` says whether the pass ended."""
        if max_calls is None:
            diffs: list[ReconcileDiff] = []
            self._counts["reconciles"] += 1
            with self._op_lock:
                try:
                    self.reconciler.run(diffs, since_ns, settled)
                except AuthenticationFailed as e:
                    self._auth_failed(e)
                    raise
                except CoinbaseError as e:
                    self._counts["reconcile_errors"] += 1
                    return self._reconcile_report(diffs, error=str(e))
                finally:
                    self.trackers.deliver()
            return self._reconcile_report(diffs)
        if new_pass or self._pass is None:
            self._counts["reconciles"] += 1
            self._pass_diffs = []
            self._pass = self.reconciler.steps(self._pass_diffs, since_ns, settled)
            with self._calls_lock:
                self._pass_id += 1
                self._inflight, self._outcome = False, None
        return self._pass_step(max_calls)

    def _pass_step(self, max_calls: int) -> ReconcileReport:
        assert self._pass is not None
        steps, diffs, reported = self._pass, self._pass_diffs, len(self._pass_diffs)
        try:
            for _ in range(max_calls):
                with self._calls_lock:
                    if self._inflight:
                        break
                    outcome, self._outcome = self._outcome, None
                result, error = outcome if outcome is not None else (None, None)
                if error is not None:
                    raise error
                with self._op_lock:
                    call = steps.send(result)
                if self.run_calls is None:
                    self._outcome = _run_call(call)
                    continue
                with self._calls_lock:
                    self._inflight = True
                self.run_calls(functools.partial(self._background_call, self._pass_id, call))
                break
        except StopIteration:
            self._pass = None
        except AuthenticationFailed as e:
            self._pass = None
            self._auth_failed(e)
            raise
        except CoinbaseError as e:
            self._pass = None
            self._counts["reconcile_errors"] += 1
            return self._reconcile_report(diffs[reported:], error=str(e))
        finally:
            self.trackers.deliver()
        with self._calls_lock:
            waiting = self._pass is not None and self._inflight
        return self._reconcile_report(diffs[reported:], done=self._pass is None, waiting=waiting)

    def _background_call(self, pass_id: int, call: Call) -> None:
        """On the runner's thread: make one call, keep its outcome, wake the actor."""
        outcome = _run_call(call)
        with self._calls_lock:
            if pass_id != self._pass_id:
                return  # a pass that was dropped for a new one
            self._outcome, self._inflight = outcome, False
        self.trackers.emit([VenueCallDone(ts=self.clock())])
        self.trackers.deliver()

    def _reconcile_report(
        self,
        diffs: list[ReconcileDiff],
        *,
        error: str = "",
        done: bool = True,
        waiting: bool = False,
    ) -> ReconcileReport:
        self._counts["reconcile_diffs"] += len(diffs)
        return ReconcileReport(diffs=tuple(diffs), error=error, done=done, waiting=waiting)

    # -- cancel ------------------------------------------------------------------------------

    def cancel(self, client_order_id: str, ts: int) -> bool:
        """Cancel one accepted, open order; True if Coinbase accepted the cancel."""
        return client_order_id in self._cancel([client_order_id])

    def cancel_all(self, ts: int) -> list[str]:
        """Cancel every accepted order this venue tracks that is not terminal."""
        return self._cancel([v.client_order_id for v in self.trackers.open_views()])

    def _cancel(self, coids: list[str]) -> list[str]:
        targets: dict[str, OrderTracker] = {}
        for c in coids:
            t = self.trackers.get(c)
            if t is not None and t.venue_order_id and not t.terminal:
                targets[t.venue_order_id] = t
        if not targets:
            return []
        self._counts["cancels"] += len(targets)
        done: list[str] = []
        with self._op_lock:
            try:
                results = self.client.cancel_orders(list(targets))
            except AuthenticationFailed as e:
                self._auth_failed(e)
                raise
            except CoinbaseError:
                self._counts["cancel_failures"] += len(targets)
                return []
            ok = {r.order_id for r in results if r.success and r.order_id}
            self._counts["cancel_failures"] += len(targets) - len(ok)
            for vid, t in targets.items():
                if vid in ok:
                    done.append(t.client_order_id)
                try:
                    self._lookup(t)  # bring the CANCELLED (or FILLED) state in now
                except AuthenticationFailed as e:
                    self._auth_failed(e)
                    raise
                except CoinbaseError:
                    pass  # the user channel or the next reconciliation brings it
        self.trackers.deliver()
        return done

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
        readers = (self.client,) if self.reader is self.client else (self.client, self.reader)
        for c in readers:
            for k, v in dict(c.stats).items():  # a copy: REST threads may add keys
                out[f"rest_{k}"] = out.get(f"rest_{k}", 0) + v
        out["rest_throttled"] = self.client.limiter.throttled
        if self.user_channel is not None:
            out["user_connects"] = self.user_channel.connects
        return out


def _run_call(call: Call) -> tuple[Any, Exception | None]:
    """``call``'s result, or the error it raised (handed to the thread that applies it)."""
    try:
        return call(), None
    except Exception as e:
        return None, e


STOP_CROSSED_REASONS = (
    "PREVIEW_STOP_PRICE_ABOVE_LAST_TRADE_PRICE",
    "PREVIEW_STOP_PRICE_BELOW_LAST_TRADE_PRICE",
)


def stop_already_crossed(reason: str) -> bool:
    """True when Coinbase refused a stop order because the last trade has already crossed its
    stop (a sell STOP_DOWN at or above the last trade, a buy STOP_UP at or below it)."""
    return any(r in reason for r in STOP_CROSSED_REASONS)


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
