"""The live dashboard at ``/``: its equity curve, its HTTP rules, and the page in Chromium.

The browser test runs a real daemon (threaded runtime, paper venue, bundled data, an ops token)
in a thread of this process and drives a real headless Chromium through the DevTools protocol
(websocket-client): the operator pastes the token, the page shows the daemon's equity, a click
on Hold moves the emergency programme to NO_ENTRIES (read back from ``/status``) and Flatten
needs a second click. It is skipped where Chromium is not installed (Debian:
``apt-get install -y chromium``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request
from base64 import b64decode
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from itertools import count
from pathlib import Path
from typing import Any

import pytest
import websocket
from hypothesis import given, settings
from hypothesis import strategies as st

from cryptoj.config.ops import OpsConfig
from cryptoj.journal import Journal
from cryptoj.ops import dashboard, journal_view
from cryptoj.ops.curve import EquityCurve
from tests.stubs import chromium_command
from tests.test_ops import TOKEN, get_json, poll, request, running

S = 1_000_000_000
AUTH = {"Authorization": f"Bearer {TOKEN}"}


# -- the equity curve --------------------------------------------------------------------------


def _expected(marks: list[tuple[int, float]], span: int) -> list[list[Any]]:
    """The curve's points computed the plain way: spans of ``span`` ns from the first mark."""
    out: dict[int, list[Any]] = {}
    peak = float("-inf")
    for ts, e in marks:
        peak = max(peak, e)
        dd = 1.0 - e / peak if peak > 0 else 0.0
        k = (ts - marks[0][0]) // span
        low, worst = (min(out[k][4], e), max(out[k][5], dd)) if k in out else (e, dd)
        out[k] = [ts, e, peak, dd, low, worst]
    return list(out.values())


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(st.integers(1, 40), min_size=1, max_size=300),
    values=st.lists(st.floats(50.0, 150.0), min_size=300, max_size=300),
    max_points=st.integers(2, 40),
    cut=st.integers(0, 300),
)
def test_the_curve_is_bounded_exact_and_incremental(
    steps: list[int], values: list[float], max_points: int, cut: int
) -> None:
    ts = [sum(steps[: i + 1]) * S for i in range(len(steps))]
    marks = list(zip(ts, values, strict=False))
    whole = EquityCurve(max_points)
    assert whole.extend(marks) == len(marks)
    parts = EquityCurve(max_points)  # the endpoint reads the journal a few marks at a time
    parts.extend(marks[:cut])
    parts.extend(marks[max(0, cut - 3) :])  # marks already seen are ignored
    snap = whole.snapshot()
    assert parts.snapshot() == snap
    span = snap["span_ns"]
    assert len(snap["points"]) <= max_points
    if span > S:  # widened only as far as needed
        assert len(_expected(marks, span // 2)) > max_points
    assert snap["points"] == _expected(marks, span)
    assert snap["marks"] == len(marks) and (snap["first"], snap["last"]) == (ts[0], ts[-1])
    assert snap["max_drawdown"] == max(p[5] for p in snap["points"])


def test_a_trough_survives_thinning_and_bad_sizes_are_refused(tmp_path: Path) -> None:
    marks = [(i * S, 100.0 + (i % 7)) for i in range(1, 1001)]
    marks[500] = (501 * S, 50.0)
    path = tmp_path / "j.sqlite"
    j = Journal(path)
    for ts, equity in marks:
        j.record_equity(ts, Decimal(str(equity)), Decimal("0"))
    j.close()
    assert journal_view.equity_marks(path) == marks
    assert journal_view.equity_marks(path, 998 * S) == marks[-2:]
    curve = EquityCurve(20)
    curve.extend(journal_view.equity_marks(path))
    snap = curve.snapshot()
    assert len(snap["points"]) <= 20 and snap["span_ns"] == 64 * S
    assert min(p[4] for p in snap["points"]) == 50.0
    assert snap["max_drawdown"] == pytest.approx(1 - 50.0 / 106.0)
    assert EquityCurve().snapshot()["points"] == []
    with pytest.raises(ValueError, match="max_points: expected at least 2, got 1"):
        EquityCurve(1)


def test_same_origin() -> None:
    assert dashboard.same_origin("http://127.0.0.1:9325", "127.0.0.1:9325")
    assert dashboard.same_origin("http://LOCALHOST:80", "localhost:80")
    assert not dashboard.same_origin("http://127.0.0.1:9326", "127.0.0.1:9325")
    assert not dashboard.same_origin("https://127.0.0.1:9325", "127.0.0.1:9325")
    assert not dashboard.same_origin("http://evil.example", "127.0.0.1:9325")
    assert not dashboard.same_origin("http://127.0.0.1:9325", None)


# -- the HTTP rules -----------------------------------------------------------------------------


def test_the_page_needs_no_token_but_its_data_and_buttons_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRYPTOJ_TEST_TOKEN", TOKEN)
    with running(tmp_path, ops=OpsConfig(port=0, token_env="CRYPTOJ_TEST_TOKEN")) as r:
        for path in ("/", "/dashboard.js", "/dashboard.css"):
            code, headers, body = request(r.port, path)
            assert code == 200, path
            assert "frame-ancestors 'none'" in headers["content-security-policy"]
            assert headers["x-frame-options"] == "DENY"
            assert TOKEN.encode() not in body
            # DNS rebinding: the Host check still applies to the page
            assert request(r.port, path, headers={"Host": "evil.example"})[0] == 403
        page = request(r.port, "/")[2].decode()
        assert '<script src="/dashboard.js"' in page and "<script>" not in page
        for path in ("/dashboard/equity", "/dashboard/control"):
            assert request(r.port, path)[0] == 401, path
        code, series = get_json(r.port, "/dashboard/equity", headers=AUTH)
        assert code == 200
        assert set(series) == {"points", "marks", "max_drawdown", "first", "last", "span_ns"}
        code, info = get_json(r.port, "/dashboard/control", headers=AUTH)
        assert code == 200
        assert info == {
            "allowed": True,
            "detail": "with the ops token",
            "token_required": True,
            "commands": ["hold", "resume", "flatten"],
        }
        code, status = get_json(r.port, "/status", headers=AUTH)
        assert status["programme"]["level"] == "NORMAL"
        assert status["programme"]["snapshot"]["held"] is False

        # the dashboard's own request (same origin) passes the control checks; another page's not
        own = {**AUTH, "Origin": f"http://127.0.0.1:{r.port}", "Sec-Fetch-Site": "same-origin"}
        other = {**AUTH, "Origin": "http://127.0.0.1:8080", "Sec-Fetch-Site": "same-site"}
        cross = {**AUTH, "Sec-Fetch-Site": "cross-site"}
        no_token = {k: v for k, v in own.items() if k != "Authorization"}

        def hold(headers: dict[str, str]) -> int:
            return request(r.port, "/control/hold", method="POST", body={}, headers=headers)[0]

        assert hold(other) == 403 and hold(cross) == 403 and hold(no_token) == 401
        assert hold(own) == 202
        poll(
            lambda: (
                get_json(r.port, "/status", headers=AUTH)[1]["programme"]["level"] == "NO_ENTRIES"
            ),
            "the hold",
        )

        # a remote client: the page is told why its buttons are off
        monkeypatch.setattr("cryptoj.ops.server.client_is_local", lambda address: False)
        code, info = get_json(r.port, "/dashboard/control", headers=AUTH)
        assert info["allowed"] is False
        assert info["detail"] == "control is only accepted from loopback (ops.control_remote)"


# -- in a real browser --------------------------------------------------------------------------


class DevTools:
    """A minimal Chrome DevTools protocol client over one page's websocket."""

    def __init__(self, ws_url: str) -> None:
        self.ws = websocket.create_connection(ws_url, timeout=15, suppress_origin=True)
        self.ids = count(1)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one command and wait for its answer (events in between are skipped)."""
        msg_id = next(self.ids)
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return dict(reply.get("result", {}))
        raise TimeoutError(f"{method}: no answer")

    def js(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page."""
        out = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in out:
            raise RuntimeError(f"{expression}: {out['exceptionDetails']}")
        return out["result"].get("value")

    def click(self, element_id: str) -> None:
        """A real mouse click (pressed and released) at the middle of an element."""
        box = self.js(
            f"(() => {{ const r = document.getElementById({element_id!r})"
            ".getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        x, y = box
        self.call("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def close(self) -> None:
        self.ws.close()


@contextmanager
def chromium(tmp_path: Path) -> Iterator[DevTools]:
    """A headless Chromium with remote debugging on a free loopback port, and its page."""
    profile = tmp_path / "profile"
    cmd = chromium_command(
        profile,
        "1400,1500",
        "--remote-debugging-address=127.0.0.1",
        "--remote-debugging-port=0",
        "about:blank",
    )
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tools: DevTools | None = None
    try:
        active = profile / "DevToolsActivePort"
        port = poll(lambda: active.is_file() and active.read_text().split("\n")[0], "Chromium")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as resp:
            pages = [t for t in json.load(resp) if t["type"] == "page"]
        tools = DevTools(pages[0]["webSocketDebuggerUrl"])
        yield tools
    finally:
        if tools is not None:
            tools.close()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.mark.skipif(
    shutil.which("chromium") is None,
    reason="Chromium is not installed (Debian: apt-get install -y chromium)",
)
def test_the_dashboard_in_headless_chromium_shows_equity_and_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRYPTOJ_TEST_TOKEN", TOKEN)
    ops = OpsConfig(port=0, token_env="CRYPTOJ_TEST_TOKEN")
    # a bar a second; starting cash that is not the default, so the figure is the daemon's
    paper = {"paper": {"starting_cash": 250_000.0}}
    with running(tmp_path, ops=ops, speed=60.0, sections=paper) as r, chromium(tmp_path) as page:

        def status() -> dict[str, Any]:
            return dict(get_json(r.port, "/status", headers=AUTH)[1])

        def text(element_id: str) -> str:
            return str(page.js(f"document.getElementById({element_id!r}).textContent"))

        # a remote client first: the buttons stay off and say why
        monkeypatch.setattr("cryptoj.ops.server.client_is_local", lambda address: False)
        url = f"http://127.0.0.1:{r.port}/"
        page.call("Page.navigate", url=url)
        poll(
            lambda: page.js(f"location.href === {url!r} && document.readyState === 'complete'"),
            "the page to load",
        )
        poll(lambda: page.js("!document.getElementById('token-bar').hidden"), "the token prompt")
        assert page.js("sessionStorage.length") == 0
        page.js("document.getElementById('token-input').focus()")
        page.call("Input.insertText", text=TOKEN)
        page.click("token-use")
        poll(lambda: page.js("document.getElementById('token-bar').hidden"), "the token accepted")
        assert page.js("sessionStorage.getItem('cryptoj-ops-token')") == TOKEN
        poll(lambda: "control refused" in text("control-note"), "the refusal")
        assert "only accepted from loopback" in text("control-note")
        assert page.js("document.getElementById('btn-hold').disabled") is True
        monkeypatch.undo()
        monkeypatch.setenv("CRYPTOJ_TEST_TOKEN", TOKEN)
        poll(lambda: "control allowed" in text("control-note"), "control allowed")
        assert page.js("document.getElementById('btn-hold').disabled") is False

        # the page shows the running daemon's equity: the exact figure /status gives (it moves
        # at most once per bar and the page polls every 2 s: wait until both read one bar)
        def same_equity() -> bool:
            shown = page.js("document.getElementById('equity').dataset.value")
            now = status()["portfolio"]
            return bool(shown) and now is not None and shown == now["equity"]

        poll(same_equity, "the page to show the daemon's equity")
        equity = status()["portfolio"]["equity"]
        assert 200_000 < float(equity) < 300_000, equity
        poll(lambda: text("equity").startswith(f"{int(float(equity)) // 1000:,},"), "the figure")
        assert text("programme-level") == "NORMAL"
        assert text("risk-level") == status()["risk"]["level"]
        assert text("feed-state") == "healthy"
        assert page.js("document.querySelectorAll('#actors tbody tr').length") == len(
            status()["actors"]
        )
        assert page.js("document.querySelectorAll('#threads tbody tr').length") >= 2
        poll(lambda: page.js("!!document.querySelector('#chart svg path.equity')"), "the chart")

        # Hold: a real click; the programme moves to NO_ENTRIES and the page says so
        page.click("btn-hold")
        poll(lambda: status()["programme"]["level"] == "NO_ENTRIES", "the hold in /status")
        assert status()["programme"]["snapshot"]["held"] is True
        poll(lambda: text("programme-level") == "NO_ENTRIES", "the page to show the hold")
        assert text("control-result").startswith("hold: accepted")
        poll(lambda: "NORMAL -> NO_ENTRIES" in text("programme-history"), "the history row")

        # Flatten takes a second click: the first only arms the button
        page.click("btn-flatten")
        assert text("btn-flatten") == "Confirm flatten"
        assert status()["programme"]["level"] == "NO_ENTRIES"
        page.click("btn-flatten")
        poll(lambda: status()["programme"]["level"] == "FLATTEN", "the flatten in /status")
        poll(lambda: text("programme-level") == "FLATTEN", "the page to show the flatten")

        shot = b64decode(page.call("Page.captureScreenshot", format="png")["data"])
        assert shot.startswith(b"\x89PNG")
        keep = os.environ.get("CRYPTOJ_KEEP_SCREENSHOT")  # a path: keep it to look at
        if keep:
            Path(keep).write_bytes(shot)
