"""The execution soak end to end, small: the real daemon process against the local fake.

Twelve intents with random REST faults, one operator restart of an actor and one SIGKILL of
the whole daemon (then a fresh start that recovers from the journal and the venue). The full
run (``python tools/exec_soak.py --orders 200 --fault-rate 0.2 --seed 3 --kill9 3``) is in
BENCHMARKS.md / the README.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import exec_soak  # noqa: E402


def test_no_order_is_lost_or_duplicated_through_faults_restarts_and_a_kill9(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--orders", "12", "--fault-rate", "0.3", "--seed", "5", "--kill9", "1"]
    code = exec_soak.main([*argv, "--restarts", "1", "--keep", str(tmp_path), "--json"])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0, out
    assert out["orders_intended"] >= 12
    assert out["kills"] == 1 and out["exit_codes"][:1] == [-9]
    assert out["actor_restarts"] == 1
    assert out["duplicates_at_venue"] == 0
    assert out["lost_fills"] == 0 and out["overbooked_fills"] == 0
    assert out["journal_fills"] == out["venue_fills"] > 0
    assert out["positions_match"] is True
    assert out["open_intents"] == 0 and out["open_orders"] == 0
    assert out["final_exit_code"] == 0
    assert sum(out["faults_injected"].values()) > 0
    assert (tmp_path / "venue.json").exists()
