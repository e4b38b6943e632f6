"""Pieces both runtimes share: envelopes, ids, the spec registry, counters, fault injection."""

from __future__ import annotations

import itertools
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from cryptoj.contract import Actor
from cryptoj.models.base import Message
from cryptoj.models.market import Bar, Quote, QuoteBatch, Trade
from cryptoj.supervision.spec import ChildSpec, SupervisorSpec
from cryptoj.supervision.supervisor import Supervisor
from cryptoj.trace.recorder import TraceWriter

#: The market-data message types (``type(msg) in MARKET_TYPES``: :func:`is_market` inlined on
#: the deterministic runtime's per-message path).
MARKET_TYPES = frozenset((Quote, QuoteBatch, Bar, Trade))


def is_market(msg: object) -> bool:
    """True for market data (a quote, a batch of one instant's quotes, a bar or a trade):
    counted so a replay can prove none was dropped
    (:func:`cryptoj.summary.market_data_problems`)."""
    return type(msg) in MARKET_TYPES


class Envelope:
    """A message in a mailbox, with its routing and tracing metadata."""

    __slots__ = ("cause", "corr", "enq_ns", "msg", "msg_id", "sender")

    def __init__(
        self, msg: Message, sender: str, msg_id: str, corr: str, cause: str, enq_ns: int = 0
    ) -> None:
        self.msg = msg
        self.sender = sender
        self.msg_id = msg_id
        self.corr = corr
        self.cause = cause
        self.enq_ns = enq_ns


class RuntimeOps(Protocol):
    """What both runtimes offer the contexts they hand to actors."""

    seed: int
    ids: IdFactory

    def now(self) -> int: ...
    def send(self, sender: str, to: str, msg: Message, corr: str | None) -> None: ...
    def schedule(self, owner: str, delay_ns: int, msg: Message) -> None: ...
    def request_stop(self, exit_code: int, reason: str) -> None: ...
    def start(self, name: str) -> int: ...
    def stop(self, name: str, *, report: bool) -> None: ...


class ActorContext:
    """The :class:`~cryptoj.contract.SupervisorContext` both runtimes give their actors."""

    __slots__ = ("_name", "_now", "_rng", "_rt", "_schedule", "_send")

    def __init__(self, rt: RuntimeOps, name: str, generation: int) -> None:
        self._rt = rt
        self._name = name
        self._rng = random.Random(f"{rt.seed}:{name}:{generation}")
        self._now = rt.now  # bound once: these are called on (almost) every message
        self._send = rt.send
        self._schedule = rt.schedule

    @property
    def name(self) -> str:
        """The actor's stable name."""
        return self._name

    @property
    def rng(self) -> random.Random:
        """Seeded per actor and generation."""
        return self._rng

    def now(self) -> int:
        """The runtime's injected clock, ns."""
        return self._now()

    def send(self, to: str, msg: Message, *, correlation_id: str | None = None) -> None:
        """Send ``msg`` to the actor named ``to``."""
        self._send(self._name, to, msg, correlation_id)

    def schedule(self, delay_ns: int, msg: Message) -> None:
        """Deliver ``msg`` to this actor after ``delay_ns``."""
        self._schedule(self._name, delay_ns if delay_ns > 0 else 0, msg)

    def new_id(self, prefix: str) -> str:
        """A reproducible id."""
        return self._rt.ids.new_id(prefix)

    def stop_system(self, exit_code: int, reason: str) -> None:
        """End the run with ``exit_code``."""
        self._rt.request_stop(exit_code, reason)

    def start_child(self, name: str) -> int:
        """(Re)start child ``name``; its generation."""
        return self._rt.start(name)

    def stop_child(self, name: str) -> None:
        """Stop child ``name`` (not reported back: the supervisor asked for it)."""
        self._rt.stop(name, report=False)


class IdFactory:
    """Reproducible ids: ``<prefix>-<run_tag>-<n>``; thread-safe."""

    def __init__(self, run_tag: str) -> None:
        self.run_tag = run_tag
        self._counter = itertools.count(1)
        self._msg_counter = itertools.count(1)

    def new_id(self, prefix: str) -> str:
        """A new business id (order ids, correlation ids)."""
        return f"{prefix}-{self.run_tag}-{str(next(self._counter)).zfill(6)}"  # (:06d, cheaper)

    def message_id(self) -> str:
        """A new message id (``m<n>``), unique within the run."""
        return f"m{next(self._msg_counter)}"


@dataclass
class RuntimeStats:
    """Counters reported in the replay summary and the metrics."""

    delivered: int = 0
    restarts: int = 0
    crashes: int = 0
    dead_letters: int = 0
    escalations: int = 0
    conflated: int = 0  # quotes replaced by a newer one in a mailbox (threaded runtime)
    merged_trades: int = 0  # trades merged into a newer one of their product in a mailbox (ditto)
    market_sent: int = 0  # market messages (quotes, bars, trades) offered to a mailbox
    market_delivered: int = 0  # ... handled by their receiver
    market_dead: int = 0  # ... dead-lettered (receiver down, or left in a stopped one's mailbox)
    lockstep_stalls: int = 0  # lockstep timer waits that gave up (threaded replay; a bug sign)
    exits: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def bump(self, name: str, n: int = 1) -> None:
        """Increment counter ``name`` (thread-safe)."""
        with self.lock:
            setattr(self, name, getattr(self, name) + n)


@dataclass(frozen=True)
class Registered:
    """A node of the supervision tree as the runtime knows it."""

    name: str
    parent: str
    factory: Callable[[], Actor]


def _supervisor_factory(spec: SupervisorSpec) -> Callable[[], Actor]:
    return lambda: Supervisor(spec)


def flatten_tree(root: SupervisorSpec, parent: str) -> dict[str, Registered]:
    """Name → (parent, factory) for every node of the tree, root included."""
    out: dict[str, Registered] = {}

    def visit(spec: ChildSpec | SupervisorSpec, parent_name: str) -> None:
        if isinstance(spec, SupervisorSpec):
            out[spec.name] = Registered(spec.name, parent_name, _supervisor_factory(spec))
            for c in spec.children:
                visit(c, spec.name)
        else:
            out[spec.name] = Registered(spec.name, parent_name, spec.start)

    visit(root, parent)
    return out


def trace_event(
    trace: TraceWriter | None,
    kind: str,
    ts: int,
    src: str,
    dst: str,
    msg: Message,
    env: Envelope | None = None,
    note: str = "",
) -> None:
    """Record a start, exit or dead letter in the trace (a no-op without one)."""
    if trace is None:
        return
    if env is None:
        trace.record(kind, ts, src, dst, msg, "", "", "", None, None, note)
    else:
        trace.record(kind, ts, src, dst, msg, env.msg_id, env.corr, env.cause, None, None, note)


class InjectedCrash(Exception):
    """A crash injected by fault injection (``--chaos``); never raised by real code."""


#: Failure paths fault injection can hit: before the handler runs, after it ran (state already
#: changed and journalled), in the next on_start of the restarted instance, and in on_stop (the
#: actor is stopped right after handling and its on_stop raises).
CHAOS_PATHS = ("receive", "after_receive", "on_start", "on_stop")


@dataclass
class ChaosPlan:
    """Seeded crash points: (virtual time, actor, path), consumed in time order per actor."""

    points: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    storm: str | None = None  # crash this actor on every delivery (``--chaos-storm``)
    storm_after_ns: int = 0
    fail_next_start: set[str] = field(default_factory=set)
    fail_next_stop: set[str] = field(default_factory=set)
    injected: int = 0

    @classmethod
    def seeded(cls, seed: int, n: int, actors: list[str], start_ns: int, end_ns: int) -> ChaosPlan:
        """``n`` crashes at uniform times in [start, end).

        The first ``len(actors) × len(CHAOS_PATHS)`` crashes cover every (actor, path) pair once;
        any further ones pick both at random.
        """
        rng = random.Random(f"chaos:{seed}")
        plan = cls()
        pairs = [(a, p) for p in CHAOS_PATHS for a in actors]
        for i in range(n):
            actor, path = (
                pairs[i] if i < len(pairs) else (rng.choice(actors), rng.choice(CHAOS_PATHS))
            )
            t = rng.randrange(start_ns, max(start_ns + 1, end_ns))
            plan.points.setdefault(actor, []).append((t, path))
        for pts in plan.points.values():
            pts.sort()
        return plan

    def fails_start(self, actor: str, now_ns: int) -> bool:
        """True when this start of ``actor`` must fail in on_start (and consume the point)."""
        if self.storm == actor and now_ns >= self.storm_after_ns:
            self.injected += 1
            return True
        if actor in self.fail_next_start:
            self.fail_next_start.discard(actor)
            return True
        return False

    def due(self, actor: str, now_ns: int) -> str | None:
        """The path to crash on now for ``actor``, if one is due (and consume it)."""
        if self.storm == actor and now_ns >= self.storm_after_ns:
            self.injected += 1
            return "receive"
        pts = self.points.get(actor)
        if pts and pts[0][0] <= now_ns:
            _, path = pts.pop(0)
            self.injected += 1
            return path
        return None
