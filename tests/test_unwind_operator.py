"""Operator commands of the emergency programme against a running daemon (threaded runtime).

``POST /control/flatten|hold|resume`` and ``python -m cryptoj flatten|hold|resume|shutdown``
reach the ShutdownActor on loopback; what it decides is journalled (``operator``,
``response_level`` events), and ``flatten --stop`` ends the daemon with exit code 0 once
the unwind is complete.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from cryptoj.cli import main
from tests.test_ops import get_json, poll, request, running

pytestmark = pytest.mark.threaded


def _details(journal: Path, kind: str) -> list[str]:
    with sqlite3.connect(journal) as db:
        rows = db.execute("SELECT detail FROM events WHERE kind = ? ORDER BY seq", (kind,))
        return [str(d) for (d,) in rows]


def test_flatten_hold_and_resume_through_the_control_endpoint(tmp_path: Path) -> None:
    journal = tmp_path / "journal.sqlite"
    with running(tmp_path) as r:
        code, body = get_json(
            r.port, "/control/flatten", method="POST", body={"reason": "desk call"}
        )
        assert code == 202 and body == {
            "accepted": True,
            "command": "flatten",
            "reason": "desk call",
            "stop": False,
        }
        poll(
            lambda: any("-> FLATTEN: operator" in d for d in _details(journal, "response_level")),
            "the ShutdownActor to flatten",
        )
        code, body = get_json(
            r.port, "/control/resume", method="POST", body={"reason": "ok", "by": "carol"}
        )
        assert code == 202 and body["by"] == "carol" and body["risk_resumed"] is True
        poll(
            lambda: any('"by": "carol"' in d for d in _details(journal, "risk_resume")),
            "the RiskActor to journal who resumed",
        )
        poll(
            lambda: any("FLATTEN -> NORMAL" in d for d in _details(journal, "response_level")),
            "the programme to return to NORMAL",
        )
        code, _ = get_json(r.port, "/control/hold", method="POST", body={})
        assert code == 202
        poll(
            lambda: any("NORMAL -> NO_ENTRIES" in d for d in _details(journal, "response_level")),
            "the hold",
        )
        assert request(r.port, "/control/panic", method="POST", body={})[0] == 404
        assert request(r.port, "/control/flatten", method="GET")[0] == 405
    assert _details(journal, "operator")[:3] == [
        "flatten: control: desk call",
        "resume: control: ok",
        "hold: control endpoint",
    ]


def test_the_cli_commands_talk_to_the_daemon_and_flatten_stop_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = tmp_path / "journal.sqlite"
    with running(tmp_path) as r:
        port = str(r.port)
        assert main(["hold", "--port", port, "--reason", "investigating"]) == 0
        assert "hold: accepted" in capsys.readouterr().out
        assert main(["flatten", "--port", port, "--stop", "--reason", "end of day"]) == 0
        assert r.wait_exit() == 0
    assert "flatten: control: end of day" in _details(journal, "operator")
    assert any("exit 0" in d for d in _details(journal, "stopping"))


def test_the_cli_says_when_no_daemon_answers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = str(tmp_path / "none.sqlite")
    assert main(["resume", "--port", "1", "--timeout", "2", "--journal", missing]) == 1
    err = capsys.readouterr().err
    assert "no cryptoj daemon answering" in err and "journal" in err and "not found" in err


def test_shutdown_command_stops_the_daemon_in_order(tmp_path: Path) -> None:
    with running(tmp_path) as r:
        assert main(["shutdown", "--port", str(r.port), "--reason", "upgrade"]) == 0
        assert r.wait_exit() == 0
    assert _details(tmp_path / "journal.sqlite", "shutdown_requested") == ["control: upgrade"]
