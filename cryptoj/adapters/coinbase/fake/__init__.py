"""A local fake Coinbase exchange (market data, trading REST, user channel) for tests and tools.

* :mod:`.sim`: the bundled recorded data as Coinbase level2 / ticker / market_trades events,
  with the modelled parts (depth, trades) documented and flagged;
* :mod:`.wire`: self-signed TLS certificate, RFC 6455 frames, HTTP heads (stdlib only);
* :mod:`.session`: one websocket connection and the fault switches it obeys;
* :mod:`.server`: :class:`FakeCoinbase`, the listeners, the data source and the REST reads;
* trading: :mod:`.exchange` (accounts, orders, matching; pure), :mod:`.order_input` (create
  checks), :mod:`.orders` (wire shapes), :mod:`.queries` (lists, pagination), :mod:`.products`,
  :mod:`.auth` (JWT checks, test keys), :mod:`.rest_api` and :mod:`.rest_faults` (private REST
  and its faults), :mod:`.user_channel` (the authenticated ``user`` websocket channel).

Command line: ``python tools/fake_coinbase.py`` (also documents every fault switch). A test and
development tool, not part of the trading path: nothing in the daemon imports it.
"""

from cryptoj.adapters.coinbase.fake.server import FakeCoinbase

__all__ = ["FakeCoinbase"]
