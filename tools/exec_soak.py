"""Execution soak: the real daemon trading the local fake Coinbase through faults and crashes.

    python tools/exec_soak.py --orders 200 --fault-rate 0.2 --seed 3 --json
    python tools/exec_soak.py --orders 200 --fault-rate 0.2 --seed 3 --kill9 3 --json
    python tools/exec_soak.py --orders 40 --kill9 4 --keep /tmp/soak --trace   # to diagnose

What runs: the fake exchange (in this process: market data, private REST with a registered
API key, the user channel) and the daemon as a child process, ``python -m cryptoj run --live``
in ``mode: live`` against the fake, with ``strategy.kind: manual``. The tool sets random target
weights through the ops endpoint (``POST /control/target``), so every order goes the real way:
PortfolioActor (check-and-reserve, journal first) → ExecutionActor → CoinbaseVenue → the fake.

What goes wrong on purpose (all seeded by ``--seed``):

* random REST faults on the order endpoints, ``--fault-rate`` of the calls: 429 (HTML or JSON
  bodies), 5xx (before or after the order is committed), delays past the client timeout,
  ``success:false``, ``"order_configuration": null``, the connection dropped after the commit;
* the user channel dropped, and past user events replayed after a reconnect;
* ``--restarts`` operator restarts of the ExecutionActor and the PortfolioActor mid-run
  (``POST /control/restart``: the supervisor stops and restarts them);
* ``--kill9 N``: N SIGKILLs of the whole daemon process at random points, each followed by a
  fresh start that recovers from the journal and the venue.

At the end the daemon is stopped with SIGTERM (one last fresh start first when the last event
was a kill), and the journal is audited against the fake's own books. The last line printed is
one JSON object:

``orders_intended``            intents the PortfolioActor journalled
``orders_at_venue``            orders the fake holds
``duplicates_at_venue``        venue orders beyond one per intent (a re-post under a new id,
                               or a second order under one id): must be 0
``lost_fills``                 venue fills the journal does not book: must be 0
``overbooked_fills``           journal quantity beyond the venue's (a double count): must be 0
``unknown_outcomes``           orders whose create answer was lost (journal ``outcome_unknown``)
``unknown_outcomes_resolved``  of those, settled by ``client_order_id`` (``outcome_resolved``,
                               and no longer PENDING in the journal)
``positions_match``            journal cash and positions equal the fake's account balances
``split_orders``               intents the ExecutionActor split into child orders
``child_orders``               child orders journalled (each must be at the venue at most once;
                               a child is not an intent: its fills are booked under its parent)
``wall_seconds``               the whole run
``not_sent``                   intents whose order never reached the ExecutionActor's journal (lost
                               to a SIGKILL in between): certainly never sent, closed NOT_SENT
``start_to_first_order_s``     per (re)start followed by an order: seconds from the process
                               spawn to the first order the fake received (liveness; target 5;
                               ``starts_within_5s`` counts them, with every life longer than 5 s
                               that saw no order at all, ``starts_without_order``, as a miss)
``starts_cut_short``           lives killed within 5 s before any order: not judged
``slow_starts``                per start with no order within 5 s: each target change the soak
                               made meanwhile and what held its product (``JournalHolds``)
``start_phases_s``             per such start, seconds after the spawn: the daemon answered
                               /health (execution up), the first intent, the first order the
                               ExecutionActor journalled after it, the first order at the fake
                               (intent → journalled is the ExecutionActor's mailbox wait)
``intent_statuses``            intents per final status (none may stay ``open``)
``settled_before_stop``        nothing was open before the final SIGTERM (an order the portfolio
                               decides just then is drained by the orderly stop and audited too)
plus the faults injected, kills, restarts, exit codes and the journal's open intents.

``--cached-bytecode`` compiles cryptoj once (``compileall``, into its ``__pycache__``) and
starts the daemon without ``PYTHONDONTWRITEBYTECODE``: with that variable set (as in the helper
sessions), every start compiles every cryptoj module from source, a cost an installed daemon
does not pay (``tools/bench_start.py`` measures both).

``--keep DIR --trace`` keeps the daemon's message trace (``DIR/trace.jsonl``, every life
appended; each starts again at ``seq`` 1): what each actor received and when, e.g. where a
start's time went before its first intent.

Order splitting runs with short slots (``execution.child_interval_s`` 0.5 s,
``max_duration_s`` 4 s) so that split parents finish within a target change or two, and kills
and restarts land in the middle of them.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import cached_bytecode_env  # noqa: E402

from cryptoj.adapters.coinbase.fake.auth import generate_api_key, write_key_file  # noqa: E402
from cryptoj.adapters.coinbase.fake.server import FakeCoinbase  # noqa: E402
from cryptoj.adapters.coinbase.parse import rfc3339_ns  # noqa: E402
from cryptoj.models.orders import Fill, Side  # noqa: E402

PRODUCTS = ("BTC-USD", "ETH-USD", "LTC-USD")
WEIGHTS = (0.0, 0.02, 0.03, 0.04, 0.05, 0.06, 0.08)  # ≥ min_position_size, ≤ the 10 % limit
START_USD = "100000"
READY_S = 60.0  # a (re)started daemon must serve /health within this
ORDER_WAIT_S = 4.0  # how long one target change may take to produce an intent
SETTLE_S = 120.0
LIVENESS_S = 5.0  # target: an order at the venue within this of every (re)start
NO_HOLD = "none in the journal"  # what held a product, when nothing did (slow_starts)
OPEN_INTENTS = "SELECT COUNT(*) FROM intents WHERE closed_ts IS NULL"
OPEN_ORDERS = "SELECT COUNT(*) FROM orders WHERE status IN ('PENDING', 'OPEN')"
CLI = (
    sys.executable,
    "-m",
    "cryptoj",
    "run",
    "--live",
)  # at the end: every intent closed and nothing open at the venue within this


def free_port() -> int:
    """An ephemeral loopback port (closed again; the daemon binds it right after)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def soak_config(
    tmp: Path, fake: FakeCoinbase, key_file: Path, *, trace: bool = False
) -> dict[str, Any]:
    """The daemon's config: live against the fake, manual targets, risk out of the way.

    The risk and emergency limits, the turnover budget and the cost band are loosened on
    purpose (fees of random churn and injected rejections would otherwise halt trading, and
    small target changes would not trade): this soak tests execution, not risk or costs.
    """
    return {
        "mode": "live",
        "live_trading_confirmed": True,
        "feed": {
            "source": "coinbase",
            "products": list(PRODUCTS),
            "tick_bar_size": 20,
            "coinbase": {
                "ws_urls": [fake.ws_url],
                "rest_url": fake.rest_url,
                "ca_file": fake.ca_file,
                "backoff_min_s": 0.1,
                "backoff_max_s": 1.0,
            },
        },
        "coinbase": {
            "key_file": str(key_file),
            "api_key_env": "EXEC_SOAK_NO_KEY",
            "api_secret_env": "EXEC_SOAK_NO_SECRET",
            "rest_url": fake.rest_url,
            "user_ws_url": fake.ws_url,
            "ca_file": fake.ca_file,
            "timeout_s": 1.0,  # the fake's random delays (1.5 s) time out
            "reconcile_interval_s": 2.0,
            "absent_grace_s": 10.0,  # an order still absent 10 s after its intent is lost
        },
        "strategy": {"kind": "manual"},
        "execution": {"child_interval_s": 0.5, "max_duration_s": 4.0},
        "risk": {
            "daily_loss_limit": 0.5,
            "caution_drawdown": 0.5,
            "stop_loss": 0.5,
            "max_drawdown": 0.9,
            "max_daily_turnover": 100.0,  # the soak churns on purpose
        },
        "portfolio": {"cost_band_multiple": 0.0},  # every target change must trade
        "shutdown": {
            "monitor": {"max_drawdown": 0.0, "max_error_rate": 0.0},
            "stop_wait_s": 20.0,  # the final SIGTERM books what is in flight (faults slow it)
        },
        "journal": {"path": str(tmp / "journal.sqlite")},
        "trace": {"enabled": trace, "path": str(tmp / "trace.jsonl")},
        "logging": {"level": "INFO", "file": str(tmp / "daemon.log")},
    }


class DaemonProcess:
    """``python -m cryptoj run --live`` as a child process, started and stopped by the soak."""

    def __init__(
        self,
        config: Path,
        log: Path,
        *,
        env: dict[str, str] | None = None,
        cwd: Path = ROOT,
        poll_s: float = 0.1,
    ) -> None:
        self.config = config
        self.log = log
        self.env = env  # None: this process's environment
        self.cwd = cwd  # the checkout whose cryptoj runs (with env's PYTHONPATH)
        self.poll_s = poll_s  # how often /health is asked while starting
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.exit_codes: list[int] = []
        self.starts_ns: list[int] = []  # wall clock (the fake's clock too) of each spawn
        self.ready_ns: list[int] = []  # when each start answered /health with execution up

    def start(self) -> None:
        """Start and wait until the ops endpoint answers /health (or fail naming why)."""
        self.port = free_port()
        self.starts_ns.append(time.time_ns())
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            [*CLI, "--config", str(self.config), "--ops-port", str(self.port)],
            cwd=self.cwd,
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        out.close()
        deadline = time.monotonic() + READY_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"the daemon exited with {self.proc.returncode} while starting; see {self.log}"
                )
            with contextlib.suppress(OSError, ValueError):
                code, body = self.call("GET", "/health")
                if code == 200 and body.get("actors", {}).get("execution") == "up":
                    self.ready_ns.append(time.time_ns())
                    return
            time.sleep(self.poll_s)
        raise RuntimeError(f"the daemon did not become healthy within {READY_S:g}s; see {self.log}")

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """One request to the ops endpoint; the JSON answer."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            data = None if body is None else json.dumps(body).encode()
            headers = {"Content-Type": "application/json"} if data is not None else {}
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            return resp.status, json.loads(resp.read() or b"{}")
        finally:
            conn.close()

    def kill9(self) -> None:
        """SIGKILL the whole process: no on_stop, no flush, nothing."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.exit_codes.append(self.proc.wait(30))
        self.proc = None

    def kill_if_running(self) -> None:
        """SIGKILL the child if it still runs (the soak ends with an error)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        self.proc = None

    def stop(self) -> int:
        """SIGTERM and wait for an orderly exit; its exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(30)
        self.exit_codes.append(code)
        self.proc = None
        return code


def read_journal(path: Path, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows of a read-only query (the daemon may be writing: WAL lets us read alongside)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def count_intents(path: Path) -> int:
    """Intents journalled so far (0 before the journal exists)."""
    if not path.exists():
        return 0
    with contextlib.suppress(sqlite3.OperationalError):
        return int(read_journal(path, "SELECT COUNT(*) FROM intents")[0][0])
    return 0


def split_parent_of(journal: Path) -> dict[str, str]:
    """Child order id → its split parent's id, for every child the journal holds."""
    parents = {
        json.loads(detail)["order"]["client_order_id"]
        for (detail,) in read_journal(
            journal, "SELECT detail FROM events WHERE kind = 'split_plan'"
        )
    }
    out = {}
    for (coid,) in read_journal(journal, "SELECT client_order_id FROM orders"):
        parent, _, n = coid.rpartition("-c")
        if parent in parents and n.isdigit() and not n.startswith("0"):
            out[coid] = parent
    return out


def audit(journal: Path, venue: dict[str, Any]) -> dict[str, Any]:
    """Compare the journal with the fake's books (``FakeCoinbase.state()["exchange"]``).

    A split parent is never at the venue: its children are, each under its own id, and their
    fills are booked under the parent's id; venue orders and fills are compared per intent.
    """
    intents = {
        r[0]: r[1] for r in read_journal(journal, "SELECT client_order_id, status FROM intents")
    }
    parent_of = split_parent_of(journal)
    booked: dict[str, Decimal] = defaultdict(Decimal)
    for coid, qty in read_journal(journal, "SELECT client_order_id, quantity FROM fills"):
        booked[coid] += Decimal(qty)
    start = Decimal(
        read_journal(journal, "SELECT value FROM meta WHERE key = 'starting_cash'")[0][0]
    )
    cash = start
    positions: dict[str, Decimal] = defaultdict(Decimal)
    for product, side, qty, price, fee in read_journal(
        journal, "SELECT product, side, quantity, price, fee FROM fills"
    ):
        f = Fill(
            fill_id="x",
            client_order_id="x",
            product=product,
            side=Side(side),
            quantity=Decimal(qty),
            price=Decimal(price),
            fee=Decimal(fee),
            liquidity="TAKER",
        )
        cash += f.cash_delta
        positions[product.split("-")[0]] += f.quantity if f.side is Side.BUY else -f.quantity
    notes: dict[str, set[str]] = defaultdict(set)
    for kind, detail in read_journal(
        journal,
        "SELECT kind, detail FROM events WHERE kind IN ('outcome_unknown', 'outcome_resolved')",
    ):
        notes[kind].add(detail.split(":", 1)[0])
    unknown = notes["outcome_unknown"]
    order_status = dict(read_journal(journal, "SELECT client_order_id, status FROM orders"))
    orders = venue["orders"]
    per_coid = venue["orders_per_client_order_id"]
    strangers = [
        o["client_order_id"]
        for o in orders
        if o["client_order_id"] not in intents and o["client_order_id"] not in parent_of
    ]
    duplicates = sum(n - 1 for n in per_coid.values() if n > 1) + len(strangers)
    fills_by_order: dict[str, list[dict[str, Any]]] = defaultdict(list)
    coid_of = {  # children's fills count for their parent (the intent)
        o["order_id"]: parent_of.get(o["client_order_id"], o["client_order_id"]) for o in orders
    }
    for vf in venue["fills"]:
        fills_by_order[coid_of.get(vf["order_id"], "?")].append(vf)
    lost = overbooked = 0
    for coid, fills in fills_by_order.items():
        venue_qty = Decimal(0)
        for vf in sorted(fills, key=lambda x: (x["sequence_timestamp"], x["trade_id"])):
            venue_qty += Decimal(vf["size"])
            lost += venue_qty > booked.get(coid, Decimal(0))
        overbooked += booked.get(coid, Decimal(0)) > venue_qty
    balances = {c: Decimal(b["total"]) for c, b in venue["balances"].items()}
    match = cash == balances.get("USD", Decimal(0)) and all(
        positions.get(c, Decimal(0)) == balances.get(c, Decimal(0)) for c in ("BTC", "ETH", "LTC")
    )
    return {
        "orders_intended": len(intents),
        "orders_at_venue": len(orders),
        "duplicates_at_venue": duplicates,
        "lost_fills": lost,
        "overbooked_fills": overbooked,
        "venue_fills": len(venue["fills"]),
        "journal_fills": int(read_journal(journal, "SELECT COUNT(*) FROM fills")[0][0]),
        "unknown_outcomes": len(unknown),
        "unknown_outcomes_resolved": sum(
            c in notes["outcome_resolved"] and order_status.get(c) not in (None, "PENDING")
            for c in unknown
        ),
        "open_intents": int(read_journal(journal, OPEN_INTENTS)[0][0]),
        "not_sent": int(
            read_journal(journal, "SELECT COUNT(*) FROM intents WHERE status = 'NOT_SENT'")[0][0]
        ),
        "open_orders": int(read_journal(journal, OPEN_ORDERS)[0][0]),
        "intent_statuses": dict(
            read_journal(journal, "SELECT status, COUNT(*) FROM intents GROUP BY status")
        ),
        "positions_match": match,
        "split_orders": len(set(parent_of.values())),
        "child_orders": len(parent_of),
        "journal_cash": str(cash),
        "venue_usd": str(balances.get("USD", Decimal(0))),
        "journal_positions": {c: str(q) for c, q in sorted(positions.items()) if q},
        "venue_positions": {c: str(q) for c, q in sorted(balances.items()) if c != "USD" and q},
        "venue_invariant_violations": venue["invariant_violations"],
    }


def first_orders(
    starts_ns: list[int], ready_ns: list[int], orders: list[dict[str, Any]], journal: Path
) -> dict[str, Any]:
    """Liveness after each (re)start: seconds from the process spawn to the first order the
    fake received after it, per start that was followed by an order; and where that time went
    (``start_phases_s``, module docstring). A life that lasted longer than LIVENESS_S without
    any order counts as a start not within it (``starts_without_order``); one killed sooner
    than that without an order cannot be judged (``starts_cut_short``), nor can the last
    start when no order followed it (the run had asked for everything by then)."""
    created = sorted(rfc3339_ns(o["created_time"]) for o in orders)
    intents = sorted(int(t) for (t,) in read_journal(journal, "SELECT ts FROM intents"))
    journalled = sorted(int(t) for (t,) in read_journal(journal, "SELECT created_ts FROM orders"))
    delays, phases = [], []
    without = cut_short = 0
    for i, start in enumerate(starts_ns):
        end = starts_ns[i + 1] if i + 1 < len(starts_ns) else None
        first = next((c for c in created if c >= start), None)
        if first is None or (end is not None and first >= end):
            if end is not None and end - start > LIVENESS_S * 1e9:
                without += 1
            elif end is not None:
                cut_short += 1
            continue
        delays.append(round((first - start) / 1e9, 2))
        intent = next((t for t in intents if t >= start), first)
        order = next((t for t in journalled if t >= intent), first)
        ready = ready_ns[i] if i < len(ready_ns) else start
        phases.append([round((t - start) / 1e9, 2) for t in (ready, intent, order, first)])
    return {
        "start_to_first_order_s": delays,
        "max_start_to_first_order_s": max(delays, default=None),
        "starts_within_5s": (f"{sum(d <= LIVENESS_S for d in delays)} of {len(delays) + without}"),
        "starts_without_order": without,
        "starts_cut_short": cut_short,
        "start_phases_s": phases,
        "slow_starts": slow_starts(starts_ns, created, journal),
    }


def slow_starts(starts_ns: list[int], created: list[int], journal: Path) -> list[dict[str, Any]]:
    """Why a (re)start had no order at the venue within LIVENESS_S: every target change the
    soak made from the spawn to the first order (or to the next start, ``first_order_s`` None:
    a life longer than LIVENESS_S without an order), each with what held its product at the
    change and when the soak moved on (the next change, or the first order), from the journal
    (``held_by``, see :meth:`JournalHolds.holds_at`)."""
    targets = [
        (int(ts), json.loads(detail)["product"])
        for ts, detail in read_journal(
            journal, "SELECT ts, detail FROM events WHERE kind = 'operator_target' ORDER BY seq"
        )
    ]
    book = JournalHolds(journal)
    out = []
    for i, start in enumerate(starts_ns):
        end = starts_ns[i + 1] if i + 1 < len(starts_ns) else None
        first = next((c for c in created if c >= start and (end is None or c < end)), None)
        until = first if first is not None else end
        if until is None or until - start <= LIVENESS_S * 1e9:
            continue  # an order in time, or killed before LIVENESS_S (or the last start)
        times = [t for t, _ in targets if start <= t < until] + [until]
        changes = [  # what held the product at the change and when the soak moved on
            {
                "at_s": round((t - start) / 1e9, 2),
                "product": product,
                "held_by": book.holds_during(product, t, times[times.index(t) + 1] - 1, start),
            }
            for t, product in targets
            if start <= t < until
        ]
        out.append(
            {
                "start": i,
                "first_order_s": None if first is None else round((first - start) / 1e9, 2),
                "target_changes": changes,
            }
        )
    return out


class JournalHolds:
    """What the journal says held a product at a moment: its intents, orders and notes."""

    def __init__(self, journal: Path) -> None:
        self.intents = read_journal(
            journal, "SELECT client_order_id, product, ts, closed_ts, status FROM intents"
        )
        parent_of = split_parent_of(journal)
        self.orders: dict[str, list[tuple[str, int]]] = defaultdict(list)  # intent → its orders
        rows = read_journal(journal, "SELECT client_order_id, created_ts FROM orders")
        for coid, created in rows:
            self.orders[parent_of.get(coid, coid)].append((coid, int(created)))
        self.notes: dict[str, dict[str, tuple[int, str]]] = defaultdict(dict)
        for ts, kind, detail in read_journal(
            journal,
            "SELECT ts, kind, detail FROM events WHERE kind IN "
            "('outcome_unknown', 'outcome_resolved', 'split_plan') ORDER BY seq",
        ):
            if kind == "split_plan":
                coid = json.loads(detail)["order"]["client_order_id"]
            else:
                coid, _, detail = detail.partition(": ")
            self.notes[kind].setdefault(coid, (int(ts), detail))
        self.legs = read_journal(  # each rebalance leg: product, transaction, planned, last step
            journal,
            "SELECT l.client_order_id, l.product, l.txn_id, t.created_ts, t.updated_ts"
            " FROM rebalance_legs l JOIN rebalance_txns t USING (txn_id)",
        )
        self.sent: dict[str, int] = {}  # leg → when its transaction sent it
        for ts, detail in read_journal(
            journal,
            "SELECT ts, detail FROM rebalance_steps WHERE step IN ('sells_sent', 'buys_sent')",
        ):
            for leg in json.loads(detail)["legs"]:
                self.sent.setdefault(leg, int(ts))

    def holds_during(self, product: str, t0: int, t1: int, start: int) -> list[str]:
        """:meth:`holds_at` at ``t0`` and at ``t1``, each once."""
        held = dict.fromkeys(self.holds_at(product, t0, start) + self.holds_at(product, t1, start))
        return [h for h in held if h != NO_HOLD] or [NO_HOLD]

    def holds_at(self, product: str, t: int, start: int) -> list[str]:
        """The open intents of ``product`` at ``t`` (ns), each as what kept it open: an order of
        unknown outcome (from the killed life or this one; when and how it was settled), a
        split parent, or an open order; and a planned rebalance leg of ``product`` not sent
        yet (a buy waits for its transaction's sells); ``none in the journal`` when nothing
        was there (then a stale or missing quote, no risk parameters yet, or no leg planned)."""
        out = []
        for coid, p, ts, closed, status in self.intents:
            if p != product or int(ts) > t or (closed is not None and int(closed) <= t):
                continue
            ends = "never" if closed is None else f"{(int(closed) - start) / 1e9:.1f}s"
            what = f"open order {coid} (closed {status} at {ends})"
            for oid, created in sorted(self.orders.get(coid, [])):
                unknown = self.notes["outcome_unknown"].get(oid)
                if unknown is None or unknown[0] > t:
                    continue
                settled = self.notes["outcome_resolved"].get(oid)
                if settled is not None and settled[0] <= t:
                    continue
                life = "the killed life's" if created < start else "this life's"
                how = (
                    "never settled"
                    if settled is None
                    else f"settled at {(settled[0] - start) / 1e9:.1f}s: {settled[1]}"
                )
                what = f"{life} order {oid} of unknown outcome ({how})"
                break
            else:
                if coid in self.notes["split_plan"]:
                    what = f"split parent {coid} (closed {status} at {ends})"
            out.append(what)
        for leg, p, txn, planned, last in self.legs:
            sent = self.sent.get(leg)
            if p == product and int(planned) <= t < int(last) and (sent is None or sent > t):
                when = "never" if sent is None else f"at {(sent - start) / 1e9:.1f}s"
                out.append(f"leg {leg} of {txn}, sent after its earlier legs ({when})")
        return out or [NO_HOLD]


class Soak:
    """One soak run: drive targets, inject faults, kill and restart, then audit."""

    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.args = args
        self.tmp = tmp
        self.rng = random.Random(f"exec-soak:{args.seed}")
        self.key = generate_api_key(args.key_type)
        self.key_file = write_key_file(self.key, tmp / "key.json")
        self.fake = FakeCoinbase(
            products=list(PRODUCTS),
            jwt_key_name=self.key.name,
            jwt_public_key=self.key.public_pem,
            balances={"USD": START_USD},
            order_fault_rate=args.fault_rate,
            fault_seed=args.seed,
        )
        self.journal = tmp / "journal.sqlite"
        self.kills = self.restarts = self.user_faults = 0
        self.targets = dict.fromkeys(PRODUCTS, 0.0)
        self.log = tmp / "daemon.out"

    def run(self) -> dict[str, Any]:
        """The whole soak; the JSON summary."""
        t0 = time.monotonic()
        with self.fake:
            cfg = self.tmp / "soak.yaml"
            cfg.write_text(
                yaml.safe_dump(
                    soak_config(self.tmp, self.fake, self.key_file, trace=self.args.trace)
                )
            )
            daemon = DaemonProcess(cfg, self.log, env=self._daemon_env())
            try:
                daemon.start()
                n = self.args.orders
                kill_at = (
                    sorted(self.rng.sample(range(n // 10, n), self.args.kill9)) if n > 10 else []
                )
                restart_at = {
                    n * (i + 1) // (self.args.restarts + 1): ("execution", "portfolio")[i % 2]
                    for i in range(self.args.restarts)
                }
                deadline = t0 + self.args.timeout_s
                stalled = 0
                # on past n intents while a kill is still due: every kill asked for happens
                while time.monotonic() < deadline and (
                    (done := count_intents(self.journal)) < n or kill_at
                ):
                    if kill_at and done >= kill_at[0]:
                        kill_at.pop(0)
                        daemon.kill9()
                        self.kills += 1
                        daemon.start()
                    for at in [a for a in restart_at if done >= a]:
                        actor = restart_at.pop(at)
                        code, _ = daemon.call(
                            "POST", "/control/restart", {"actor": actor, "reason": "soak"}
                        )
                        self.restarts += code == 202
                    if self.rng.random() < 0.05:
                        kind = self.rng.choice(("user_disconnect", "user_replay"))
                        self.fake.inject(kind)
                        self.user_faults += 1
                    stalled = 0 if self._new_target(daemon, done) else stalled + 1
                    if stalled > 20:
                        raise RuntimeError(f"no new intent after 20 target changes; see {self.log}")
                settled = self._settle()
                code = daemon.stop()
            finally:
                daemon.kill_if_running()  # an error above must not leave the daemon behind
            venue = self.fake.state()
        (self.tmp / "venue.json").write_text(json.dumps(venue, indent=1, default=str))
        result = audit(self.journal, venue["exchange"])
        result.update(
            first_orders(
                daemon.starts_ns, daemon.ready_ns, venue["exchange"]["orders"], self.journal
            )
        )
        result.update(
            {
                "kills": self.kills,
                "actor_restarts": self.restarts,
                "user_channel_faults": self.user_faults,
                "faults_injected": {
                    k.removesuffix("_injected"): v
                    for k, v in sorted(venue["counts"].items())
                    if k.endswith("_injected")
                },
                "exit_codes": daemon.exit_codes,
                "final_exit_code": code,
                "settled_before_stop": settled,
                "wall_seconds": round(time.monotonic() - t0, 1),
            }
        )
        return result

    def _daemon_env(self) -> dict[str, str] | None:
        """With ``--cached-bytecode``: :func:`common.cached_bytecode_env` (cryptoj compiled once
        here, the daemon running from that bytecode); None otherwise (this environment)."""
        return cached_bytecode_env(ROOT) if self.args.cached_bytecode else None

    def _new_target(self, daemon: DaemonProcess, done: int) -> bool:
        """Change one product's target; True when an intent followed within ORDER_WAIT_S."""
        product = self.rng.choice(PRODUCTS)
        weight = self.rng.choice([w for w in WEIGHTS if w != self.targets[product]])
        body = {"product": product, "weight": weight, "reason": "soak"}
        with contextlib.suppress(OSError):
            code, _ = daemon.call("POST", "/control/target", body)
            if code == 202:
                self.targets[product] = weight
        end = time.monotonic() + ORDER_WAIT_S
        while time.monotonic() < end:
            if count_intents(self.journal) > done:
                return True
            time.sleep(0.05)
        return False

    def _settle(self) -> bool:
        """Wait until no intent or order is open in the journal and nothing at the venue
        (False when that did not happen within SETTLE_S; the SIGTERM then drains the rest).

        An order whose outcome is unknown stays PENDING until it is found, or until its
        absence is final (``coinbase.absent_grace_s``): the settle waits for that too.
        """
        end = time.monotonic() + SETTLE_S
        while time.monotonic() < end:
            (open_intents,) = read_journal(self.journal, OPEN_INTENTS)[0]
            (open_orders,) = read_journal(self.journal, OPEN_ORDERS)[0]
            if (
                not open_intents
                and not open_orders
                and not self.fake.state()["exchange"]["open_orders"]
            ):
                return True
            time.sleep(0.2)
        return False


def main(argv: list[str] | None = None) -> int:
    """Run the soak; exit 0 when no order was lost or duplicated and the books match."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--orders", type=int, default=200, help="intents to drive (default 200)")
    ap.add_argument("--fault-rate", type=float, default=0.2, help="REST fault rate (0.2)")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--kill9", type=int, default=0, metavar="N", help="SIGKILL the daemon N times")
    ap.add_argument("--restarts", type=int, default=2, help="operator actor restarts (2)")
    ap.add_argument("--key-type", choices=("ES256", "Ed25519"), default="Ed25519")
    ap.add_argument("--timeout-s", type=float, default=900.0, help="give up driving after this")
    ap.add_argument("--keep", metavar="DIR", help="keep the journal, config and logs here")
    ap.add_argument(
        "--trace", action="store_true", help="record the daemon's message trace (with --keep)"
    )
    ap.add_argument(
        "--cached-bytecode",
        action="store_true",
        help="compile cryptoj once before the first start instead of inheriting "
        "PYTHONDONTWRITEBYTECODE (under which every start compiles every module from source)",
    )
    ap.add_argument("--json", action="store_true", help="print only the JSON summary")
    args = ap.parse_args(argv)
    if args.orders < 1:
        ap.error("--orders must be at least 1")
    # the kill points are distinct intent counts from the first tenth on (Soak.run)
    points = args.orders - args.orders // 10 if args.orders > 10 else 0
    if not 0 <= args.kill9 <= points:
        ap.error(
            f"--kill9 must be between 0 and {points} with --orders {args.orders} "
            "(one kill per intent count from the first tenth of the run on; none below 11 orders)"
        )
    if args.keep:
        tmp = Path(args.keep)
        tmp.mkdir(parents=True, exist_ok=True)
        ctx: contextlib.AbstractContextManager[Any] = contextlib.nullcontext(str(tmp))
    else:
        ctx = tempfile.TemporaryDirectory(prefix="exec-soak-")
    with ctx as d:
        result = Soak(args, Path(d)).run()
    ok = (
        result["duplicates_at_venue"] == 0
        and result["lost_fills"] == 0
        and result["overbooked_fills"] == 0
        and result["positions_match"]
        and result["unknown_outcomes_resolved"] == result["unknown_outcomes"]
    )
    if not args.json:
        for k, v in result.items():
            print(f"{k:28} {v}")
        print("OK" if ok else "FAILED")
    if not ok:
        print(f"FAILED; reproduce with: {reproduce_command(argv)}", file=sys.stderr)
    print(json.dumps(result))
    return 0 if ok else 1


def reproduce_command(argv: list[str] | None) -> str:
    """The command line that runs this soak again with the same arguments and seed."""
    args = sys.argv[1:] if argv is None else argv
    return " ".join(["python", "tools/exec_soak.py", *args])


if __name__ == "__main__":
    raise SystemExit(main())
