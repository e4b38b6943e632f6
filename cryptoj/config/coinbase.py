"""Settings of the Coinbase market-data feed (a msgspec Struct, validated like the daemon config).

:class:`CoinbaseFeedConfig` is meant to sit in the daemon config as ``feed.coinbase`` (with
``feed.source: coinbase``); every field is optional. Times are seconds unless the name says
otherwise. The defaults follow ``shared/design/coinbase-protocol.md``: subscribe within 5 s,
heartbeats every second, at most 15 level2 products per connection, 8 connections per second.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]
NonNegFloat = Annotated[float, msgspec.Meta(ge=0)]
PositiveInt = Annotated[int, msgspec.Meta(gt=0)]
NonNegInt = Annotated[int, msgspec.Meta(ge=0)]
Channel = Literal["level2", "ticker", "ticker_batch", "market_trades"]
WsUrl = Annotated[str, msgspec.Meta(pattern=r"^wss?://[^/\s]+(/\S*)?$")]
HttpUrl = Annotated[str, msgspec.Meta(pattern=r"^https?://[^/\s]+$")]

PRIMARY_WS_URL = "wss://advanced-trade-ws.coinbase.com"
REST_URL = "https://api.coinbase.com"
MAX_L2_PER_CONNECTION = 15  # 16 works, 32 fails with "too many L2 streams" (protocol notes §6)


class CoinbaseFeedConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The websocket feed: hosts, channels, watchdogs, reconnection, failover and buffering."""

    # -- where -------------------------------------------------------------------------------
    ws_urls: tuple[WsUrl, ...] = (PRIMARY_WS_URL,)  # primary first, then failover hosts
    rest_url: HttpUrl = REST_URL  # public REST: trade backfill and best bid/ask polling
    ca_file: str | None = None  # extra CA (PEM) to trust, e.g. the local fake's certificate
    # -- what --------------------------------------------------------------------------------
    channels: tuple[Channel, ...] = ("level2", "ticker", "market_trades")  # plus heartbeats
    max_products_per_connection: Annotated[int, msgspec.Meta(ge=1, le=MAX_L2_PER_CONNECTION)] = 15
    auth: Literal["auto", "never"] = "auto"  # auto: a fresh JWT per subscribe when keys are set
    # -- watchdogs ---------------------------------------------------------------------------
    connect_timeout_s: PositiveFloat = 5.0  # TCP + TLS + websocket handshake
    subscribe_ack_timeout_s: PositiveFloat = 5.0  # all subscriptions acknowledged within this
    heartbeat_timeout_s: PositiveFloat = 5.0  # no heartbeat for this long → stale, reconnect
    book_stale_s: NonNegFloat = 60.0  # a level2 book silent this long → resync (0 = off)
    resync_timeout_s: PositiveFloat = 5.0  # a resubscribe's snapshot must arrive within this
    reorder_window: NonNegInt = 8  # frames held while waiting for a missing sequence number
    reorder_hold_ms: NonNegFloat = 100.0  # longest a frame is held for reordering
    ping_interval_s: NonNegFloat = 10.0  # websocket ping (round-trip metric); 0 = off
    ping_timeout_s: PositiveFloat = 10.0  # no pong within this → reconnect
    # -- the boundary: what is dropped --------------------------------------------------------
    max_frame_bytes: Annotated[int, msgspec.Meta(ge=65_536)] = 8 << 20  # larger: skipped, resync
    drop_log_interval_s: PositiveFloat = 10.0  # dropped frames, resyncs: 1 line/reason per this
    # -- reconnection and circuit breaker ----------------------------------------------------
    backoff_min_s: PositiveFloat = 0.5  # first reconnect delay
    backoff_max_s: PositiveFloat = 30.0  # cap of the exponential backoff
    backoff_jitter: Annotated[float, msgspec.Meta(ge=0, lt=1)] = 0.2  # ± fraction
    backoff_reset_s: NonNegFloat = 30.0  # live this long, or data delivered → next failure at min
    max_retries: NonNegInt = 0  # consecutive failed attempts before giving up (0 = never)
    connections_per_second: PositiveFloat = 8.0  # Coinbase: 8 connections/s per IP
    circuit_failures: PositiveInt = 3  # consecutive failures on a host that open its circuit
    circuit_open_s: PositiveFloat = 30.0  # open this long, then one half-open probe
    circuit_open_max_s: PositiveFloat = 300.0  # a failed probe doubles the open time up to this
    failback_s: NonNegFloat = 300.0  # on a failover host: back to the primary after this (0=off)
    # -- REST (backfill and polling failover) ------------------------------------------------
    rest_timeout_s: PositiveFloat = 5.0
    rest_poll: bool = True  # poll best bid/ask over REST while no websocket serves a product
    rest_poll_interval_s: PositiveFloat = 2.0
    backfill_trades: bool = True  # fetch missed trades over REST after a gap or reconnect
    backfill_limit: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 100
    # -- delivery and buffering --------------------------------------------------------------
    conflate: bool = True  # conflate quotes per product (trades and statuses never)
    conflate_ms: NonNegFloat = 50.0  # at most one quote per product per this window (0 = off)
    merge_trades_lag_ms: NonNegFloat = 250.0  # read later than this: merge a product's trades
    delivery: Literal["inline", "thread"] = "inline"  # inline: the callback must not block
    max_pending_events: PositiveInt = 100_000  # thread: backlog bound (beyond: trades merged)
    delivery_batch_ms: NonNegFloat = 1.0  # thread: collect events this long per hand-over
    buffer_dir: str | None = None  # write every raw frame here (bounded ring of files)
    buffer_max_bytes: PositiveInt = 256_000_000  # total size of the raw-frame ring
    buffer_segment_bytes: PositiveInt = 16_000_000  # one file of the ring


def level2_shards(products: tuple[str, ...], per_connection: int) -> list[tuple[str, ...]]:
    """Split ``products`` into connection shards of at most ``per_connection`` products.

    Order is kept and duplicates are removed; no products means no shard.
    """
    if per_connection < 1:
        raise ValueError(f"per_connection: expected at least 1, got {per_connection}")
    unique = tuple(dict.fromkeys(products))
    return [unique[i : i + per_connection] for i in range(0, len(unique), per_connection)]
