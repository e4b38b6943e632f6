"""The daemon's runtime: :class:`ThreadedRuntime` plus what operations need to see.

:class:`OpsRuntime` adds, without changing how actors run:

* a **tap** (:class:`Tap`) that observes every delivered message after its handler ran, in the
  receiving actor's thread: messages and handling time per actor, the latest mid per product,
  arrival prices and the slippage of each venue fill, the latest portfolio snapshot and risk
  parameters, feed events. It only reads immutable messages;
* **status probes**: :meth:`OpsRuntime.probe` asks an actor for a snapshot; the
  :class:`~cryptoj.ops.probe.StatusRequest` is answered in the actor's thread and is not
  traced or counted;
* **feed lag** (:class:`LagWindow`): for every quote and trade pushed into the FeedActor (the
  live feed), the clock's time when the FeedActor has handled it minus the event's own time:
  how stale the decisions are that it feeds; the overload check of ``/status`` and ``/ready``
  reads it (:meth:`cryptoj.ops.state.OpsState.load`);
* **lifecycle history**: every start and exit with wall time, generation and reason, and how
  long each actor has been down;
* **flag delivery**: :meth:`OpsRuntime.broadcast` sends a message to every running actor that
  handles it; an actor restarted after a flag change gets the current flags right after start.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pykka
from prometheus_client import CollectorRegistry, Histogram
from pykka import ActorDeadError

from cryptoj.execution.records import parent_of
from cryptoj.models.base import Message
from cryptoj.models.market import FeedFinished, FeedStatus, Quote, QuoteBatch, Trade
from cryptoj.models.orders import Fill, OrderClosed, Side, SubmitOrder
from cryptoj.models.portfolio import PortfolioSnapshot
from cryptoj.models.risk import RiskLevelChanged, RiskParameters
from cryptoj.models.system import Ping
from cryptoj.ops.narrator import Narrator
from cryptoj.ops.probe import StatusRequest, answer
from cryptoj.runtime.common import Envelope
from cryptoj.runtime.host import ActorHost
from cryptoj.runtime.threaded import ThreadedRuntime

HANDLING_BUCKETS = (1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0)
SLIPPAGE_BUCKETS = (0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 250.0)  # le=0: price improvement
_MAX_ARRIVALS = 10_000


class Tap:
    """Figures observed from delivered messages (thread-safe)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self._lock = threading.Lock()
        self.messages: dict[str, int] = {}
        self.handling = Histogram(
            "cryptoj_actor_handling_seconds",
            "Time an actor's handler took per message",
            ["actor"],
            buckets=HANDLING_BUCKETS,
            registry=registry,
        )
        self.slippage = Histogram(
            "cryptoj_slippage_bps",
            "Fill price against the mid when the order reached execution, basis points "
            "(positive = paid more / received less)",
            ["product"],
            buckets=SLIPPAGE_BUCKETS,
            registry=registry,
        )
        self._handling: dict[str, Any] = {}  # actor → its histogram child (labels() is slow)
        self.mids: dict[str, Decimal] = {}
        self.arrivals: OrderedDict[str, tuple[Side, Decimal]] = OrderedDict()
        self.last_market_ts: int | None = None
        self.feed_messages = 0
        self.portfolio: PortfolioSnapshot | None = None
        self.risk: RiskParameters | None = None
        self.feed_finished = False
        self.feed_status: FeedStatus | None = None
        self.feed_history: deque[dict[str, Any]] = deque(maxlen=100)
        self.risk_history: deque[dict[str, Any]] = deque(maxlen=100)

    def observe(self, actor: str, env: Envelope, dur_ns: int) -> None:
        """Account one delivery to ``actor`` (called in that actor's thread)."""
        child = self._handling.get(actor)
        if child is None:
            child = self._handling[actor] = self.handling.labels(actor)
        child.observe(dur_ns / 1e9)
        msg = env.msg
        with self._lock:
            self.messages[actor] = self.messages.get(actor, 0) + 1
            if env.sender == "feed":
                self.feed_messages += 1
            if isinstance(msg, Quote | QuoteBatch):
                for q in msg.quotes if isinstance(msg, QuoteBatch) else (msg,):
                    self.mids[q.product] = q.mid
                if self.last_market_ts is None or msg.ts > self.last_market_ts:
                    self.last_market_ts = msg.ts
            elif isinstance(msg, SubmitOrder) and actor == "execution":
                mid = self.mids.get(msg.product)
                if mid is not None:
                    self.arrivals[msg.client_order_id] = (msg.side, mid)
                    while len(self.arrivals) > _MAX_ARRIVALS:
                        self.arrivals.popitem(last=False)
            elif isinstance(msg, Fill) and actor == "execution" and env.sender == "venue":
                self._fill(msg)
            elif isinstance(msg, OrderClosed) and actor == "portfolio":
                self.arrivals.pop(msg.client_order_id, None)  # the parent's close, once
            elif isinstance(msg, PortfolioSnapshot):
                self.portfolio = msg
            elif isinstance(msg, RiskParameters) and actor == "portfolio":
                self.risk = msg
            elif isinstance(msg, RiskLevelChanged) and actor == "shutdown":
                self.risk_history.append(
                    {
                        "wall": time.time(),
                        "ts": msg.ts,
                        "from": str(msg.previous),
                        "to": str(msg.level),
                        "reason": msg.reason,
                    }
                )
            elif isinstance(msg, FeedStatus) and actor == "feed":  # once, not per consumer
                self.feed_status = msg
                self._feed_event(msg.state, f"{','.join(msg.products)} {msg.reason}".strip())
            elif isinstance(msg, FeedFinished) and actor == "shutdown":
                self.feed_finished = True
                self._feed_event("finished", f"replay data exhausted after {msg.events} events")

    def _fill(self, fill: Fill) -> None:
        # A split order's children never pass as SubmitOrder messages: a child fill counts
        # against its parent's arrival mid (child ids are ``<parent>-c<n>``).
        arrival = self.arrivals.get(fill.client_order_id) or self.arrivals.get(
            parent_of(fill.client_order_id, self.arrivals) or ""
        )
        if arrival is None or arrival[1] <= 0:
            return
        side, mid = arrival
        sign = 1 if side == Side.BUY else -1
        bps = float(sign * (fill.price - mid) / mid * 10_000)
        self.slippage.labels(fill.product).observe(bps)

    def feed_event(self, event: str, detail: str) -> None:
        """Record a feed lifecycle event (start, exit) from the runtime."""
        with self._lock:
            self._feed_event(event, detail)

    def _feed_event(self, event: str, detail: str) -> None:
        self.feed_history.append({"wall": time.time(), "event": event, "detail": detail})

    def view(self) -> dict[str, Any]:
        """A consistent copy of the observed figures."""
        with self._lock:
            return {
                "messages": dict(self.messages),
                "mids": dict(self.mids),
                "last_market_ts": self.last_market_ts,
                "feed_messages": self.feed_messages,
                "portfolio": self.portfolio,
                "risk": self.risk,
                "feed_finished": self.feed_finished,
                "feed_status": self.feed_status,
                "feed_history": list(self.feed_history),
                "risk_history": list(self.risk_history),
            }


class LagWindow:
    """The feed's lag samples of the last ``window_s`` seconds (at most ``size`` of them),
    with the count and the largest since the start (thread-safe)."""

    def __init__(self, window_s: float = 10.0, size: int = 4096) -> None:
        self.window_ns = int(window_s * 1e9)
        self._lock = threading.Lock()
        self._recent: deque[tuple[int, int]] = deque(maxlen=size)  # (monotonic ns, lag ns)
        self.count = 0
        self.max_ns = 0
        #: benchmarks: called with every sample (in the FeedActor's thread)
        self.sink: Callable[[int], None] | None = None

    def add(self, lag_ns: int) -> None:
        """One sample: the event's age when the FeedActor had handled it."""
        with self._lock:
            self._recent.append((time.monotonic_ns(), lag_ns))
            self.count += 1
            if lag_ns > self.max_ns:
                self.max_ns = lag_ns
        if self.sink is not None:
            self.sink(lag_ns)

    def view(self) -> dict[str, Any]:
        """p50/p99/last over the window (None without samples in it), max and count overall."""
        since = time.monotonic_ns() - self.window_ns
        with self._lock:
            recent = [lag for t, lag in self._recent if t >= since]
            last = self._recent[-1][1] if self._recent else None
            count, top = self.count, self.max_ns
        recent.sort()

        def pct(p: float) -> float | None:
            return recent[min(len(recent) - 1, int(p * len(recent)))] / 1e9 if recent else None

        return {
            "window_s": self.window_ns / 1e9,
            "window_samples": len(recent),
            "p50_s": pct(0.50),
            "p99_s": pct(0.99),
            "last_s": None if last is None else last / 1e9,
            "max_s": top / 1e9,
            "samples": count,
        }


_PUSHED = (Quote, Trade)  # what a live feed pushes into the FeedActor (a replay polls)


class _Slot:
    __slots__ = ("error", "value")

    def __init__(self) -> None:
        self.value: Message | None = None
        self.error: str | None = None


class OpsRuntime(ThreadedRuntime):
    """:class:`ThreadedRuntime` with a tap, status probes, lifecycle history and flag delivery."""

    def __init__(self, *, metrics_registry: CollectorRegistry | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        self.tap = Tap(metrics_registry)
        self.started_wall = time.time()
        self.lifecycle: deque[dict[str, Any]] = deque(maxlen=500)
        self.errors: deque[dict[str, Any]] = deque(maxlen=50)
        self.down_since: dict[str, float] = {}
        self.on_started: Callable[[str], Message | None] | None = None
        self.narrator: Narrator | None = None  # the daemon's log lines per decision
        self.feed_lag = LagWindow()
        self._probes: dict[str, _Slot] = {}
        self._probe_ids = itertools.count(1)
        self._ops_lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, name: str) -> int:
        """Start (or restart) ``name``; then hand it the current flags if it was restarted."""
        gen = super().start(name)
        with self._ops_lock:
            self.down_since.pop(name, None)
            self.lifecycle.append(
                {"wall": time.time(), "actor": name, "event": "start", "generation": gen}
            )
        if name == "feed":
            self.tap.feed_event("connected" if gen == 1 else "reconnected", f"generation {gen}")
        if self.narrator is not None:
            self.narrator.lifecycle(name, "start", gen)
        if self.on_started is not None and gen > 1:
            msg = self.on_started(name)
            if msg is not None and self.handles(name, msg):
                self.send("ops", name, msg, None)
        return gen

    def on_exit(self, host: ActorHost, abnormal: bool, reason: str) -> None:
        """Record the exit, then let the runtime report it to the supervisor."""
        name = host.cell_name
        entry = {
            "wall": time.time(),
            "actor": name,
            "event": "crash" if abnormal else "stop",
            "generation": host.generation,
            "reason": reason,
        }
        with self._ops_lock:
            self.down_since[name] = time.monotonic()
            self.lifecycle.append(entry)
            if abnormal:
                self.errors.append(
                    {"wall": entry["wall"], "source": name, "message": f"crashed: {reason}"}
                )
        if name == "feed":
            self.tap.feed_event("disconnected", reason)
        if abnormal and self.narrator is not None:
            self.narrator.lifecycle(name, "crash", host.generation, reason)
        super().on_exit(host, abnormal, reason)

    def history(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, float]]:
        """Copies of the lifecycle history, the runtime errors and the down-since times."""
        with self._ops_lock:
            return list(self.lifecycle), list(self.errors), dict(self.down_since)

    # -- deliveries ----------------------------------------------------------------------------

    def deliver(self, host: ActorHost, env: Envelope) -> None:
        """Answer status probes; run every other message and let the tap observe it."""
        if isinstance(env.msg, StatusRequest):
            self._answer(host, env.msg)
            return
        start = time.perf_counter_ns()
        try:
            super().deliver(host, env)
        finally:
            msg = env.msg
            if host.cell_name == "feed" and type(msg) in _PUSHED:  # the live feed's events
                self.feed_lag.add(self.clock.now() - msg.ts)
            self.tap.observe(host.cell_name, env, time.perf_counter_ns() - start)
            if self.narrator is not None:
                self.narrator.observe(host.cell_name, env)

    def _answer(self, host: ActorHost, request: StatusRequest) -> None:
        with self._ops_lock:
            slot = self._probes.get(request.request_id)
        if slot is None:
            return  # the asker gave up
        try:
            slot.value = answer(host.behaviour, request, host.ctx, self.clock.now())
        except Exception as e:  # a probe must never crash an actor
            slot.error = f"{type(e).__name__}: {e}"

    def probe(self, name: str, timeout: float) -> Message | None:
        """``name``'s status snapshot, or None (not running, too slow, or it failed)."""
        rid = f"probe-{next(self._probe_ids)}"
        slot = _Slot()
        with self._ops_lock:
            self._probes[rid] = slot
        try:
            self.ask(name, StatusRequest(ts=self.clock.now(), request_id=rid), timeout=timeout)
        except (ActorDeadError, pykka.Timeout):
            return None
        finally:
            with self._ops_lock:
                self._probes.pop(rid, None)
        return slot.value

    # -- introspection -------------------------------------------------------------------------

    def ping_all(self, timeout: float) -> dict[str, bool]:
        """Ask every running actor for a ping in parallel: name → answered within ``timeout``."""
        with self._lock:
            entries = list(self.refs.items())
        futures = {}
        for name, (ref, _) in entries:
            try:
                futures[name] = ref.ask(Ping(), block=False)
            except ActorDeadError:
                continue
        deadline = time.monotonic() + timeout
        out = {}
        for name, future in futures.items():
            try:
                future.get(timeout=max(0.0, deadline - time.monotonic()))
                out[name] = True
            except (ActorDeadError, pykka.Timeout):
                out[name] = False
        return out

    def handles(self, name: str, msg: Message) -> bool:
        """True when ``name`` is running and has a handler for ``msg``'s type."""
        behaviour = self.behaviour(name)
        if behaviour is None:
            return False
        snake = "".join("_" + c.lower() if c.isupper() else c for c in type(msg).__name__)
        return hasattr(type(behaviour), "_handle" + snake)

    def broadcast(self, msg: Message) -> list[str]:
        """Send ``msg`` to every running actor that handles it; return their names."""
        with self._lock:
            names = list(self.refs)
        sent = [name for name in names if self.handles(name, msg)]
        for name in sent:
            self.send("ops", name, msg, None)
        return sent


__all__ = ["LagWindow", "OpsRuntime", "Tap"]
