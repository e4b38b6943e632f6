"""The daemon applies ``journal.group_commit``: the PortfolioActor's writes are committed once
per mailbox batch (on by default) or each on its own."""

from __future__ import annotations

from pathlib import Path

from tests.test_ops import running


def test_the_daemon_runs_the_portfolio_with_group_commit_by_default(tmp_path: Path) -> None:
    with running(tmp_path) as r:
        assert r.daemon.rt is not None and r.daemon.rt.group_commit == {"portfolio"}
    assert r.wait_exit() == 0


def test_group_commit_can_be_switched_off(tmp_path: Path) -> None:
    journal = {"path": str(tmp_path / "journal.sqlite"), "group_commit": False}
    with running(tmp_path, sections={"journal": journal}) as r:
        assert r.daemon.rt is not None and r.daemon.rt.group_commit == frozenset()
