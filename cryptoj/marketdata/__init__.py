"""Recorded market data bundled with cryptoj, and the loader that replays it as events.

Two sets of real, recorded Coinbase data ship inside the package (``bundled/``; provenance,
licences and the CSV format in ``bundled/PROVENANCE.md``):

* ``coinbase-1m-2018-04``: 1-minute trade bars and top-of-book quotes for BTC-USD, ETH-USD and
  LTC-USD on 2018-04-04 and 2018-04-05 (QuantConnect Lean, Apache-2.0).
* ``coinbase-4h-2016-2025``: 4-hour candles for BTC-USD and ETH-USD, 2016-05-18 → 2025-10-28,
  every stress period since (ta4j, MIT).

The local catalog (:mod:`.catalog`: Parquet by product, kind and day) is filled by
``cryptoj data download`` (:mod:`.download`, Coinbase's public candles and trades) and by the
live-feed recorder (:mod:`.recording`, ``feed.record``); ``replay`` reads it as
``catalog:BTC-USD,ETH-USD/1m`` or ``recorded:YYYY-MM-DD``.

:func:`load_events` turns a set, or a user CSV in the same long format, into time-ordered batches
of :class:`~cryptoj.models.market.Bar` and :class:`~cryptoj.models.market.Quote`;
:func:`load_market_data` also accepts a trade-tick CSV (see :mod:`cryptoj.marketdata.ticks`)::

    from cryptoj.marketdata import load_events
    for batch in load_events("coinbase-1m-2018-04", products=["BTC-USD"]):
        ...
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from cryptoj.marketdata.errors import DataError

if TYPE_CHECKING:
    from cryptoj.marketdata.loader import (
        LONG_CSV_COLUMNS,
        Batch,
        DatasetInfo,
        get_dataset,
        list_datasets,
        load_events,
    )
    from cryptoj.marketdata.ticks import load_market_data, load_trade_ticks

# The loaders are imported on first use, not with the package: the live daemon imports
# submodules of this package (the recorder, the warm-up) and reads no data file before it
# trades (issue 16, time to the first order).
_LAZY = {
    "LONG_CSV_COLUMNS": "loader",
    "Batch": "loader",
    "DatasetInfo": "loader",
    "get_dataset": "loader",
    "list_datasets": "loader",
    "load_events": "loader",
    "load_market_data": "ticks",
    "load_trade_ticks": "ticks",
}


def __getattr__(name: str) -> Any:
    """The loader's public names, imported when first asked for."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"cryptoj.marketdata.{module}"), name)


__all__ = [
    "LONG_CSV_COLUMNS",
    "Batch",
    "DataError",
    "DatasetInfo",
    "get_dataset",
    "list_datasets",
    "load_events",
    "load_market_data",
    "load_trade_ticks",
]
