"""The fake exchange's control endpoint (plain HTTP on loopback): inject faults, read state.

* ``POST /fault`` (or ``POST /inject``) with ``{"kind": "gap", "count": 2}`` (any switch of
  ``tools/fake_coinbase.py``, e.g. ``{"kind": "rest_429", "body": "json", "count": 3}`` or
  ``{"kind": "order_fault_rate", "rate": 0.2, "seed": 7}``); 400 with the reason when bad
* ``GET /state``: counters, sessions and their subscriptions, the exchange (``exchange``: every
  order and fill, orders per client_order_id, balances) and the REST faults (``rest``)
* ``GET /orders-summary``: only the ``exchange`` part of ``/state``
* ``GET /book?product=BTC-USD&event_time=...``: the fake's book digest at that update
"""

from __future__ import annotations

import json
import urllib.parse
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cryptoj.adapters.coinbase.fake.server import FakeCoinbase


def control_handler(fake: FakeCoinbase) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _reply(self, code: int, obj: Any) -> None:
            body = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            q = urllib.parse.parse_qs(url.query)
            if url.path == "/state":
                self._reply(200, fake.state())
            elif url.path == "/orders-summary":
                self._reply(200, fake.state()["exchange"])
            elif url.path == "/book":
                digest = fake.digest_at(q.get("product", [""])[0], q.get("event_time", [""])[0])
                self._reply(200 if digest else 404, {"digest": digest})
            else:
                self._reply(404, {"error": "not found"})

        def do_POST(self) -> None:
            if self.path not in ("/fault", "/inject"):
                self._reply(404, {"error": "not found"})
                return
            try:
                body = json.loads(
                    self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}"
                )
                kind = body.pop("kind")
                self._reply(200, fake.inject(kind, **body))
            except (ValueError, KeyError, TypeError) as e:
                self._reply(400, {"error": str(e)})

    return Handler
