"""Settling an order whose create outcome is unknown, or that an earlier process journalled.

Resolving after a restart
    The actor registers every journalled PENDING/OPEN order
    (:meth:`~.venue.CoinbaseVenue.track`) with the journal's booked fills as the tracker's
    baseline, so fills are only derived beyond what is booked, and, for a PENDING order
    without a venue id (create outcome unknown), the order as journalled before it was sent.
    :meth:`resolve` looks a PENDING order up by ``client_order_id``: found → adopted (same
    fill ids as before the restart); absent → sent again under the same id while the intent
    is younger than ``absent_grace_s`` -- this process's own request, or the journalled order
    of an earlier process (counted ``resent_after_restart``), never one whose cancel was
    requested (:func:`~cryptoj.execution.records.resendable_order`; in this process, a cancel
    of an order without a venue id). Coinbase creates at most one
    order per ``client_order_id`` and answers a repeated id with the original order, so
    whichever of the two requests commits first is the order and the other cannot create a
    second one: an acceptance settles the outcome at once. A refusal does not (an earlier
    request of the id may still commit), nor does a create whose outcome is unknown again.
    Otherwise UNKNOWN until ``absent_grace_s`` have passed since the intent **and** since the
    last create request may have left (this process's last try; for an order of an earlier
    process that this one did not send again, this venue's creation, since that process is
    gone, or ``absent_grace_s`` after the intent, if earlier: no request is sent later), then
    ABSENT (the actor rejects it: "never reached the venue"). The read may run on the
    background runner's thread (:meth:`lookup_later`; the next :meth:`resolve` applies it on
    the caller's thread): absence is judged as of when the read began. So a request is never
    sent later than ``absent_grace_s`` after its intent, and an order is not declared absent
    while a request of it may still be committed (assumed: Coinbase commits a request within
    ``absent_grace_s`` of receiving it, or never). Declaring it absent earlier let the
    portfolio plan the same trade again while the first request was still to commit: the
    position at twice its target once both filled. Waiting out that period after a start
    holds the order's product that long; sending it again settles it within one create. (The
    PortfolioActor rolls an unfinished transaction back after a restart, asking to cancel
    every leg it sent: those orders, and their split children, are waited for.)
"""

from __future__ import annotations

import functools

from loguru import logger

from cryptoj.adapters.coinbase.execution.errors import AuthenticationFailed, CoinbaseError
from cryptoj.adapters.coinbase.execution.orders import OrderTracker
from cryptoj.adapters.coinbase.execution.placing import OrderPlacing
from cryptoj.adapters.coinbase.execution.quantize import OrderSpec, QuantizeError
from cryptoj.adapters.coinbase.execution.reconcile import Call
from cryptoj.adapters.coinbase.execution.venue_core import NS, run_call
from cryptoj.models.orders import OrderOutcomeUnknown, VenueCallDone
from cryptoj.venues.base import Resolution


class OrderResolving(OrderPlacing):
    """Resolving (see the module docstring)."""

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
        outcome = run_call(call)
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
                self._journalled.pop(coid, None)
                return Resolution.FOUND, f"found at Coinbase: {t.view().status}"
            young = self.clock() - t.created_ts < self.settings.absent_grace_s * NS
            spec = self._specs.get(coid) or (self._journalled_spec(t) if young else None)
            if spec is not None and young:  # the same request again, under the same id
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

    def _journalled_spec(self, t: OrderTracker) -> OrderSpec | None:
        """The quantised spec of an earlier process's order as journalled (this process then
        holds its request), or None: not journalled whole, or it cannot be sent now (then its
        absence is waited for as before)."""
        coid = t.client_order_id
        order = self._journalled.get(coid)
        if order is None:
            return None
        try:
            spec = self._quantized(self.spec_for(order))
        except AuthenticationFailed as e:
            self._auth_failed(e)
            raise
        except CoinbaseError as e:  # the product's rules cannot be read now: the next resolve
            logger.warning("coinbase: {} not sent again yet ({})", coid, e)
            return None
        except QuantizeError as e:
            del self._journalled[coid]
            logger.warning("coinbase: {} cannot be sent again ({}): waiting", coid, e)
            return None
        del self._journalled[coid]
        self._specs[coid] = spec
        self._counts["resent_after_restart"] += 1
        logger.info("coinbase: {} of an earlier process: sent again, same id", coid)
        return spec

    def _last_send_ns(self, t: OrderTracker) -> int:
        """When ``t``'s last create request may have left: this process's last try, else (an
        order of an earlier process) no later than this venue's creation, nor than
        ``absent_grace_s`` after the intent (a request is never sent later than that)."""
        sent = self._sent_ns.get(t.client_order_id)
        if sent is not None:
            return sent
        grace_ns = int(self.settings.absent_grace_s * NS)
        return max(t.created_ts, min(self._born_ns, t.created_ts + grace_ns))
