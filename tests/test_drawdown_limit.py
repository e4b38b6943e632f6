"""``risk.max_drawdown``: a limit from the equity high-water mark that no new day, recovery or
restart lifts; only an operator's resume (journalled with who and when) does."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

from cryptoj.actors.risk import HWM_KEY, RiskActor, drawdown_state
from cryptoj.config import RiskConfig
from cryptoj.journal import Journal
from cryptoj.models.portfolio import PortfolioSnapshot
from cryptoj.models.risk import RiskLevel, RiskLevelChanged, RiskParameters, RiskResume
from cryptoj.risk.levels import NS_PER_DAY
from tests.stubs import FakeCtx

DAY0 = 19_000 * NS_PER_DAY
HOUR = 3600 * 10**9
REPO = Path(__file__).resolve().parents[1]


def _snap(ts: int, equity: float) -> PortfolioSnapshot:
    e = Decimal(str(equity))
    return PortfolioSnapshot(
        ts=ts, cash=e, reserved_cash=Decimal(0), equity=e, positions=(), open_orders=0
    )


def _risk(path: Path) -> tuple[RiskActor, FakeCtx]:
    actor = RiskActor(RiskConfig(max_drawdown=0.10), str(path))
    ctx = FakeCtx(time_ns=DAY0)
    actor.on_start(ctx)
    return actor, ctx


def _slide(actor: RiskActor, ctx: FakeCtx) -> None:
    """Up to a mark of 120 000, then 1.5 % a day down (never a daily-limit day) to 107 000."""
    actor.receive(_snap(DAY0 + HOUR, 100_000), ctx)
    actor.receive(_snap(DAY0 + 2 * HOUR, 120_000), ctx)
    equity = 120_000.0
    for day in range(1, 9):
        equity *= 0.985
        actor.receive(_snap(DAY0 + day * NS_PER_DAY + HOUR, equity), ctx)


def test_the_drawdown_halt_and_the_mark_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    actor, ctx = _risk(path)
    _slide(actor, ctx)
    assert actor.level is RiskLevel.HALTED
    changed = [m for m in ctx.to("shutdown") if isinstance(m, RiskLevelChanged)]
    assert changed[-1].level is RiskLevel.HALTED and "high-water mark" in changed[-1].reason
    params = [m for m in ctx.to("portfolio") if isinstance(m, RiskParameters)]
    assert params[-1].level is RiskLevel.HALTED and not params[-1].entries_allowed
    actor.on_stop(ctx)

    journal = Journal(path)
    assert drawdown_state(journal) == (120_000.0, True)
    assert [e["kind"] for e in journal.events("drawdown_halt")] == ["drawdown_halt"]
    journal.close()

    again, ctx2 = _risk(path)  # a restart; the book has recovered to 115 000 meanwhile
    assert again.levels.hwm == 120_000.0
    again.receive(_snap(DAY0 + 20 * NS_PER_DAY, 115_000), ctx2)
    assert again.level is RiskLevel.HALTED  # 4.2 % below the mark, but still halted
    for k in range(1, 6):  # cool-downs pass: nothing steps down without an operator
        again.receive(_snap(DAY0 + 20 * NS_PER_DAY + k * HOUR, 115_000), ctx2)
    assert again.level is RiskLevel.HALTED

    again.receive(RiskResume(ts=ctx2.now(), by="alice", reason="reviewed"), ctx2)
    journal = Journal(path)
    (resume,) = journal.events("risk_resume")
    detail = json.loads(resume["detail"])
    assert (detail["by"], detail["hwm"], resume["ts"]) == ("alice", 115_000.0, ctx2.now())
    assert drawdown_state(journal) == (115_000.0, False)
    journal.close()
    levels = []
    for k in range(6, 10):
        again.receive(_snap(DAY0 + 20 * NS_PER_DAY + k * HOUR, 115_000), ctx2)
        levels.append(again.level)
    assert levels == [RiskLevel.HALTED, RiskLevel.REDUCING, RiskLevel.CAUTION, RiskLevel.NORMAL]


def test_the_resume_command_records_who_in_the_journal_of_a_stopped_daemon(
    tmp_path: Path,
) -> None:
    path = tmp_path / "j.sqlite"
    actor, ctx = _risk(path)
    _slide(actor, ctx)
    actor.on_stop(ctx)
    out = subprocess.run(
        [sys.executable, "-m", "cryptoj", "resume", "--journal", str(path), "--by", "bob",
         "--reason", "post-mortem done", "--url", "http://127.0.0.1:9", "--timeout", "2"],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "no cryptoj daemon answering" in out.stderr
    assert "recorded" in out.stdout and "bob" in out.stdout and "drawdown halt lifted" in out.stdout
    journal = Journal(path)
    (resume,) = journal.events("risk_resume")
    assert json.loads(resume["detail"])["by"] == "bob" and resume["ts"] > DAY0
    assert journal.get_meta(HWM_KEY) == ""  # the mark starts again from the next equity
    journal.close()
    again, ctx2 = _risk(path)
    again.receive(_snap(DAY0 + 20 * NS_PER_DAY, 104_000), ctx2)
    assert again.level is RiskLevel.NORMAL and again.levels.hwm == 104_000.0


def test_the_risk_audit_counts_the_bar_closing_at_midnight_in_the_day_it_closes(
    tmp_path: Path,
) -> None:
    path = tmp_path / "audit.sqlite"
    journal = Journal(path)
    journal.set_meta("starting_cash", "100000")
    midnight = DAY0 + NS_PER_DAY  # 2022-01-09 00:00 UTC closes 2022-01-08
    rows = [(DAY0 + 20 * HOUR, "100000"), (midnight, "97900"), (midnight + 4 * HOUR, "97000")]
    for ts, equity in rows:
        journal.record_equity(ts, Decimal(equity), Decimal(equity))
    journal.record_event(midnight, "risk", "risk_level", "NORMAL -> HALTED: daily loss 2.10%")
    journal.close()
    out = subprocess.run(
        [sys.executable, "tools/risk_audit.py", str(path), "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    audit = json.loads(out.stdout)
    (day,) = audit["limit_days"]
    assert (day["day"], day["loss"], day["halted"]) == ("2022-01-08", 0.021, True)
    assert day["largest_bar_fall"] == 0.021 and day["excess_within_one_bar"]
    assert audit["days"] == 2 and audit["worst_day_loss"] == 0.021  # 01-09: 0.92 % from 97,900
    assert audit["max_drawdown"] == 0.03
