"""How old was the market data each order was decided on? Pure over the journal.

Every rebalance plan the PortfolioActor decides is journalled as the ``planned`` step of its
transaction (:meth:`~cryptoj.portfolio.desk.TxnDesk.begin`), stamped with the decision time
(the actor's clock) and naming, for each leg's product, the timestamp of the quote the leg was
sized on (``quote_ts``). The age of that data at the decision is the difference.

:func:`decision_ages` lists them; :func:`stale_decisions` names every decision whose data was
older than a threshold (empty when none was): live, the portfolio plans on no quote older
than ``portfolio.quote_max_age_s`` by its clock, nor on a product the feed reports stale or a
quote from before its stale period, so with that threshold the list must be empty. A plan
whose step carries no ``quote_ts`` (a journal written before it was recorded) is a problem
too: its data age cannot be shown.

Unwind and stop-loss slices are exits, not plans: they are sized on the product's latest quote,
never on a stale book except the market sweep at the programme's deadline
(:meth:`cryptoj.actors.portfolio.PortfolioActor._unwind_step`); they are not listed here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

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


def decision_ages(journal: Journal) -> list[Decision]:
    """Every planned leg's product with its decision time and data timestamp, in journal
    order."""
    out: list[Decision] = []
    for step in journal.txn_steps():
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


def stale_decisions(journal: Journal, max_age_ns: int) -> list[str]:
    """Every plan decided on data older than ``max_age_ns`` (or of unknown age), as text."""
    if max_age_ns < 0:
        raise ValueError(f"max_age_ns: expected >= 0, got {max_age_ns}")
    out: list[str] = []
    for d in decision_ages(journal):
        age = d.age_ns
        if age is None:
            out.append(f"{d.txn_id} {d.product}: decided without a recorded quote time")
        elif age > max_age_ns:
            out.append(
                f"{d.txn_id} {d.product}: decided on a quote {age / 1e9:.3f} s old "
                f"(limit {max_age_ns / 1e9:.3f} s)"
            )
    return out
