"""The fake exchange's control endpoint (plain HTTP on loopback): inject faults, read state.

* ``POST /fault`` with ``{"kind": "gap", "count": 2}`` (any switch of ``tools/fake_coinbase.py``)
* ``GET /state``: counters, sessions and their subscriptions
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
            elif url.path == "/book":
                digest = fake.digest_at(q.get("product", [""])[0], q.get("event_time", [""])[0])
                self._reply(200 if digest else 404, {"digest": digest})
            else:
                self._reply(404, {"error": "not found"})

        def do_POST(self) -> None:
            if self.path != "/fault":
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
