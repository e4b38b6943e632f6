"""Submitting an order to Coinbase: product rules, the order spec, creates under one id.

Submitting (:meth:`~.venue.CoinbaseVenue.submit`)
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
      ``stop_sent_at_market`` event), so a stop-loss exit is not lost; and except after a try
      whose outcome is unknown: that request may still be committed, so a refusal of a later
      one leaves the outcome unknown (see below);
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
"""

from __future__ import annotations

import functools
from typing import Any

from loguru import logger

from cryptoj.adapters.coinbase.execution.client import Accepted, CoinbaseRestClient
from cryptoj.adapters.coinbase.execution.errors import (
    AuthenticationFailed,
    CoinbaseError,
    OutcomeUnknown,
)
from cryptoj.adapters.coinbase.execution.orders import OrderTracker
from cryptoj.adapters.coinbase.execution.quantize import (
    OrderSpec,
    ProductRules,
    QuantizeError,
    quantize,
)
from cryptoj.adapters.coinbase.execution.reconcile import Call, rest_update
from cryptoj.adapters.coinbase.execution.venue_core import NS, VenueCore
from cryptoj.models.orders import (
    OrderAccepted,
    OrderOutcomeUnknown,
    OrderRejected,
    OrderType,
    SubmitOrder,
)
from cryptoj.venues.base import Resolution

_KINDS = {"market": OrderType.MARKET, "limit": OrderType.LIMIT, "stop_limit": OrderType.STOP_LIMIT}


class OrderPlacing(VenueCore):
    """Submitting (see the module docstring); the lookups it shares with :mod:`.resolving`."""

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

    def _quantized(self, spec: OrderSpec) -> OrderSpec:
        """``spec`` quantised to its product's rules (QuantizeError, or the client's errors when
        the rules cannot be read)."""
        book = self._quotes.get(spec.product)
        reference = book.mid if book else None
        return quantize(spec, self._rules_for(spec.product), reference_price=reference)

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
                spec = self._quantized(spec)
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
            if uncertain:  # refused, but an earlier request of this id may still commit
                last = f"{last}; then refused: {out.reason}" if last else f"refused: {out.reason}"
                break
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


STOP_CROSSED_REASONS = (
    "PREVIEW_STOP_PRICE_ABOVE_LAST_TRADE_PRICE",
    "PREVIEW_STOP_PRICE_BELOW_LAST_TRADE_PRICE",
)


def stop_already_crossed(reason: str) -> bool:
    """True when Coinbase refused a stop order because the last trade has already crossed its
    stop (a sell STOP_DOWN at or above the last trade, a buy STOP_UP at or below it)."""
    return any(r in reason for r in STOP_CROSSED_REASONS)
