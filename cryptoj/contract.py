"""The runtime-neutral actor contract.

An actor is a plain object with ``on_start``, ``receive`` and ``on_stop`` taking a :class:`Context`.
It imports nothing from pykka: the threaded runtime hosts it in a pykka ``ThreadingActor``, the
deterministic runtime calls it from one thread under a virtual clock. Time, timers, ids, randomness
and sending all come from the context, so the same class behaves identically in both.

Messages are dispatched to ``_handle_<snake_case_type_name>`` methods; a message nobody handles is
a bug and raises :class:`UnhandledMessage` (the actor crashes and its supervisor decides).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from typing import Any, ClassVar, Protocol

from cryptoj.models.base import Message


class Context(Protocol):
    """What an actor may use of its runtime."""

    @property
    def name(self) -> str:
        """The stable name this actor is registered under."""
        ...

    @property
    def rng(self) -> random.Random:
        """A seeded random generator (deterministic in the deterministic runtime)."""
        ...

    def now(self) -> int:
        """Current time, ns since the epoch, from the injected clock."""
        ...

    def send(self, to: str, msg: Message, *, correlation_id: str | None = None) -> None:
        """Deliver ``msg`` to the actor named ``to``; a dead receiver makes a dead letter."""
        ...

    def schedule(self, delay_ns: int, msg: Message) -> None:
        """Deliver ``msg`` to this actor after ``delay_ns`` of clock time."""
        ...

    def new_id(self, prefix: str) -> str:
        """A unique, reproducible id (same seed → same ids)."""
        ...

    def stop_system(self, exit_code: int, reason: str) -> None:
        """Ask the runtime to stop every actor and end the process with ``exit_code``."""
        ...


class SupervisorContext(Context, Protocol):
    """Extra powers of a supervisor over its children."""

    def start_child(self, name: str) -> int:
        """Start (or restart) the child ``name``; return its generation number."""
        ...

    def stop_child(self, name: str) -> None:
        """Stop the child ``name`` (its on_stop runs); a no-op if it is not running."""
        ...


class UnhandledMessage(Exception):
    """An actor received a message type it has no handler for (a wiring bug)."""


_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


class Actor:
    """Base class of every actor behaviour."""

    #: Stable name of the actor kind (the registered name unless configured otherwise).
    kind: ClassVar[str] = "actor"
    _dispatch: ClassVar[dict[type, Callable[[Any, Any, Any], None]]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._dispatch = {}

    def on_start(self, ctx: Context) -> None:
        """Called once, before the first message; recover state here."""

    def on_stop(self, ctx: Context) -> None:
        """Called on an orderly stop (not after a crash); flush and release here."""

    def receive(self, msg: Message, ctx: Context) -> None:
        """Dispatch ``msg`` to its ``_handle_<type>`` method."""
        handler = self._dispatch.get(type(msg))
        if handler is None:
            handler = self._handler(type(msg))
        handler(self, msg, ctx)

    def _handler(self, t: type) -> Callable[[Any, Any, Any], None]:
        """Find (and cache per class) the ``_handle_<type>`` function of message type ``t``."""
        method_name = "_handle_" + _CAMEL.sub("_", t.__name__).lower()
        function = getattr(type(self), method_name, None)
        if function is None:
            raise UnhandledMessage(f"{type(self).__name__} has no handler for {t.__name__}")
        self._dispatch[t] = function
        return function  # type: ignore[no-any-return]
