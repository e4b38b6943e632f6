"""The state every part of :class:`~.venue.CoinbaseVenue` shares, and its settings.

:class:`VenueCore` holds the REST clients, the trackers (:mod:`.trackers`), the reconciler,
the two locks and the per-order memory of submits and lookups; the parts of the venue
(:mod:`.placing`, :mod:`.resolving`, :mod:`.reconcile_steps`) are mixins over it, so they
share one object and its locks exactly as one class would.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

from loguru import logger

from cryptoj.adapters.coinbase.execution.background import Runner
from cryptoj.adapters.coinbase.execution.client import CoinbaseRestClient
from cryptoj.adapters.coinbase.execution.errors import AuthenticationFailed
from cryptoj.adapters.coinbase.execution.orders import OrderTracker
from cryptoj.adapters.coinbase.execution.quantize import OrderSpec, ProductRules
from cryptoj.adapters.coinbase.execution.reconcile import Call, Reconciler
from cryptoj.adapters.coinbase.execution.trackers import Trackers
from cryptoj.adapters.coinbase.execution.user_channel import UserChannel
from cryptoj.models.market import Quote
from cryptoj.models.orders import OrderAccepted, OrderRejected, SubmitOrder
from cryptoj.venues.base import ReconcileDiff

NS = 1_000_000_000

Outcome = tuple[Any, Exception | None]
"""A call's result, or the error it raised (:func:`run_call`)."""
CancelBack = tuple[dict[str, OrderTracker], Outcome, list[tuple[OrderTracker, Outcome]]]
"""A cancel made in the background: its targets by venue order id, the outcome of the cancel
call and of each target's lookup (:meth:`~.venue.CoinbaseVenue.cancel_later`)."""


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


class VenueCore:
    """The shared state of the venue (see the module docstring)."""

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
        canceller: CoinbaseRestClient | None = None,
        run_cancels: Runner | None = None,
    ) -> None:
        """``clock`` gives ns since the epoch (intent times are compared with it). ``reader``:
        a second client (its own connection) for the reads of reconciliation passes, so that
        an order never waits for one (default ``client``); ``run_calls``: where the stepwise
        passes make their calls (None: on the caller's thread; see
        :meth:`~.reconcile_steps.ReconcileSteps.reconcile`). ``canceller`` and
        ``run_cancels``: the same for the calls of the actor's cancels (default ``client``;
        None: cancels are made on the caller's thread; see
        :meth:`~.venue.CoinbaseVenue.cancel_later`)."""
        self.client = client
        self.reader = reader or client
        self.canceller = canceller or client
        self.run_cancels = run_cancels
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
        # orders of an earlier process whose create outcome is unknown, as journalled (track)
        self._journalled: dict[str, SubmitOrder] = {}
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
        # cancels handed over by cancel_later and back: (targets, cancel outcome, lookups)
        self._cancels_back: list[CancelBack] = []

    @property
    def _counts(self) -> dict[str, int]:
        return self.trackers.counts

    def _auth_failed(self, e: AuthenticationFailed) -> None:
        self._counts["auth_failures"] += 1
        self._auth_error = str(e)
        logger.error("coinbase: authentication failed: {}", e)


def run_call(call: Call) -> Outcome:
    """``call``'s result, or the error it raised (handed to the thread that applies it)."""
    try:
        return call(), None
    except Exception as e:
        return None, e
