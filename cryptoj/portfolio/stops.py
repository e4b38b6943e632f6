"""The stop-loss rule of the PortfolioActor. Pure.

A long position is stopped out when its product's bid is ``stop_loss`` (of the current
:class:`~cryptoj.models.risk.RiskParameters`) or more below its average entry price:
``bid ≤ average_price × (1 − stop_loss)``. The factor is built once per parameters received,
not once per quote. What follows a stop (the exit through the unwind queue, the signal held at
0 until it resets) is the actor's.
"""

from __future__ import annotations

from decimal import Decimal

from cryptoj.models.market import Quote
from cryptoj.models.risk import RiskParameters
from cryptoj.portfolio.ledger import ZERO, Holding


class StopLoss:
    """The rule above, with the factor of the last parameters seen."""

    def __init__(self) -> None:
        self._params: RiskParameters | None = None
        self._factor = Decimal(1)

    def hit(
        self, holding: Holding | None, quote: Quote, params: RiskParameters | None
    ) -> str | None:
        """Why ``holding`` is stopped out at ``quote`` under ``params``; None when it is not
        (no parameters, no long position, or a bid above the stop)."""
        if params is None or holding is None or holding.quantity <= ZERO:
            return None
        if self._params is not params:
            self._params, self._factor = params, 1 - Decimal(repr(params.stop_loss))
        if quote.bid > holding.average_price * self._factor:
            return None
        return (
            f"stop loss: bid {quote.bid} is {params.stop_loss:.0%} or more "
            f"below entry {holding.average_price}"
        )
