"""Aligning asynchronous prices on a common clock, for correlation.

Live bars carry each product's own time (its last trade), so no two products share a timestamp;
pairing returns by exact timestamp then finds no pairs and the correlation stays 0. Instead,
:class:`GridSampler` samples every product's last price on a fixed grid of ``step_ns``
(cells ``[k·step, (k+1)·step)`` of the epoch clock, "previous-tick" sampling):

* a price observed at ``ts`` belongs to cell ``ts // step``;
* when the first price of a later cell arrives, the open cell closes: each product's last price
  so far is its sample for that cell, and the log return from its previous sample is returned
  for every product that has both (0 for a product whose price did not change);
* cells without any price are skipped (the next return spans them), so a gap in the data is one
  longer return, not a run of zeros;
* a price older than the open cell (a late message) counts towards the open cell.

Bars of one interval batched at one timestamp and the same bars stamped anywhere within their
interval fall into the same cell, so both give the same returns. The work is O(1) per price and
O(products) per closed cell; the caller updates the correlation once per cell.
"""

from __future__ import annotations

import math

#: The grid step when neither the configuration nor the bars give one.
DEFAULT_STEP_NS = 60 * 10**9


class GridSampler:
    """Each product's last price sampled on a fixed grid (see the module docstring)."""

    def __init__(self, step_ns: int = 0) -> None:
        """``step_ns`` > 0: the grid step; 0: taken from the first :meth:`observe` call's
        ``default_step_ns`` (the bars' interval)."""
        if step_ns < 0:
            raise ValueError(f"grid step must be >= 0 ns, was {step_ns}")
        self.step_ns = step_ns
        self.cell: int | None = None
        self.last: dict[str, float] = {}
        self.sampled: dict[str, float] = {}
        self.cells_closed = 0

    def observe(
        self, product: str, ts: int, price: float, default_step_ns: int = DEFAULT_STEP_NS
    ) -> dict[str, float] | None:
        """Record ``product``'s price at ``ts``; return the log returns of the cell this price
        closed (None when it closed none, {} for the first cell, which has no previous sample)."""
        if self.step_ns <= 0:
            self.step_ns = default_step_ns if default_step_ns > 0 else DEFAULT_STEP_NS
        cell = ts // self.step_ns
        closed: dict[str, float] | None = None
        if self.cell is None:
            self.cell = cell
        elif cell > self.cell:
            closed = self._close()
            self.cell = cell
        if price > 0 and math.isfinite(price):
            self.last[product] = price
        return closed

    def _close(self) -> dict[str, float]:
        returns: dict[str, float] = {}
        sampled = self.sampled
        for product, price in self.last.items():
            prev = sampled.get(product)
            if prev is not None:
                returns[product] = math.log(price / prev)
            sampled[product] = price
        self.cells_closed += 1
        return returns
