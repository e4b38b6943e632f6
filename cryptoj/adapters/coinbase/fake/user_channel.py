"""The authenticated ``user`` websocket channel of the fake exchange.

``{"type": "subscribe", "channel": "user", "jwt": ..., "product_ids": [...]?}`` on any websocket
connection of the fake. With a registered API key the JWT must verify (a websocket JWT: no
``uri``), else ``{"type":"error","message":"authentication failure"}``. Then:

1. a ``subscriptions`` ack listing ``"user": ["<user uuid>"]`` (like the recorded one);
2. the snapshot: ``{"type": "snapshot", "orders": [...]}`` of the open orders, 50 per message
   (one message with ``[]`` when none);
3. ``{"type": "update", "orders": [UserOrder]}`` for every change of every order (one order per
   message), cumulative quantities, in the order they happened: ``PENDING``, ``OPEN``, each fill,
   the end state.

Every message has the connection's ``sequence_num`` (shared with heartbeats and the other
channels). ``product_ids`` restricts the orders to those products. Faults: ``user_disconnect``
drops the user connections now (``mode=drop`` resets the TCP connection, ``clean`` sends a close
frame); ``user_replay`` (``count=N``, ``orders=K``) makes the next N user subscribes also receive,
after their snapshot, every remembered update of the open orders and of the K orders finished
last (default 20), with their original cumulative values: a client must deduplicate.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from cryptoj.adapters.coinbase.fake.exchange import USER_ID, UserEvent
from cryptoj.adapters.coinbase.parse import format_rfc3339_ns

if TYPE_CHECKING:
    from cryptoj.adapters.coinbase.fake.server import FakeCoinbase
    from cryptoj.adapters.coinbase.fake.session import WsSession

AUTH_FAILURE = b'{"type":"error","message":"authentication failure"}'
SUBSCRIBE_FAILURE = b'{"type":"error","message":"failure to subscribe"}'
SNAPSHOT_BATCH = 50


class UserChannel:
    """The user-channel subscribers of one fake and what they are sent."""

    def __init__(self, fake: FakeCoinbase) -> None:
        self.fake = fake
        self.subscribers: dict[int, tuple[WsSession, frozenset[str]]] = {}
        self.replays_armed = 0
        self.replay_recent = 20

    def on_message(
        self, sess: WsSession, kind: str, products: list[str], msg: dict[str, Any]
    ) -> None:
        """A (un)subscribe for ``user`` (on the session's thread, without the fake's lock)."""
        fake = self.fake
        if fake.auth is not None:
            reason = fake.auth.verify_ws(msg.get("jwt"))
            if reason:
                fake.count("ws_auth_failures")
                fake.api.auth_failures.append(f"user subscribe: {reason}")
                sess.out.push(("raw", AUTH_FAILURE))
                return
        if kind not in ("subscribe", "unsubscribe") or any(
            p not in fake.exchange.specs for p in products
        ):
            sess.out.push(("raw", SUBSCRIBE_FAILURE))
            return
        fake.lock_waiters += 1
        with fake.lock:
            fake.lock_waiters -= 1
            if kind == "unsubscribe":
                self.subscribers.pop(sess.conn_id, None)
                sess.subs["user"].clear()
                sess.ack()
                return
            wanted = frozenset(products)
            self.subscribers[sess.conn_id] = (sess, wanted)
            sess.subs["user"] = {USER_ID}
            sess.ack()
            self._snapshot(sess, wanted)
            if self.replays_armed > 0:
                self.replays_armed -= 1
                replayed = [
                    e
                    for e in fake.exchange.replay_events(self.replay_recent)
                    if not wanted or e.product_id in wanted
                ]
                for e in replayed:
                    sess.out.push(_update(e))
                fake.count("user_replay_injected")
                fake.count("user_events_replayed", len(replayed))
        fake.count("user_subscribes")

    def _snapshot(self, sess: WsSession, wanted: frozenset[str]) -> None:
        ts = format_rfc3339_ns(time.time_ns()).encode()
        orders = [
            o.to_user()
            for o in self.fake.exchange.open_orders()
            if not wanted or o.product_id in wanted
        ]
        chunks = [orders[i : i + SNAPSHOT_BATCH] for i in range(0, len(orders), SNAPSHOT_BATCH)]
        for chunk in chunks or [[]]:
            event = {
                "type": "snapshot",
                "orders": chunk,
                "positions": {"perpetual_futures_positions": [], "expiring_futures_positions": []},
            }
            body = json.dumps(event, separators=(",", ":")).encode()
            sess.out.push(("snap", b"user", ts, body, False))

    def publish(self, events: list[UserEvent]) -> None:
        """Send new events to every subscriber (caller holds the fake's lock)."""
        if not events or not self.subscribers:
            return
        for conn_id, (sess, wanted) in list(self.subscribers.items()):
            if sess.closed:
                del self.subscribers[conn_id]
                continue
            for e in events:
                if not wanted or e.product_id in wanted:
                    sess.out.push(_update(e))
        self.fake.count("user_updates", len(events))

    def disconnect(self, mode: str) -> int:
        """Drop every user-channel connection now; how many."""
        with self.fake.lock:
            targets = [s for s, _ in self.subscribers.values() if not s.closed]
        for s in targets:
            s.disconnect_mode = mode
        return len(targets)


def _update(e: UserEvent) -> tuple[str, bytes, bytes, bytes, bool]:
    ts = format_rfc3339_ns(time.time_ns()).encode()
    return ("data", b"user", ts, b'{"type":"update","orders":[%s]}' % e.payload, False)
