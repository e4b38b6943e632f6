"""How old was the market data each order was decided on? Pure over the journal.

Every rebalance plan the PortfolioActor decides is journalled as the ``planned`` step of its
transaction (:meth:`~cryptoj.portfolio.desk.TxnDesk.begin`), stamped with the decision time
(the actor's clock) and naming, for each leg's product, the timestamp of the quote the leg was
sized on (``quote_ts``). The age of that data at the decision is the difference.

:func:`decision_ages` lists them (:func:`decisions_of` from the rows of
:func:`planned_steps`, a read-only connection's); :func:`audit_decisions` names every decision
whose data was older than a threshold, with the one line an operator reads
(:meth:`AgeAudit.line`), and :func:`stale_decisions` just the names (empty when none was):
live, the portfolio plans on no quote older than ``portfolio.quote_max_age_s`` by its clock,
nor on a product the feed reports stale or a quote from before its stale period, so with that
threshold the list must be empty. A plan whose step carries no ``quote_ts`` (a journal written
before it was recorded) is a problem too: its data age cannot be shown. The report
(:mod:`cryptoj.report`) and ``tools/risk_audit.py`` show the audit with the config's threshold.

Unwind and stop-loss slices are exits, not plans: they are sized on the product's latest quote,
never on a stale book except the market sweep at the programme's deadline
(:meth:`cryptoj.actors.portfolio.PortfolioActor._unwind_step`); they are not listed here.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptoj.journal import Journal


@dataclass(frozen=True, slots=True)
class Decision:
    """One product of one plan: when it was decided and on which quote."""

    txn_id: str
    product: str
    decided_ns: int  # the ``planned`` step's timestamp (the portfolio's clock)
    quote_ts: int | None  # the quote the leg was sized on (None: not recorded)

    @property
    def age_ns(self) -> int | None:
        """How old the quote was when the plan was decided."""
        return None if self.quote_ts is None else self.decided_ns - self.quote_ts


def decisions_of(steps: Iterable[Mapping[str, Any]]) -> list[Decision]:
    """Every planned leg's product with its decision time and data timestamp, from
    ``rebalance_steps`` rows (``txn_id``, ``ts``, ``step``, ``detail``) in journal order; rows
    of other steps are skipped."""
    out: list[Decision] = []
    for step in steps:
        if step["step"] != "planned":
            continue
        detail = json.loads(str(step["detail"]))
        quote_ts: dict[str, int] = detail.get("quote_ts", {})
        products = sorted({str(leg[1]) for leg in detail.get("legs", [])} | set(quote_ts))
        for product in products:
            ts = quote_ts.get(product)
            out.append(
                Decision(
                    txn_id=str(step["txn_id"]),
                    product=product,
                    decided_ns=int(step["ts"]),
                    quote_ts=None if ts is None else int(ts),
                )
            )
    return out


def planned_steps(db: sqlite3.Connection) -> list[dict[str, Any]]:
    """The ``planned`` rebalance steps of a journal opened with plain SQLite (read-only, e.g.
    a live daemon's), in journal order; none in a journal written before the rebalance
    tables existed (a read-only connection does not create them)."""
    if not db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'rebalance_steps'"
    ).fetchone():
        return []
    cur = db.execute(
        "SELECT txn_id, ts, step, detail FROM rebalance_steps WHERE step = 'planned' ORDER BY seq"
    )
    cols = [c[0] for c in cur.description]
    return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]


def decision_ages(journal: Journal) -> list[Decision]:
    """Every planned leg's product with its decision time and data timestamp, in journal
    order."""
    return decisions_of(journal.txn_steps())


@dataclass(frozen=True, slots=True)
class AgeAudit:
    """The data-age audit of a journal's decisions against one threshold."""

    max_age_ns: int
    checked: int  # decisions (one per product of each plan)
    problems: tuple[str, ...]  # one line per decision on older data or of unknown age
    oldest_ns: int | None  # the oldest quote any decision was sized on (None: no age known)

    def line(self) -> str:
        """One line for an operator: none, or how many decisions were made on stale quotes."""
        limit = f"limit {self.max_age_ns / 1e9:g} s"
        oldest = "" if self.oldest_ns is None else f", oldest quote {self.oldest_ns / 1e9:.3f} s"
        if not self.problems:
            return f"decisions on stale quotes: none of {self.checked} ({limit}{oldest})"
        return (
            f"WARNING: {len(self.problems)} of {self.checked} decisions were made on stale "
            f"quotes or without a recorded quote time ({limit}{oldest})"
        )


def audit_decisions(decisions: Sequence[Decision], max_age_ns: int) -> AgeAudit:
    """Check ``decisions`` against ``max_age_ns``: every one decided on data older than that
    (or of unknown age) becomes a problem line."""
    if max_age_ns < 0:
        raise ValueError(f"max_age_ns: expected >= 0, got {max_age_ns}")
    problems: list[str] = []
    for d in decisions:
        age = d.age_ns
        if age is None:
            problems.append(f"{d.txn_id} {d.product}: decided without a recorded quote time")
        elif age > max_age_ns:
            problems.append(
                f"{d.txn_id} {d.product}: decided on a quote {age / 1e9:.3f} s old "
                f"(limit {max_age_ns / 1e9:.3f} s)"
            )
    ages = [d.age_ns for d in decisions if d.age_ns is not None]
    return AgeAudit(max_age_ns, len(decisions), tuple(problems), max(ages) if ages else None)


def stale_decisions(journal: Journal, max_age_ns: int) -> list[str]:
    """Every plan decided on data older than ``max_age_ns`` (or of unknown age), as text."""
    return list(audit_decisions(decision_ages(journal), max_age_ns).problems)
