"""``cryptoj status``: a readable snapshot of the running daemon, fetched over loopback.

Reads ``/status``, ``/health`` and ``/ready`` from the daemon's ops endpoint (host, port and
token from the config, or ``--url``/``--port``) and prints the actor tree with restart counts,
the feed's state and connection history (a live feed also: hosts, circuits, heartbeat age,
latencies), the risk level, positions, open orders, the feature flags and the last errors;
``--json`` prints the three bodies as one JSON object instead.

Exit codes: 0 the daemon answered; 1 no daemon answered; 2 bad usage or the token was refused.
"""

from __future__ import annotations

import datetime as dt
import json
import urllib.error
import urllib.request
from typing import Any

from cryptoj.config.ops import OpsConfig, resolve_token

EXIT_OK, EXIT_DOWN, EXIT_USAGE = 0, 1, 2


class StatusError(Exception):
    """The daemon could not be asked; ``code`` is the exit code to use."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def base_url(ops: OpsConfig, port: int | None = None) -> str:
    """Where the local daemon listens (a wildcard bind is reached over 127.0.0.1)."""
    host = ops.host if ops.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    if ":" in host:
        host = f"[{host.strip('[]')}]"
    return f"http://{host}:{ops.port if port is None else port}"


def fetch(url: str, token: str | None, timeout: float) -> tuple[int, dict[str, Any]]:
    """GET ``url``; return (status code, JSON body). 503 is an answer, not an error."""
    req = urllib.request.Request(url, headers={"Accept": "application/json"})
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return int(resp.status), json.loads(resp.read())
    except urllib.error.HTTPError as e:
        body = e.read()
        if e.code in (401, 403):
            raise StatusError(f"{url}: {e.code} {_err(body)}", EXIT_USAGE) from None
        try:
            return int(e.code), json.loads(body)
        except ValueError:
            raise StatusError(f"{url}: HTTP {e.code}", EXIT_DOWN) from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise StatusError(
            f"no cryptoj daemon answering at {url} ({reason}); is it running, and is "
            "ops.port right?",
            EXIT_DOWN,
        ) from None


def _err(body: bytes) -> str:
    try:
        return str(json.loads(body).get("error", ""))
    except (ValueError, AttributeError):
        return body.decode(errors="replace")[:200]


def collect(url: str, token: str | None, timeout: float) -> dict[str, Any]:
    """The daemon's status with its health and readiness."""
    _, status = fetch(f"{url}/status", token, timeout)
    _, health = fetch(f"{url}/health", token, timeout)
    _, ready = fetch(f"{url}/ready", token, timeout)
    return {**status, "health": health, "ready": ready}


def run_status(
    ops: OpsConfig, *, url: str | None, port: int | None, as_json: bool, timeout: float
) -> tuple[int, str]:
    """Exit code and the text to print."""
    try:
        token = resolve_token(ops)
    except (OSError, ValueError) as e:
        return EXIT_USAGE, f"status: ops token: {e}"
    try:
        data = collect(url or base_url(ops, port), token, timeout)
    except StatusError as e:
        return e.code, f"status: {e}"
    return EXIT_OK, json.dumps(data, sort_keys=True, default=str) if as_json else render(data)


# -- text rendering ------------------------------------------------------------------------------


def _time(wall: float | None) -> str:
    if wall is None:
        return "-"
    return dt.datetime.fromtimestamp(wall, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _market(ns: int | None) -> str:
    if ns is None:
        return "-"
    return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _duration(s: float) -> str:
    s = int(s)
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return (f"{d}d" if d else "") + (f"{h}h" if d or h else "") + f"{m:02d}m{s:02d}s"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.2%}"


def _tree(actors: list[dict[str, Any]]) -> list[str]:
    lines = [
        f"  {'actor':<26} {'state':<6} {'gen':>4} {'restarts':>8} {'mailbox':>8} "
        f"{'messages':>9}  last exit"
    ]
    last_at_depth: dict[int, bool] = {}
    for i, a in enumerate(actors):
        depth = a["depth"]
        later = [b for b in actors[i + 1 :] if b["depth"] <= depth]
        is_last = not later or later[0]["depth"] < depth
        last_at_depth[depth] = is_last
        prefix = "".join("   " if last_at_depth.get(d) else "│  " for d in range(1, depth))
        branch = ("└─ " if is_last else "├─ ") if depth else ""
        name = prefix + branch + a["name"]
        state = "up" if a["alive"] else "DOWN"
        lines.append(
            f"  {name:<26} {state:<6} {a['generation']:>4} {a['restarts']:>8} "
            f"{a['mailbox']:>8} {a['messages']:>9}  {a['last_exit'] or ''}"
        )
    return lines


def _threads(threads: list[dict[str, Any]]) -> list[str]:
    """One line per guarded daemon thread (state, crashes, last error)."""
    out = ["threads" if threads else "threads: none listed"]
    for t in threads:
        line = f"  {t['name']:<24} {t['component']:<8} {t['state']}"
        if t["crashes"]:
            line += f" · {t['crashes']} crash(es), last {t['last_error']}"
        out.append(line)
    return out


def render(d: dict[str, Any]) -> str:
    """The human-readable status."""
    health, ready = d.get("health", {}), d.get("ready", {})
    failing = [k for k, c in ready.get("checks", {}).items() if not c["ok"]]
    rt = d["runtime"]
    out = [
        f"cryptoj pid {d['pid']} · {d['mode']} · up {_duration(d['uptime_s'])} · "
        f"market time {_market(d['market_time_ns'])} ({d['speed']:g}x)",
        f"health {health.get('status', '?')} · ready "
        + (
            "yes"
            if ready.get("ready")
            else "NO (" + ", ".join(f"{k}: {ready['checks'][k]['detail']}" for k in failing) + ")"
        ),
        f"messages {rt['delivered']} · restarts {rt['restarts']} · crashes {rt['crashes']} · "
        f"dead letters {rt['dead_letters']} · escalations {rt['escalations']}",
        "",
        "actors",
        *_tree(d["actors"]),
        *_threads(d.get("threads") or []),
        "",
    ]
    f = d["feed"]
    age = f["last_event_age_s"]
    out.append(
        f"feed {f['source']}: {f['state']}, {f['messages']} messages, last event "
        f"{_market(f['last_event_ts'])}"
        + (f" ({age:.0f}s ago, market clock)" if age is not None else "")
        + f", reconnects {f['reconnects']}, gaps {f['gaps']}"
    )
    if "detail" in f:
        out += _live_feed(f)
    out += [f"  {_time(h['wall'])}  {h['event']:<12} {h['detail']}" for h in f["history"][-10:]]
    out += ["", *_risk(d["risk"], d.get("portfolio")), "", *_books(d), ""]
    flags = d.get("flags") or {}
    out.append("feature flags" + ("" if flags else ": none declared"))
    for name, fl in flags.items():
        value = fl["value"]
        shown = ("on" if value else "off") if isinstance(value, bool) else f"{value:g}"
        src = "config"
        if fl["source"] != "config":
            src = f"changed {_time(fl['changed_at'])} by {fl['changed_by']}: {fl['reason'] or '-'}"
        out.append(f"  {name} = {shown}  ({src})")
    errors = d.get("errors") or []
    out += ["", "last errors and warnings" + ("" if errors else ": none")]
    out += [f"  {_time(e['wall'])}  {e['source']}: {e['message']}" for e in errors[-10:]]
    return "\n".join(line.rstrip() for line in out)


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x * 1000:.1f} ms"


def _live_feed(f: dict[str, Any]) -> list[str]:
    """A live feed's hosts, circuits, heartbeat, latencies and stale products."""
    lines = []
    for h in f["hosts"]:
        where = "REST polling (no websocket host)" if h["degraded"] else h["url"] or "-"
        lines.append(
            f"  connection {h['connection']}: {h['state'] or '-'} on {where}"
            + (" (failover host)" if h["on_failover_host"] else "")
        )
    for url, c in f["circuits"].items():
        lines.append(
            f"  circuit {url}: {c['state']}, {c['failures']} failure(s), opened "
            f"{c['times_opened']}x"
            + (f", next probe {_market(c['retry_at'])}" if c["retry_at"] is not None else "")
        )
    rtt, lag = f["latency"]["rtt"], f["latency"]["lag"]
    hb = f["heartbeat_age_s"]
    lines.append(
        f"  resyncs {f['resyncs']} · last heartbeat "
        + ("-" if hb is None else f"{hb:.1f}s ago")
        + f" · rtt p50 {_ms(rtt['p50_s'])} p99 {_ms(rtt['p99_s'])}"
        + f" · lag p50 {_ms(lag['p50_s'])} p99 {_ms(lag['p99_s'])}"
    )
    if f["stale_products"]:
        lines.append(f"  stale products: {', '.join(f['stale_products'])}")
    dropped = {k: v for k, v in (f.get("dropped") or {}).items() if v}
    if dropped:
        lines.append(
            "  dropped at the boundary: "
            + ", ".join(f"{k} {v}" for k, v in sorted(dropped.items()))
        )
    if f.get("thread_crashes"):
        lines.append(
            f"  connection thread crashes {f['thread_crashes']} (restarted)"
            + (f", restarting: {', '.join(f['restarting'])}" if f.get("restarting") else "")
        )
    return lines


def _risk(risk: dict[str, Any], portfolio: dict[str, Any] | None) -> list[str]:
    snap = risk.get("snapshot")
    lines = [f"risk level {risk['level']}"]
    if snap is not None and portfolio is not None:
        eq = float(portfolio["equity"])
        sod, peak = snap.get("start_of_day_equity"), snap.get("peak_equity")
        loss = (sod - eq) / sod if sod else None
        dd = (peak - eq) / peak if peak else None
        lines[0] += f" · daily loss {_pct(loss)} · drawdown from day peak {_pct(dd)}"
        hwm = snap.get("high_water_mark")
        if hwm:
            lines[0] += f" · from high-water mark {_pct((hwm - eq) / hwm)}"
        if snap.get("drawdown_halted"):
            lines[0] += " (drawdown limit: halted until `cryptoj resume`)"
    if snap is not None:
        avg = snap.get("average_correlation")
        if avg is not None:
            lines[0] += f" · average correlation {avg:.2f}"
        caps = dict(portfolio["caps"]) if portfolio else {}
        regimes = dict(snap.get("regimes") or ())
        if not snap.get("entries_allowed", True):
            lines[0] += " · entries blocked (exposure-reducing orders only)"
        if risk.get("source") == "last RiskParameters":
            lines[0] += " · (risk actor silent: from its last parameters)"
        vols, excess, corr = (
            dict(snap[k]) for k in ("volatility", "volatility_excess", "correlation")
        )
        if vols:
            lines.append(
                f"  {'product':<10} {'vol/bar':>9} {'excess':>8} {'corr':>6} {'cap':>7}  regime"
            )
        for p in sorted(vols):
            cap = caps.get(p)
            lines.append(
                f"  {p:<10} {vols[p]:>9.4%} {excess.get(p, 0):>+8.1%} {corr.get(p, 0):>6.2f} "
                f"{'-' if cap is None else f'{cap:.2%}':>7}  {regimes.get(p, '-')}"
            )
    for e in risk.get("recent_events", [])[-5:]:
        lines.append(f"  {_market(e['ts'])}  {e['kind']}: {e['detail']}")
    return lines


def _books(d: dict[str, Any]) -> list[str]:
    p = d.get("portfolio")
    if p is None:
        lines = ["positions: the portfolio did not answer in time"]
    else:
        lines = [
            f"positions (equity {float(p['equity']):,.2f}, cash {float(p['cash']):,.2f}, "
            f"reserved {float(p['reserved_cash']):,.2f}"
            + (", HALTED" if p["halted"] else "")
            + ")"
            + ("" if p["positions"] else ": none")
        ]
        if p["positions"]:
            lines.append(
                f"  {'product':<10} {'quantity':>14} {'avg price':>12} {'mark':>12} "
                f"{'value':>12} {'weight':>7}"
            )
        for pos in p["positions"]:
            lines.append(
                f"  {pos['product']:<10} {float(pos['quantity']):>14.8f} "
                f"{float(pos['average_price']):>12,.2f} {float(pos['mark_price']):>12,.2f} "
                f"{float(pos['value']):>12,.2f} {pos['weight']:>7.2%}"
            )
    orders = d.get("open_orders") or []
    lines.append("open orders" + ("" if orders else ": none"))
    for o in orders:
        lines.append(
            f"  {o['client_order_id']}  {o['product']} {o['side']} {o['order_type']} "
            f"{o['quantity']} filled {o['filled_quantity']} {o['status']} "
            f"since {_market(o['created_ts'])}"
        )
    return lines


__all__ = ["StatusError", "base_url", "collect", "render", "run_status"]
