"""The operations HTTP endpoint: health, readiness, metrics, status and control.

A stdlib :class:`~http.server.ThreadingHTTPServer` on a daemon thread inside the daemon
process, bound to 127.0.0.1 by default. Every request is checked in this order:

1. **Host header** (loopback bind only): must name a loopback host, so a web page cannot read
   the endpoint through DNS rebinding → 403.
2. **Token** (when one is configured; required for a non-loopback bind):
   ``Authorization: Bearer <token>``, compared in constant time → 401.
3. **Control** (``POST /control/*``): only from a loopback client unless
   ``ops.control_remote``; ``Content-Type: application/json``; a browser's request (``Origin``
   header) only from a page of this endpoint's own origin, i.e. the dashboard → 403 / 415.

The dashboard's static files (``/``, ``/dashboard.css``, ``/dashboard.js``) hold no data and no
secret: they need no token (the Host check applies); the page sends the token the operator
pastes into it with each request (:mod:`cryptoj.ops.dashboard`).

=========================  ===============================================================
``GET /health``            liveness: 200 ``ok``/``degraded``, 503 ``failing``/``stopping``
``GET /ready``             readiness: 200 or 503 with every check and why
``GET /metrics``           Prometheus text format (OpenMetrics when the Accept header asks)
``GET /status``            the snapshot behind ``cryptoj status`` (JSON)
``GET /flags``             feature flags: value, config value, last change
``GET /``                  the live dashboard (HTML; ``/dashboard.css``, ``/dashboard.js``)
``GET /dashboard/equity``  the equity and drawdown curve for its chart (at most 600 points)
``GET /dashboard/control`` whether this client may use the emergency buttons, and why not
``POST /control/flags``    ``{"flags": {"name": value}, "reason": "..."}`` → 200 / 400
``POST /control/shutdown`` ``{"reason": "..."}`` → 202; the daemon stops in order, exit 0
``POST /control/flatten``  ``{"reason": "...", "stop": false}`` → 202; the ShutdownActor
                           unwinds every position (held; ``stop``: then exit 0)
``POST /control/hold``     ``{"reason": "..."}`` → 202; no new entries, no automatic recovery
``POST /control/resume``   ``{"reason": "...", "by": "name"}`` → 202; the programme returns to
                           NORMAL and the RiskActor lifts a drawdown halt (``risk.max_drawdown``),
                           journalling ``by`` and the time
``POST /control/target``   ``{"product": "BTC-USD", "weight": 0.05, "reason": "..."}`` → 202
                           (``strategy.kind: manual`` only, else 409): the target weight
``POST /control/restart``  ``{"actor": "execution", "reason": "..."}`` → 202; its supervisor
                           restarts it (and, by strategy, the siblings after it)
=========================  ===============================================================

The emergency commands go to the ShutdownActor as an
:class:`~cryptoj.models.unwind.OperatorCommand` (docs/operations.md, "Emergency programme").
"""

from __future__ import annotations

import hmac
import json
import socket
import sqlite3
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from loguru import logger
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from cryptoj.config.ops import FlagError, is_loopback
from cryptoj.models.risk import RiskResume
from cryptoj.models.signals import OperatorTarget
from cryptoj.models.system import RestartChild
from cryptoj.models.unwind import OperatorCommand
from cryptoj.ops import dashboard, journal_view
from cryptoj.ops.curve import EquityCurve
from cryptoj.ops.state import OpsState
from cryptoj.supervision.guard import ThreadBoard, ThreadGuard
from cryptoj.supervision.supervisor import Supervisor

MAX_BODY = 64 * 1024
JSON = "application/json"
#: Emergency programme commands (``POST /control/<command>``) for the ShutdownActor.
COMMANDS = ("flatten", "hold", "resume")
#: Every ``POST`` route.
POST_ROUTES = ("/control/flags", "/control/shutdown", "/control/target", "/control/restart")


def client_is_local(address: str) -> bool:
    """True when the peer address is loopback (control is accepted from it by default)."""
    return is_loopback(address)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    ops: OpsEndpoint

    timeout = 0.2  # handle_request waits this long for a request (the loop's poll interval)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A request's handler raised: log it through loguru (not stderr) and count it."""
        self.ops.guard.board.count("cryptoj-ops-request")
        logger.opt(exception=True).error("ops endpoint: a request from {} failed", client_address)


class _Server6(_Server):
    address_family = socket.AF_INET6


class OpsEndpoint:
    """Owns the HTTP server and its thread."""

    def __init__(
        self,
        state: OpsState,
        registry: CollectorRegistry,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        control_remote: bool = False,
        on_shutdown: Callable[[str], object] | None = None,
        board: ThreadBoard | None = None,
    ) -> None:
        self.state = state
        self.registry = registry
        self.host = host
        self.token = token
        self.control_remote = control_remote
        self.on_shutdown = on_shutdown
        self.loopback_bind = is_loopback(host)
        cls = _Server6 if ":" in host else _Server
        self.httpd = cls((host.strip("[]"), port), _Handler)  # binds now: fails early
        self.httpd.ops = self
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.guard = ThreadGuard("cryptoj-ops", "ops", board=board, stall_after_s=30.0)
        # the dashboard's equity curve, read from the journal incrementally (new marks only)
        self.curve = EquityCurve(dashboard.CHART_POINTS)
        self._curve_lock = threading.Lock()

    def equity_curve(self) -> dict[str, Any]:
        """The equity curve with the marks journalled since the last call folded in.

        Within one daemon process marks are only appended (market time never goes back), so
        reading those after the last one seen is enough. ``sqlite3.Error`` when the journal
        cannot be read.
        """
        with self._curve_lock:
            path = self.state.ctx.journal_path
            self.curve.extend(journal_view.equity_marks(path, self.curve.last))
            return self.curve.snapshot()

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        return int(self.httpd.server_address[1])

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:9325``."""
        host = f"[{self.host.strip('[]')}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        """Serve on a daemon thread, under a guard: if the server loop raises, it is logged,
        counted and restarted after a backoff (requests wait in the listen queue meanwhile)."""
        self._thread = threading.Thread(
            target=self.guard.run,
            args=(self._serve, self._stopping),
            name="cryptoj-ops",
            daemon=True,
        )
        self._thread.start()

    def _serve(self) -> None:
        """Accept requests (each on a thread of its own) until stopped; one beat per poll."""
        httpd, beat = self.httpd, self.guard.beat
        while not self._stopping.is_set():
            httpd.handle_request()  # waits up to httpd.timeout for one request
            beat()

    def close(self) -> None:
        """Stop serving and release the socket."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "cryptoj-ops"

    # -- plumbing --------------------------------------------------------------------------------

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("ops {} {}", self.client_address[0], format % args)

    def _send(
        self, code: int, body: bytes, ctype: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, code: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body, default=str, sort_keys=True).encode() + b"\n"
        self._send(code, data, JSON, headers)

    def _error(self, code: int, message: str, headers: dict[str, str] | None = None) -> None:
        # the request body may be unread: close the connection rather than parse it as a request
        self.close_connection = True
        self._json(code, {"error": message}, {**(headers or {}), "Connection": "close"})

    # -- checks ------------------------------------------------------------------------------

    def _allowed(self, *, token: bool = True) -> bool:
        """Host check; then, unless ``token`` is False (the dashboard's static files), the
        bearer token."""
        ops = self.server.ops
        if ops.loopback_bind:
            host = (self.headers.get("Host") or "").strip()
            name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if not is_loopback(name.strip("[]")):
                self._error(403, "Host header must name a loopback address")
                return False
        if token and ops.token is not None:
            auth = self.headers.get("Authorization") or ""
            scheme, _, given = auth.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                given.strip().encode(), ops.token.encode()
            ):
                self._error(401, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"})
                return False
        return True

    def _control_allowed(self) -> bool:
        ops = self.server.ops
        if not ops.control_remote and not client_is_local(self.client_address[0]):
            self._error(403, "control is only accepted from loopback (ops.control_remote)")
            return False
        origin = self.headers.get("Origin")
        if origin is not None and not dashboard.same_origin(origin, self.headers.get("Host")):
            self._error(403, "control requests from another web page are refused")
            return False
        if (self.headers.get("Sec-Fetch-Site") or "same-origin") != "same-origin":
            self._error(403, "control requests from another web site are refused")
            return False
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != JSON:
            self._error(415, f"Content-Type must be {JSON}")
            return False
        return True

    def _body(self) -> dict[str, Any] | None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            self._error(413 if length > MAX_BODY else 400, "bad Content-Length")
            return None
        raw = self.rfile.read(length) if length else b"{}"
        try:
            body = json.loads(raw or b"{}")
        except ValueError as e:
            self._error(400, f"body is not JSON: {e}")
            return None
        if not isinstance(body, dict):
            self._error(400, "body must be a JSON object")
            return None
        return body

    # -- routes ------------------------------------------------------------------------------

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        page = dashboard.asset(path)
        if page is not None:
            if self._allowed(token=False):
                self._send(200, page[0], page[1], dashboard.ASSET_HEADERS)
            return
        if not self._allowed():
            return
        state = self.server.ops.state
        try:
            if path == "/health":
                self._json(*state.health())
            elif path == "/ready":
                self._json(*state.ready())
            elif path == "/metrics":
                encoder, ctype = choose_encoder(self.headers.get("Accept") or "")
                self._send(200, encoder(self.server.ops.registry), ctype)
            elif path == "/status":
                self._json(200, state.status())
            elif path == "/flags":
                self._json(200, state.ctx.flags.describe())
            elif path == "/dashboard/equity":
                self._equity()
            elif path == "/dashboard/control":
                ops = self.server.ops
                info = dashboard.control_info(
                    token=ops.token is not None,
                    control_remote=ops.control_remote,
                    client_local=client_is_local(self.client_address[0]),
                    shutdown_alive=state.ctx.rt.is_alive("shutdown"),
                )
                self._json(200, info)
            elif path.startswith("/control/"):
                self._error(405, "use POST", {"Allow": "POST"})
            else:
                self._error(404, f"no such endpoint: {path}")
        except Exception as e:  # never kill the server thread; say what failed
            logger.exception("ops endpoint {} failed", path)
            self._error(500, f"{type(e).__name__}: {e}")

    def _equity(self) -> None:
        try:
            series = self.server.ops.equity_curve()
        except sqlite3.Error as e:
            self._error(503, f"the journal cannot be read: {e}")
            return
        self._json(200, series)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_POST(self) -> None:
        if not self._allowed():
            return
        path = self.path.split("?", 1)[0]
        command = path.removeprefix("/control/")
        if path not in POST_ROUTES and command not in COMMANDS:
            self._error(
                405 if path in ("/health", "/ready", "/metrics", "/status", "/flags") else 404,
                f"no POST endpoint: {path}",
            )
            return
        if not self._control_allowed():
            return
        body = self._body()
        if body is None:
            return
        reason = str(body.get("reason") or "").strip()[:200]
        who = f"http {self.client_address[0]}"
        if path == "/control/shutdown":
            self._shutdown(reason or "control endpoint", who)
        elif command in COMMANDS:
            by = str(body.get("by") or "").strip()[:64] or who
            self._command(command, reason, who, bool(body.get("stop")), by)
        elif path == "/control/target":
            self._target(body, reason, who)
        elif path == "/control/restart":
            self._restart(body, reason, who)
        else:
            self._flags(body, reason, who)

    def _shutdown(self, reason: str, who: str) -> None:
        ops = self.server.ops
        if ops.on_shutdown is None:
            self._error(503, "shutdown is not wired in this process")
            return
        logger.info("shutdown requested through the control endpoint by {}: {}", who, reason)
        ops.on_shutdown(f"control: {reason}")
        self._json(202, {"accepted": True, "reason": reason})

    def _command(self, command: str, reason: str, who: str, stop: bool, by: str) -> None:
        rt = self.server.ops.state.ctx.rt
        if not rt.is_alive("shutdown"):
            self._error(503, "the ShutdownActor is not running")
            return
        logger.info("{} requested through the control endpoint by {}: {}", command, who, reason)
        msg = OperatorCommand(
            ts=rt.clock.now(),
            command=command,
            reason=f"control: {reason}" if reason else "control endpoint",
            stop_after=stop and command == "flatten",
        )
        rt.tell("shutdown", msg, sender="ops")
        body: dict[str, Any] = {"accepted": True, "command": command, "reason": reason}
        if command == "resume":
            if rt.is_alive("risk"):
                rt.tell("risk", RiskResume(ts=rt.clock.now(), by=by, reason=reason), sender="ops")
            body["by"] = by
            body["risk_resumed"] = rt.is_alive("risk")
        if command == "flatten":
            body["stop"] = msg.stop_after
        self._json(202, body)

    def _target(self, body: dict[str, Any], reason: str, who: str) -> None:
        ctx = self.server.ops.state.ctx
        if ctx.strategy_kind != "manual":
            self._error(
                409,
                f"targets are set by the strategy ({ctx.strategy_kind}); "
                "operator targets need strategy.kind: manual",
            )
            return
        product, weight = body.get("product"), body.get("weight")
        if not isinstance(product, str) or (ctx.products and product not in ctx.products):
            self._error(400, f"product: expected one of {list(ctx.products)}, got {product!r}")
            return
        if (
            isinstance(weight, bool)
            or not isinstance(weight, int | float)
            or not (0.0 <= float(weight) <= 1.0)
        ):
            self._error(400, f"weight: expected a number in [0, 1], got {weight!r}")
            return
        rt = ctx.rt
        if not rt.is_alive("strategy"):
            self._error(503, "the StrategyActor is not running")
            return
        logger.info(
            "target {} = {} set through the control endpoint by {}: {}",
            product,
            weight,
            who,
            reason,
        )
        msg = OperatorTarget(
            ts=rt.clock.now(), product=product, weight=float(weight), reason=reason or who
        )
        rt.tell("strategy", msg, sender="ops")
        self._json(202, {"accepted": True, "product": product, "weight": float(weight)})

    def _restart(self, body: dict[str, Any], reason: str, who: str) -> None:
        rt = self.server.ops.state.ctx.rt
        actor = body.get("actor")
        supervised = {
            n: r for n, r in rt.registry.items() if isinstance(rt.behaviour(r.parent), Supervisor)
        }
        reg = supervised.get(actor) if isinstance(actor, str) else None
        if reg is None:
            names = sorted(supervised)
            self._error(400, f"actor: expected one of {names}, got {actor!r}")
            return
        logger.warning(
            "restart of {} requested through the control endpoint by {}: {}", actor, who, reason
        )
        rt.tell(
            reg.parent,
            RestartChild(ts=rt.clock.now(), name=reg.name, reason=reason or who),
            sender="ops",
        )
        self._json(202, {"accepted": True, "actor": reg.name, "supervisor": reg.parent})

    def _flags(self, body: dict[str, Any], reason: str, who: str) -> None:
        store = self.server.ops.state.ctx.flags
        changes = body.get("flags")
        if changes is None and "flag" in body:
            changes = {str(body["flag"]): body.get("value")}
        if not isinstance(changes, dict):
            self._error(400, 'expected {"flags": {"name": value}, "reason": "..."}')
            return
        try:
            done = store.set(changes, by=who, reason=reason)
        except FlagError as e:
            self._error(400, str(e))
            return
        for c in done:
            logger.info("flag {} changed {} -> {} by {}: {}", c.flag, c.old, c.new, who, reason)
        self._json(
            200,
            {
                "changed": [{"flag": c.flag, "old": c.old, "new": c.new} for c in done],
                "flags": store.describe(),
            },
        )


__all__ = ["OpsEndpoint"]
