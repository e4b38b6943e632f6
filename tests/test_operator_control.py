"""Operator control of a running daemon: manual target weights and actor restarts.

A real daemon (threaded runtime, paper venue, bundled data) runs in a thread of the test
process with its ops endpoint on an ephemeral loopback port.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from tests.test_ops import Running, get_json, poll, running


def daemon(tmp_path: Path, kind: str) -> AbstractContextManager[Running]:
    return running(tmp_path, sections={"strategy": {"kind": kind}})


def _intents(path: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(path) as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute("SELECT * FROM intents ORDER BY rowid")]


def test_manual_targets_trade_through_the_portfolio_and_survive_a_restart(tmp_path: Path) -> None:
    journal = tmp_path / "journal.sqlite"
    with daemon(tmp_path, "manual") as r:
        poll(lambda: get_json(r.port, "/status")[1]["risk"]["level"], "risk parameters")
        for bad, why in (
            ({"product": "DOGE-USD", "weight": 0.05}, "product: expected one of"),
            ({"product": "BTC-USD", "weight": 1.5}, "weight: expected a number in [0, 1]"),
            ({"product": "BTC-USD", "weight": True}, "weight: expected a number"),
            ({"product": "BTC-USD"}, "weight: expected a number"),
        ):
            code, err = get_json(r.port, "/control/target", method="POST", body=bad)
            assert code == 400 and why in err["error"], err
        body = {"product": "BTC-USD", "weight": 0.05, "reason": "soak"}
        code, out = get_json(r.port, "/control/target", method="POST", body=body)
        assert code == 202, out
        assert out == {"accepted": True, "product": "BTC-USD", "weight": 0.05}
        buys = poll(
            lambda: [i for i in _intents(journal) if i["product"] == "BTC-USD"],
            "an order for the operator's target",
        )
        assert buys[0]["side"] == "BUY"
        assert "operator" in json.dumps(buys[0])
    with sqlite3.connect(journal) as db:
        (raw,) = db.execute("SELECT value FROM meta WHERE key = 'operator_targets'").fetchone()
        kinds = [k for (k,) in db.execute("SELECT kind FROM events WHERE actor = 'strategy'")]
    assert json.loads(raw) == {"BTC-USD": [0.05, "soak"]}
    assert kinds == ["operator_target"]


def test_operator_targets_are_refused_while_a_strategy_decides(tmp_path: Path) -> None:
    with daemon(tmp_path, "ema_trend") as r:
        body = {"product": "BTC-USD", "weight": 0.05}
        code, err = get_json(r.port, "/control/target", method="POST", body=body)
        assert code == 409 and "strategy.kind: manual" in err["error"], err


def test_restart_command_restarts_the_actor_through_its_supervisor(tmp_path: Path) -> None:
    with daemon(tmp_path, "manual") as r:

        def generation(name: str) -> int:
            actors = get_json(r.port, "/status")[1]["actors"]
            return int(next(a for a in actors if a["name"] == name)["generation"])

        before = generation("execution"), generation("portfolio")
        for bad in ({"actor": "nope"}, {"actor": "shutdown"}, {}):
            code, err = get_json(r.port, "/control/restart", method="POST", body=bad)
            assert code == 400 and "actor: expected one of" in err["error"], err
        body = {"actor": "execution", "reason": "wedged"}
        code, out = get_json(r.port, "/control/restart", method="POST", body=body)
        assert code == 202 and out["supervisor"] == "trading", out
        poll(lambda: generation("execution") > before[0], "execution restarted")
        assert generation("portfolio") == before[1]  # rest_for_one: only what follows it
        health = poll(
            lambda: (h := get_json(r.port, "/health")[1])["actors"].get("execution") == "up" and h,
            "execution up again",
        )
        assert health["status"] in ("ok", "degraded")
