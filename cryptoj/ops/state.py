"""What the operations endpoint reports: liveness, readiness and the status snapshot.

Sources, all thread-safe: the runtime (counters, lifecycle, mailbox depths, pings), status
probes answered in the actors' own threads (:mod:`cryptoj.ops.probe`), the tap's observed
messages, read-only journal queries, the venue's health call and the flag store. Nothing here
mutates an actor.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from cryptoj.config.ops import OpsConfig, risk_rank
from cryptoj.ops import journal_view
from cryptoj.ops.feed import LiveFeed, live_view
from cryptoj.ops.flags import FlagStore
from cryptoj.ops.probe import PortfolioStatus, ProgrammeStatus, RiskStatus
from cryptoj.ops.runtime import OpsRuntime
from cryptoj.supervision.guard import BOARD, ThreadBoard

GUARDIANS = ("shutdown", "root")


class ErrorLog:
    """The last warnings and errors of the log (a loguru sink), for ``status``."""

    def __init__(self, size: int = 50) -> None:
        self._items: deque[dict[str, Any]] = deque(maxlen=size)
        self._lock = threading.Lock()

    def sink(self, message: Any) -> None:
        """loguru sink: keep the record's time, level and text."""
        rec = message.record
        item = {
            "wall": rec["time"].timestamp(),
            "source": f"log {rec['level'].name}",
            "message": str(rec["message"])[:500],
        }
        with self._lock:
            self._items.append(item)

    def items(self) -> list[dict[str, Any]]:
        """Oldest first."""
        with self._lock:
            return list(self._items)


def venue_check(venue: Any) -> tuple[bool, str]:
    """Is the venue reachable? ``venue.ping()`` when it has one, else ``venue.balances()``."""
    try:
        ping = getattr(venue, "ping", None)
        if ping is not None:
            ping()
        else:
            venue.balances()
    except Exception as e:
        return False, f"unreachable: {type(e).__name__}: {e}"
    return True, "reachable"


@dataclass
class OpsContext:
    """Everything the ops layer reads, handed over by the daemon."""

    rt: OpsRuntime
    ops: OpsConfig
    venue: Any
    journal_path: str
    flags: FlagStore
    feed_name: str = "replay"
    mode: str = "paper"
    strategy_kind: str = "ema_trend"
    products: tuple[str, ...] = ()
    errors: ErrorLog = field(default_factory=ErrorLog)
    venue_probe: Callable[[Any], tuple[bool, str]] = venue_check
    #: A live feed's own status (set by the daemon once the feed is built; None for replay).
    live_feed: LiveFeed | None = None
    #: The guarded threads (timers, checkpointer, ops server, trace, user channel, feed
    #: workers; :mod:`cryptoj.supervision.guard`), read on every request.
    threads: ThreadBoard = field(default_factory=lambda: BOARD)
    #: A live daemon's strategy warm-up (:meth:`~cryptoj.marketdata.warmup.WarmupReport.status`).
    warmup: dict[str, Any] | None = None


class OpsState:
    """Computes /health, /ready and /status from an :class:`OpsContext`."""

    def __init__(self, ctx: OpsContext) -> None:
        self.ctx = ctx
        self.rt = ctx.rt
        self._created = time.monotonic()

    def venue_counters(self) -> dict[str, int] | None:
        """The live venue's counters (``CoinbaseVenue.counters()``); None for the paper venue."""
        counters = getattr(self.ctx.venue, "counters", None)
        return dict(counters()) if callable(counters) else None

    # -- actor probes ---------------------------------------------------------------------------

    def portfolio(self) -> PortfolioStatus | None:
        """The PortfolioActor's snapshot (None when it does not answer in time)."""
        reply = self.rt.probe("portfolio", self.ctx.ops.ask_timeout_s)
        return reply if isinstance(reply, PortfolioStatus) else None

    def risk(self) -> RiskStatus | None:
        """The RiskActor's snapshot (None when it does not answer in time)."""
        reply = self.rt.probe("risk", self.ctx.ops.ask_timeout_s)
        return reply if isinstance(reply, RiskStatus) else None

    def programme(self) -> ProgrammeStatus | None:
        """The ShutdownActor's programme (None when it does not answer in time)."""
        reply = self.rt.probe("shutdown", self.ctx.ops.ask_timeout_s)
        return reply if isinstance(reply, ProgrammeStatus) else None

    def risk_view(self) -> tuple[RiskStatus | None, bool]:
        """The RiskActor's snapshot and True; or, when it does not answer, what the last
        RiskParameters it published say (level, volatility, correlation) and False."""
        risk = self.risk()
        if risk is not None:
            return risk, True
        params = self.rt.tap.view()["risk"]
        if params is None:
            return None, False
        avg = getattr(params, "avg_correlation", None)
        return (
            RiskStatus(
                ts=params.ts,
                level=str(params.level),
                version=params.version,
                start_of_day_equity=None,
                peak_equity=None,
                volatility=tuple(getattr(params, "volatility", ())),
                volatility_excess=(),
                correlation=(),
                average_correlation=None if avg is None else float(avg),
                regimes=tuple(getattr(params, "regimes", ())),
                entries_allowed=bool(getattr(params, "entries_allowed", True)),
            ),
            False,
        )

    def risk_level(self, risk: RiskStatus | None) -> str:
        """The risk level: from the RiskActor, else from the last RiskParameters seen."""
        if risk is not None:
            return risk.level
        params = self.rt.tap.view()["risk"]
        return "NORMAL" if params is None else str(params.level)

    def feed(self) -> dict[str, Any]:
        """Feed state, counters, latencies and history (``docs/operations.md``).

        States: ``healthy``, ``stale``, ``finished`` (replay data exhausted), ``down`` (the
        FeedActor is not running); a live feed also ``connecting``, ``degraded`` (no websocket
        host: REST polling) and ``stopped``, and its own figures (:func:`live_view`).
        """
        tap = self.rt.tap.view()
        alive = self.rt.is_alive("feed")
        status = tap["feed_status"]
        live = self.ctx.feed_name != "replay"
        if not alive:
            state = "down"
        elif tap["feed_finished"]:
            state = "finished"
        elif status is not None and status.state in ("stale", "degraded"):
            state = status.state
        elif live and self.ctx.live_feed is None:
            state = "connecting"  # the daemon has not built the feed yet
        else:
            state = "healthy"
        last = tap["last_market_ts"]
        age = max(0.0, (self.rt.clock.now() - last) / 1e9) if last is not None else None
        base = {
            "source": self.ctx.feed_name,
            "state": state,
            "connected": alive and not live,
            "messages": tap["feed_messages"],
            "last_event_ts": last,
            "last_event_age_s": age,
            "reconnects": 0,  # replay: there is no connection to lose
            "gaps": 0,
            "latency_s": 0.0,
            "history": tap["feed_history"],
        }
        if self.ctx.live_feed is None:
            return base
        return live_view(base, self.ctx.live_feed.status(self.ctx.ops.ask_timeout_s), alive)

    def feed_state(self) -> str:
        """Just the feed's state (cheaper than :meth:`feed` for a live feed)."""
        if self.ctx.live_feed is None or not self.rt.is_alive("feed"):
            return str(self.feed()["state"])
        return self.ctx.live_feed.state(self.ctx.ops.ask_timeout_s)

    # -- liveness and readiness -----------------------------------------------------------------

    def health(self) -> tuple[int, dict[str, Any]]:
        """Liveness: the process answers and its actors are up (or restarting within grace).

        ``degraded`` (still 200) while an actor restarts, the live feed has no websocket host or
        one of its connection threads crashed (restarting) or ended (down), or a guarded thread
        crashed and waits to restart; ``failing`` (503) when a guarded thread is dead (ended by
        something its guard does not restart).
        """
        ops, rt = self.ctx.ops, self.rt
        pings = rt.ping_all(ops.ping_timeout_s)
        _, _, down_since = rt.history()
        now = time.monotonic()
        actors, failing, degraded = {}, [], []
        for name in rt.registry:
            if name in pings:
                state = "up" if pings[name] else "unresponsive"
            else:
                down_for = now - down_since.get(name, self._created)
                state = "restarting" if down_for < ops.down_grace_s else "down"
                if name in GUARDIANS:
                    state = "down"
            actors[name] = state
            if state in ("down", "unresponsive"):
                failing.append(name)
            elif state == "restarting":
                degraded.append(name)
        stopping = rt.exit_event.is_set()
        feed = self.feed_state()
        if feed in ("degraded", "restarting", "down"):
            # degraded: no websocket host (REST polling); restarting: a connection thread
            # crashed and is being restarted; down: a connection thread ended on its own
            degraded.append("feed")
        threads = self.ctx.threads.unhealthy()
        for t in threads:
            (failing if t["state"] == "dead" else degraded).append(f"thread {t['name']}")
        status = (
            "stopping" if stopping else "failing" if failing else "degraded" if degraded else "ok"
        )
        body = {
            "status": status,
            "pid": os.getpid(),
            "uptime_s": round(time.time() - rt.started_wall, 3),
            "actors": actors,
            "feed": feed,
            "threads": {"ok": not threads, "unhealthy": [_thread_brief(t) for t in threads]},
        }
        if stopping:
            body["exit"] = {"code": rt.exit_code, "reason": rt.exit_reason}
        return (200 if status in ("ok", "degraded") else 503), body

    def ready(self) -> tuple[int, dict[str, Any]]:
        """Readiness: feed healthy, venue reachable, journal writable, risk level acceptable,
        every guarded thread running."""
        ops = self.ctx.ops
        code, health = self.health()
        checks: dict[str, dict[str, Any]] = {}
        checks["actors"] = {"ok": code == 200, "detail": health["status"]}
        feed = self.feed()
        checks["feed"] = {"ok": feed["state"] == "healthy", "detail": feed["state"]}
        bad = health["threads"]["unhealthy"]
        checks["threads"] = {
            "ok": not bad,
            "detail": "; ".join(
                f"{t['name']} ({t['component']}) {t['state']} after {t['crashes']} crash(es): "
                f"{t['last_error']}"
                for t in bad
            )
            or f"{len(self.ctx.threads.threads())} guarded thread(s) running",
        }
        ok, detail = self.ctx.venue_probe(self.ctx.venue)
        checks["venue"] = {"ok": ok, "detail": detail}
        ok, detail = journal_view.journal_writable(self.ctx.journal_path, ops.min_free_mb)
        checks["journal"] = {"ok": ok, "detail": detail}
        load = self.load()
        checks["load"] = {
            "ok": load["state"] == "ok",
            "detail": "; ".join(load["reasons"]) or "feed lag and mailboxes within bounds",
        }
        level = self.risk_level(self.risk_view()[0])
        checks["risk"] = {
            "ok": risk_rank(level) <= risk_rank(ops.ready_max_risk_level),
            "detail": f"{level} (ready up to {ops.ready_max_risk_level})",
        }
        ready = all(c["ok"] for c in checks.values())
        return (200 if ready else 503), {"ready": ready, "checks": checks}

    def load(self) -> dict[str, Any]:
        """``overloaded`` when the feed lag p99 of the recent events exceeds
        ``ops.overload_lag_s`` or a mailbox holds more than ``ops.overload_mailbox`` messages
        (``reasons`` says which), else ``ok``; with the figures behind it and how much market
        data the mailboxes conflated (quotes dropped, trades merged) since the start."""
        ops, rt = self.ctx.ops, self.rt
        lag = rt.feed_lag.view()
        depths = rt.mailbox_depths()
        busiest = max(depths, key=lambda n: depths[n], default=None)
        depth = depths.get(busiest, 0) if busiest is not None else 0
        reasons = []
        if lag["p99_s"] is not None and lag["p99_s"] > ops.overload_lag_s:
            reasons.append(
                f"feed lag p99 {lag['p99_s']:.3f}s over the last {lag['window_samples']} "
                f"events within {lag['window_s']:g}s (bound {ops.overload_lag_s:g}s)"
            )
        if depth > ops.overload_mailbox:
            reasons.append(f"{busiest}'s mailbox holds {depth} (bound {ops.overload_mailbox})")
        return {
            "state": "overloaded" if reasons else "ok",
            "reasons": reasons,
            "feed_lag": lag,
            "largest_mailbox": {"actor": busiest, "depth": depth},
            "conflated_quotes": rt.stats.conflated,
            "merged_trades": rt.stats.merged_trades,
        }

    # -- the status snapshot --------------------------------------------------------------------

    def actor_tree(self) -> list[dict[str, Any]]:
        """Every actor of the tree, depth-first from the guardian, with restarts and mailbox."""
        rt = self.rt
        depths = rt.mailbox_depths()
        messages = rt.tap.view()["messages"]
        lifecycle, _, _ = rt.history()
        last_exit = {e["actor"]: e for e in lifecycle if e["event"] != "start"}
        children: dict[str, list[str]] = {}
        for name, reg in rt.registry.items():
            children.setdefault(reg.parent, []).append(name)
        out: list[dict[str, Any]] = []

        def visit(name: str, depth: int) -> None:
            gen = rt.generations.get(name, 0)
            exit_ = last_exit.get(name)
            out.append(
                {
                    "name": name,
                    "parent": rt.registry[name].parent,
                    "depth": depth,
                    "alive": rt.is_alive(name),
                    "generation": gen,
                    "restarts": max(0, gen - 1),
                    "mailbox": depths.get(name, 0),
                    "messages": messages.get(name, 0),
                    "last_exit": None if exit_ is None else f"{exit_['event']}: {exit_['reason']}",
                }
            )
            for child in children.get(name, []):
                visit(child, depth + 1)

        for root in children.get("main", []):
            visit(root, 0)
        return out

    def status(self) -> dict[str, Any]:
        """The whole snapshot behind ``cryptoj status``."""
        rt, ctx = self.rt, self.ctx
        portfolio, (risk, answered) = self.portfolio(), self.risk_view()
        try:
            figures = journal_view.journal_figures(ctx.journal_path)
            orders = journal_view.open_orders(ctx.journal_path)
            risk_events = journal_view.recent_events(
                ctx.journal_path, ("risk_level", "risk_halted", "emergency"), 10
            )
            programme_events = journal_view.recent_events(ctx.journal_path, ("response_level",), 10)
            changed = journal_view.recent_orders(ctx.journal_path, 10)
        except sqlite3.Error as e:
            figures, orders, risk_events = {"error": str(e)}, [], []
            programme_events, changed = [], []
        programme = self.programme()
        _, runtime_errors, _ = rt.history()
        errors = sorted(runtime_errors + ctx.errors.items(), key=lambda e: e["wall"])[-20:]
        stats = rt.stats
        level = self.risk_level(risk)
        return {
            "pid": os.getpid(),
            "mode": ctx.mode,
            "started_at": rt.started_wall,
            "uptime_s": round(time.time() - rt.started_wall, 3),
            "market_time_ns": rt.clock.now(),
            "speed": rt.clock.speed,
            "runtime": {
                "delivered": stats.delivered,
                "restarts": stats.restarts,
                "crashes": stats.crashes,
                "dead_letters": stats.dead_letters,
                "escalations": stats.escalations,
                "conflated": stats.conflated,
                "merged_trades": stats.merged_trades,
            },
            "load": self.load(),
            "actors": self.actor_tree(),
            "feed": self.feed(),
            "warmup": ctx.warmup,
            "risk": {
                "level": level,
                "snapshot": None if risk is None else msgspec.to_builtins(risk),
                "source": "risk actor" if answered else "last RiskParameters",
                "recent_events": risk_events,
            },
            "programme": {
                "snapshot": None if programme is None else msgspec.to_builtins(programme),
                "level": None if programme is None else programme.level,
                "recent_events": programme_events,
            },
            "portfolio": None if portfolio is None else msgspec.to_builtins(portfolio),
            "open_orders": orders,
            "recent_orders": changed,
            "venue": {"counters": self.venue_counters()},
            "journal": figures,
            "flags": ctx.flags.describe(),
            "threads": ctx.threads.threads(),
            "thread_crashes": ctx.threads.crashes(),
            "errors": errors,
        }


def _thread_brief(t: dict[str, Any]) -> dict[str, Any]:
    keys = ("name", "component", "state", "crashes", "last_error")
    return {k: t[k] for k in keys}


__all__ = ["ErrorLog", "OpsContext", "OpsState", "venue_check"]
