"""Coinbase Advanced Trade execution: the venue the ExecutionActor trades through in ``mode: live``.

Layout (pure modules first; only ``client``, ``user_channel`` and ``venue`` do I/O):

================  ==============================================================================
``errors``        classification of every REST failure and the retry decision; the exceptions;
                  redaction of secrets from every message
``ratelimit``     the client-side token bucket (injected clock), paused by rate-limit headers
``quantize``      product rules, rounding to increments, minimums/maximums, the order body
``keys``          trading credentials: key file permissions, ES256 / Ed25519 key validation
``schemas``       lenient msgspec shapes of the REST bodies and user-channel frames
``orders``        the order state machine: cumulative reports → fill deltas, no regression
``trackers``      every order's tracker and the event outbox, under one lock
``client``        :class:`CoinbaseRestClient` on the SDK's RESTClient (timeouts, retries, TLS)
``background``    the runner that makes reconciliation and lookup reads off the actor's thread
``reconcile``     a reconciliation pass over REST (open orders, fills, tracked orders)
``user_channel``  the ``user`` websocket: sans-I/O session and its websocket-client thread
``venue``         :class:`CoinbaseVenue`: the ExecutionVenue / ReconcilingVenue for the actors,
                  made of ``venue_core`` (shared state, settings), ``placing`` (submits),
                  ``resolving`` (unknown outcomes, journalled orders) and ``reconcile_steps``
                  (whole or stepwise reconciliation passes)
================  ==============================================================================

:func:`build_venue` makes the venue from the config's ``coinbase`` section; the README section
"Live trading on Coinbase" lists every error class and what the daemon does about it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from cryptoj.adapters.coinbase.execution.errors import (
    AuthenticationFailed,
    CoinbaseError,
    OutcomeUnknown,
    RetryPolicy,
)
from cryptoj.adapters.coinbase.execution.keys import load_trading_credentials
from cryptoj.adapters.coinbase.execution.venue import CoinbaseVenue, VenueSettings
from cryptoj.adapters.coinbase.jwt_auth import Credentials, CredentialsError

if TYPE_CHECKING:
    from cryptoj.config import CoinbaseConfig


def build_venue(
    cfg: CoinbaseConfig,
    credentials: Credentials,
    *,
    seed: int | None = None,
    clock: Callable[[], int] = time.time_ns,
    sleep: Callable[[float], None] = time.sleep,
) -> CoinbaseVenue:
    """The venue the ``coinbase`` config section describes (nothing is contacted yet)."""
    return CoinbaseVenue.connect(
        cfg.rest_url,
        credentials,
        ca_file=cfg.ca_file,
        user_ws_url=cfg.user_ws_url,
        timeout_s=cfg.timeout_s,
        rate_per_s=cfg.rate_limit_per_s,
        burst=cfg.rate_limit_burst,
        policy=RetryPolicy(
            max_attempts=cfg.max_attempts,
            backoff_min_s=cfg.backoff_min_s,
            backoff_max_s=cfg.backoff_max_s,
        ),
        settings=VenueSettings(
            quote_currency=cfg.quote_currency,
            reconcile_interval_s=cfg.reconcile_interval_s,
            outcome_retry_s=cfg.outcome_retry_s,
            absent_grace_s=cfg.absent_grace_s,
            lookup_window_s=cfg.lookup_window_s,
            place_attempts=cfg.place_attempts,
        ),
        user_stale_s=cfg.user_stale_s,
        clock=clock,
        sleep=sleep,
        seed=seed,
    )


__all__ = [
    "AuthenticationFailed",
    "CoinbaseError",
    "CoinbaseVenue",
    "Credentials",
    "CredentialsError",
    "OutcomeUnknown",
    "RetryPolicy",
    "VenueSettings",
    "build_venue",
    "load_trading_credentials",
]
