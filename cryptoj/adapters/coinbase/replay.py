"""Replay a recorded raw-frame buffer through the feed's protocol engine, offline.

The frames a live session wrote with ``buffer_dir`` (see :mod:`.buffer`) go through fresh
:class:`~cryptoj.adapters.coinbase.session.FeedSession` objects, one per recorded connection
name, on the recorded receive times: the same quotes, trades and stale/recovered events come
out as live (sequence gaps included), without a network. The sends the sessions ask for
(resubscribes, pings, REST backfills) are ignored: the recording already holds what the server
answered. A new connection is recognised by its first frame: the ``subscriptions`` ack with a
sequence number at or below the previous one on that name.

    from cryptoj.adapters.coinbase.replay import replay_buffer
    stats = replay_buffer("var/feed-buffer", ["BTC-USD"], events.append)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import msgspec

from cryptoj.adapters.coinbase.buffer import read_frames
from cryptoj.adapters.coinbase.conflate import FeedEvent
from cryptoj.adapters.coinbase.schemas import Head
from cryptoj.adapters.coinbase.session import FeedSession, SessionSettings


def replay_buffer(
    directory: str | Path,
    products: Sequence[str],
    emit: Callable[[FeedEvent], None],
    *,
    settings: SessionSettings | None = None,
) -> dict[str, dict[str, object]]:
    """Feed every recorded frame through sessions; return each session's counters."""
    settings = settings or SessionSettings()
    sessions: dict[str, FeedSession] = {}
    last_seq: dict[str, int] = {}
    head = msgspec.json.Decoder(Head)
    now = 0
    for rec in read_frames(directory):
        now = rec.recv_ns
        s = sessions.get(rec.connection)
        if s is None:
            s = sessions[rec.connection] = FeedSession(
                rec.connection, tuple(products), settings, emit
            )
            s.opened(now)
        seq = _seq(head, rec.data)
        if seq is not None:
            if rec.connection in last_seq and seq <= last_seq[rec.connection]:
                s.closed("connection ended (recorded)", now)
                s.opened(now)
            last_seq[rec.connection] = seq
        s.frame(rec.data, now)
        s.tick(now)
    for s in sessions.values():
        s.closed("end of recording", now)
    return {name: s.snapshot() for name, s in sessions.items()}


def _seq(head: msgspec.json.Decoder[Head], data: bytes) -> int | None:
    try:
        return head.decode(data).sequence_num
    except msgspec.MsgspecError:
        return None
