"""A local fake Coinbase exchange (market-data websocket and public REST) for tests and tools.

* :mod:`.sim`: the bundled recorded data as Coinbase level2 / ticker / market_trades events,
  with the modelled parts (depth, trades) documented and flagged;
* :mod:`.wire`: self-signed TLS certificate, RFC 6455 frames, HTTP heads (stdlib only);
* :mod:`.session`: one websocket connection and the fault switches it obeys;
* :mod:`.server`: :class:`FakeCoinbase`, the listeners, the data source and the REST reads.

Command line: ``python tools/fake_coinbase.py`` (also documents every fault switch). A test and
development tool, not part of the trading path: nothing in the daemon imports it.
"""

from cryptoj.adapters.coinbase.fake.server import FakeCoinbase

__all__ = ["FakeCoinbase"]
