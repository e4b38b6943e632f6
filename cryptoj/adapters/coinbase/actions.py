"""What a :class:`~.session.FeedSession` asks its connection to do, and its settings (pure).

The session is sans I/O: it returns :data:`Action` values (send a frame, send a ping, reconnect,
fetch trades over REST) that the connection thread carries out, and it is configured by
:class:`SessionSettings` (times in ns). :data:`COUNTERS` names the session's counters.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptoj.config.coinbase import CoinbaseFeedConfig

S = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Send:
    """Send this text frame (a subscribe or unsubscribe)."""

    text: str


@dataclass(frozen=True, slots=True)
class Ping:
    """Send a websocket ping carrying ``payload``."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class Reconnect:
    """Close this connection and connect again (after the backoff).

    ``clean``: send a close frame first; False when the peer stopped answering anyway.
    """

    reason: str
    clean: bool = True


@dataclass(frozen=True, slots=True)
class Backfill:
    """Fetch trades newer than ``since_ns`` of each product over REST."""

    since: tuple[tuple[str, int], ...]


Action = Send | Ping | Reconnect | Backfill


@dataclass(frozen=True, slots=True)
class SessionSettings:
    """The session's timing and channel settings (all times in ns)."""

    channels: tuple[str, ...] = ("level2", "ticker", "market_trades")
    ack_timeout_ns: int = 5 * S
    heartbeat_timeout_ns: int = 5 * S
    book_stale_ns: int = 60 * S  # 0 = off
    resync_timeout_ns: int = 5 * S
    reorder_window: int = 8
    reorder_hold_ns: int = S // 10
    ping_interval_ns: int = 10 * S  # 0 = off
    ping_timeout_ns: int = 10 * S
    backfill: bool = True
    trade_ids_kept: int = 4096
    max_frame_bytes: int = 8 << 20  # larger frames are dropped undecoded
    log_interval_ns: int = 10 * S  # dropped frames and resyncs: one log line per reason per this

    @classmethod
    def from_config(cls, cfg: CoinbaseFeedConfig) -> SessionSettings:
        """Settings from the feed config."""
        return cls(
            channels=tuple(dict.fromkeys(cfg.channels)),
            ack_timeout_ns=int(cfg.subscribe_ack_timeout_s * S),
            heartbeat_timeout_ns=int(cfg.heartbeat_timeout_s * S),
            book_stale_ns=int(cfg.book_stale_s * S),
            resync_timeout_ns=int(cfg.resync_timeout_s * S),
            reorder_window=cfg.reorder_window,
            reorder_hold_ns=int(cfg.reorder_hold_ms * 1_000_000),
            ping_interval_ns=int(cfg.ping_interval_s * S),
            ping_timeout_ns=int(cfg.ping_timeout_s * S),
            backfill=cfg.backfill_trades,
            max_frame_bytes=cfg.max_frame_bytes,
            log_interval_ns=int(cfg.drop_log_interval_s * S),
        )


COUNTERS = (
    "frames", "bytes", "unknown", "malformed", "errors", "gaps", "missing", "snapshots",
    "updates_ignored", "unknown_sides", "crossed", "quotes", "trades", "trades_duplicate",
    "backfilled", "heartbeats", "heartbeat_skips", "heartbeat_timeouts", "resyncs",
    "books_silent", "stale_events", "recoveries", "foreign_products", "dropped",
    "thread_crashes",
)  # fmt: skip
