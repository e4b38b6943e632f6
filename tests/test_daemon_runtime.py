"""The daemon applies its runtime settings: the GIL switch interval while it runs (restored
afterwards) and the PortfolioActor's group commit (``journal.group_commit``)."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.test_ops import running


def test_the_daemon_runs_under_its_switch_interval_with_group_commit(tmp_path: Path) -> None:
    before = sys.getswitchinterval()
    with running(tmp_path, sections={"runtime": {"switch_interval_us": 700}}) as r:
        assert sys.getswitchinterval() == 0.0007
        assert r.daemon.rt is not None and r.daemon.rt.group_commit == {"portfolio"}
    assert r.wait_exit() == 0
    assert sys.getswitchinterval() == before


def test_group_commit_can_be_switched_off(tmp_path: Path) -> None:
    journal = {"path": str(tmp_path / "journal.sqlite"), "group_commit": False}
    with running(tmp_path, sections={"journal": journal}) as r:
        assert r.daemon.rt is not None and r.daemon.rt.group_commit == frozenset()
        assert sys.getswitchinterval() == 0.001  # the default runtime.switch_interval_us
