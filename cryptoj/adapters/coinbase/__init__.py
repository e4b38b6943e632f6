"""Coinbase Advanced Trade market-data websocket client.

Layout (pure modules first; only ``connection`` and ``manager`` run threads or do I/O):

============== ==============================================================================
``config``     :class:`CoinbaseFeedConfig` (the ``feed.coinbase`` config section), sharding
``schemas``    msgspec wire types: data frames as a tagged union on ``channel``, REST bodies
``parse``      frame decoding (error / unknown / malformed frames), timestamps, conversions
``book``       level2 order book (absolute quantities, ``offer`` side), digest
``sequence``   ``sequence_num`` tracking with a reorder window and gap detection
``session``    the sans-I/O protocol engine of one connection (subscribe, watchdogs, resync)
``policy``     reconnect backoff with jitter and max retries, connection-rate limit, history
``circuit``    circuit breaker per websocket host
``conflate``   delivery backlog with per-product quote conflation
``buffer``     bounded on-disk ring of raw frames and its reader
``stats``      latency statistics
``rest``       public REST reads (trade backfill, best bid/ask polling)
``jwt_auth``   credentials and a fresh websocket JWT per subscribe
``connection`` one websocket-client thread per connection shard
``manager``    :class:`CoinbaseFeed`: shards, failover, REST fallback, delivery callback
``replay``     feed a recorded raw-frame buffer through the same sessions offline
``fake/``      the local fake exchange (a test and development tool, see ``tools/``)
============== ==============================================================================

The daemon builds the feed with :func:`build_feed` and points the callback at the FeedActor.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from cryptoj.adapters.coinbase.conflate import FeedEvent
from cryptoj.adapters.coinbase.jwt_auth import CredentialsError, load_credentials, ws_jwt_factory
from cryptoj.adapters.coinbase.manager import CoinbaseFeed
from cryptoj.config.coinbase import CoinbaseFeedConfig
from cryptoj.supervision.guard import ThreadBoard

if TYPE_CHECKING:  # cryptoj.config imports this package's config module: no cycle at run time
    from cryptoj.config import CoinbaseConfig


def build_feed(
    feed: CoinbaseFeedConfig,
    credentials: CoinbaseConfig,
    products: Sequence[str],
    on_event: Callable[[FeedEvent], None],
    *,
    clock: Callable[[], int] = time.time_ns,
    seed: int | None = None,
    board: ThreadBoard | None = None,
) -> CoinbaseFeed:
    """A ready-to-start feed; raises :class:`CredentialsError` when configured keys are unusable.

    With ``feed.auth == "auto"`` the keys named by ``credentials`` are used when present (a fresh
    JWT per subscribe); without keys the public channels are used unauthenticated. ``board``:
    where the feed's worker threads are reported (the process-wide one by default).
    """
    creds = (
        load_credentials(
            api_key_env=credentials.api_key_env,
            api_secret_env=credentials.api_secret_env,
            key_file=credentials.key_file,
        )
        if feed.auth == "auto"
        else None
    )
    jwt = ws_jwt_factory(creds)
    return CoinbaseFeed(feed, products, on_event, jwt=jwt, clock=clock, seed=seed, board=board)


__all__ = [
    "CoinbaseFeed",
    "CoinbaseFeedConfig",
    "CredentialsError",
    "FeedEvent",
    "build_feed",
]
