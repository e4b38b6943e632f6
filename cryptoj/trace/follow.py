"""The causal graph behind ``trace follow``: :class:`TraceIndex` (a loaded trace indexed by
``(run, message id)``, by cause and by client order id), the :class:`FollowNode` lines it yields,
and :func:`order_outcomes`, what happened to each client order of a followed chain.
"""

from __future__ import annotations

import bisect
import gc
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from cryptoj.trace.records import Record, order_ids

_CHILD = re.compile(r"^(.+)-c\d+$")


@dataclass(frozen=True)
class FollowNode:
    """One line of a followed chain. ``role``: ``root``, ``cause`` (between root and target),
    ``target``, ``effect`` (caused by a node), ``mention`` (names the order, not causally
    linked) or ``risk`` (the RiskParameters the portfolio held when it decided the order below)."""

    record: Record
    depth: int
    role: str


class TraceIndex:
    """A loaded trace indexed by message id, by cause and by client order id."""

    def __init__(self, records: Iterable[Record]) -> None:
        """Load ``records`` (in file order). The cyclic GC is paused meanwhile: its passes over
        hundreds of thousands of new, acyclic objects would more than double the load time."""
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            self._load(records)
        finally:
            if was_enabled:
                gc.enable()

    def _load(self, records: Iterable[Record]) -> None:
        self.records: list[Record] = []
        self.by_id: dict[tuple[int, str], Record] = {}
        self.children: defaultdict[tuple[int, str], list[Record]] = defaultdict(list)
        self.by_order: defaultdict[tuple[int, str], list[Record]] = defaultdict(list)
        self.child_orders: defaultdict[tuple[int, str], dict[str, None]] = defaultdict(dict)
        self.risk_positions: list[int] = []
        self.portfolio_starts: list[int] = []
        self.runs = 0
        for rec in records:
            rec.pos = len(self.records)
            self.records.append(rec)
            self.runs = max(self.runs, rec.run + 1)
            if rec.id:
                self.by_id.setdefault((rec.run, rec.id), rec)
            if rec.cause:
                self.children[(rec.run, rec.cause)].append(rec)
            for coid in order_ids(rec):
                self.by_order[(rec.run, coid)].append(rec)
                child = _CHILD.match(coid)
                if child:  # a split order's child: ``<parent>-c<n>``
                    self.child_orders[(rec.run, child.group(1))][coid] = None
            if rec.dst == "portfolio":
                if rec.kind == "deliver" and rec.type == "RiskParameters":
                    self.risk_positions.append(rec.pos)
                elif rec.kind == "start":
                    self.portfolio_starts.append(rec.pos)

    def resolve(self, ident: str) -> Record | None:
        """The record a message id or client order id names (the latest run wins; for an
        order, its delivered SubmitOrder, else its first mention)."""
        for run in range(self.runs - 1, -1, -1):
            if (run, ident) in self.by_id:
                return self.by_id[(run, ident)]
            mentions = self.by_order.get((run, ident))
            if mentions:
                submits = [r for r in mentions if r.type == "SubmitOrder"]
                delivered = [r for r in submits if r.kind == "deliver"]
                return (delivered or submits or mentions)[0]
        return None

    def ancestors(self, rec: Record) -> list[Record]:
        """``rec`` and its causes, root first. The walk stops at a message that opens its own
        correlation (e.g. the feed's poll Tick), so it does not run back through every tick."""
        chain, seen, cur = [rec], {rec.pos}, rec
        while cur.cause and not cur.starts_chain:
            parent = self.by_id.get((cur.run, cur.cause))
            if parent is None or parent.pos in seen:
                break
            chain.append(parent)
            seen.add(parent.pos)
            cur = parent
        chain.reverse()
        return chain

    def descendants(self, rec: Record, depth: int, seen: set[int]) -> list[FollowNode]:
        """Everything ``rec`` caused, depth first in file order; a message that opens its own
        correlation is listed but not expanded. Adds the positions shown to ``seen``."""
        out: list[FollowNode] = []
        stack = [(c, depth + 1) for c in reversed(self.children.get((rec.run, rec.id), []))]
        while stack:
            cur, d = stack.pop()
            if cur.pos in seen:
                continue
            seen.add(cur.pos)
            out.append(FollowNode(cur, d, "effect"))
            if cur.id and not cur.starts_chain:
                kids = self.children.get((cur.run, cur.id), [])
                stack.extend((c, d + 1) for c in reversed(kids))
        return out

    def risk_snapshot(self, submit: Record) -> Record | None:
        """The last RiskParameters delivered to ``portfolio`` before it handled the message
        that made it send ``submit`` (before ``submit`` itself when that message is unknown)."""
        decided = self.by_id.get((submit.run, submit.cause)) if submit.cause else None
        pos = decided.pos if decided is not None and decided.dst == "portfolio" else submit.pos
        i = bisect.bisect_left(self.risk_positions, pos) - 1
        if i < 0:
            return None
        snap = self.records[self.risk_positions[i]]
        return snap if snap.run == submit.run else None

    def restarted_between(self, first: Record, last: Record) -> bool:
        """True when ``portfolio`` (re)started between the two records (its state was reset)."""
        i = bisect.bisect_right(self.portfolio_starts, first.pos)
        return i < len(self.portfolio_starts) and self.portfolio_starts[i] < last.pos

    def follow(self, ident: str) -> list[FollowNode]:
        """The causal tree around ``ident``: root … target, what the target caused, then records
        naming the same client order ids or their child orders (and what they caused), each
        SubmitOrder preceded by its risk snapshot. Raises ``KeyError`` for an unknown id."""
        target = self.resolve(ident)
        if target is None:
            raise KeyError(ident)
        chain = self.ancestors(target)
        nodes = [
            FollowNode(r, i, "target" if r is target else ("root" if i == 0 else "cause"))
            for i, r in enumerate(chain)
        ]
        seen = {r.pos for r in chain}
        nodes += self.descendants(target, len(chain) - 1, seen)
        coids = dict.fromkeys(c for n in nodes for c in order_ids(n.record))
        for coid in list(coids):  # a split order's children reach the venue without a message
            coids.update(self.child_orders.get((target.run, coid), {}))
        for coid in coids:
            for rec in self.by_order.get((target.run, coid), []):
                if rec.pos not in seen:
                    seen.add(rec.pos)
                    nodes.append(FollowNode(rec, 1, "mention"))
                    nodes += self.descendants(rec, 1, seen)
        out: list[FollowNode] = []
        for node in nodes:
            if node.record.type == "SubmitOrder":
                snap = self.risk_snapshot(node.record)
                if snap is not None:
                    out.append(FollowNode(snap, node.depth, "risk"))
            out.append(node)
        return out


@dataclass
class OrderOutcome:
    """What happened to one client order, from the records of a followed chain."""

    client_order_id: str
    submit: Record | None = None
    fills: list[Record] = field(default_factory=list)
    status: str = "unknown"
    filled: Decimal = Decimal(0)
    notional: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)

    @property
    def average_price(self) -> Decimal | None:
        """Volume-weighted fill price (None without fills)."""
        return self.notional / self.filled if self.filled else None


def order_outcomes(nodes: Iterable[FollowNode]) -> list[OrderOutcome]:
    """One outcome per client order in ``nodes``: fills counted once per ``fill_id``."""
    outcomes: dict[str, OrderOutcome] = {}
    fill_ids: set[tuple[str, str]] = set()  # (order, fill id): a split order's fill reaches
    for node in nodes:  # execution under the child's id and the portfolio under the parent's
        rec, body = node.record, node.record.payload
        if node.role == "risk":
            continue
        for coid in order_ids(rec):
            oc = outcomes.setdefault(coid, OrderOutcome(coid))
            if rec.type == "SubmitOrder" and oc.submit is None:
                oc.submit = rec
            elif rec.type == "Fill" and (coid, str(body.get("fill_id"))) not in fill_ids:
                fill_ids.add((coid, str(body.get("fill_id"))))
                oc.fills.append(rec)
                try:
                    qty, price = Decimal(body["quantity"]), Decimal(body["price"])
                    oc.filled += qty
                    oc.notional += qty * price
                    oc.fees += Decimal(body.get("fee", "0"))
                except (KeyError, InvalidOperation, TypeError):
                    pass
            elif rec.type == "OrderStatusReport" and body.get("known") is False:
                oc.status = "NEVER RECEIVED by execution"
            elif rec.type in ("OrderClosed", "OrderStatusReport") and body.get("status"):
                oc.status = str(body["status"])
            elif rec.type == "OrderRejected":
                oc.status = "REJECTED"
    return list(outcomes.values())
