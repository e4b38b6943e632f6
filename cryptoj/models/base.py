"""Base class of every message exchanged between actors."""

from __future__ import annotations

import msgspec


class Message(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """An immutable message. ``tag=True`` makes every encoded message self-describing.

    Every message carries ``ts``: the time (ns since the epoch, from the injected clock or
    the market event it derives from) at which it was created.
    """

    ts: int = 0
