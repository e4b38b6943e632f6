"""The live dashboard: a static page the ops endpoint serves at ``/``, and its JSON helpers.

The page (``static/dashboard.html``, ``.css``, ``.js``: plain files, no build step, no network
beyond this endpoint) polls ``GET /status`` and ``GET /dashboard/equity`` every two seconds and
draws everything in the browser (the chart is inline SVG drawn by ``dashboard.js``).

The page itself holds no data and no secret, so it is served without the bearer token (the
Host check still applies). Every JSON request it makes, and its emergency buttons (``POST
/control/hold|resume|flatten``), go through the same checks as any other client: the operator
pastes the token into the page, which keeps it in ``sessionStorage`` and sends it as
``Authorization: Bearer``. A control request from a browser is accepted only from a page of
this endpoint's own origin (:func:`same_origin`); the page is never framed by another site.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

#: URL path → (file in ``cryptoj/ops/static``, content type).
ASSETS: dict[str, tuple[str, str]] = {
    "/": ("dashboard.html", "text/html; charset=utf-8"),
    "/dashboard.css": ("dashboard.css", "text/css; charset=utf-8"),
    "/dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
}

#: Headers of every asset: only this origin's scripts, styles and requests; never in a frame.
ASSET_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

#: Points of the equity chart at most (:class:`~cryptoj.ops.curve.EquityCurve`).
CHART_POINTS = 600


@cache
def asset(path: str) -> tuple[bytes, str] | None:
    """The bytes and content type of the dashboard file served at ``path``, or None."""
    entry = ASSETS.get(path)
    if entry is None:
        return None
    name, ctype = entry
    return (resources.files("cryptoj.ops").joinpath("static", name).read_bytes(), ctype)


def same_origin(origin: str, host: str | None) -> bool:
    """True when a browser's ``Origin`` header names this endpoint as the request addressed it
    (``http://`` + the ``Host`` header): a page this endpoint served, not another site."""
    if not host:
        return False
    return origin.strip().lower() == f"http://{host.strip().lower()}"


def control_info(
    *, token: bool, control_remote: bool, client_local: bool, shutdown_alive: bool
) -> dict[str, Any]:
    """What the page's emergency buttons can do for this client, and why not (the same rules
    as ``POST /control/*``)."""
    if not control_remote and not client_local:
        allowed, detail = False, "control is only accepted from loopback (ops.control_remote)"
    elif not shutdown_alive:
        allowed, detail = False, "the ShutdownActor is not running"
    else:
        allowed = True
        detail = "with the ops token" if token else "from loopback (no ops token configured)"
    return {
        "allowed": allowed,
        "detail": detail,
        "token_required": token,
        "commands": ["hold", "resume", "flatten"],
    }


__all__ = [
    "ASSETS",
    "ASSET_HEADERS",
    "CHART_POINTS",
    "asset",
    "control_info",
    "same_origin",
]
