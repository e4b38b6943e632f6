"""A strategy written outside the package: loaded by ``module:Class`` from the working directory,
run in ``replay`` and in the daemon, named in the orders and ``trace follow``; a raising one is
restarted; bad parameters are refused; two strategies share the capital."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from tests.stubs import ROOT, spawn_daemon

USER_MODULE = '''
from typing import Annotated

import msgspec

from cryptoj.strategies.api import Strategy, Target


class Params(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    lookback: Annotated[int, msgspec.Meta(ge=2, le=100)] = 30
    weight: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.1


class MyStrategy(Strategy[Params]):
    """Hold ``weight`` while the close is above the close ``lookback`` bars ago."""

    Params = Params
    history_bars = 100

    def on_bar(self, bar):
        bars = self.ctx.bars(bar.product)
        if len(bars) < self.params.lookback:
            return None
        up = bar.close > bars[-self.params.lookback].close
        return Target(bar.product, self.params.weight if up else 0.0, "up" if up else "down")


FAILED = []


class Flaky(MyStrategy):
    """Raises once, on its 200th live bar (a transient bug); the restart warms it up again."""

    def on_bar(self, bar):
        if not self.ctx.warming_up:
            self.live = getattr(self, "live", 0) + 1
            if self.live == 200 and not FAILED:
                FAILED.append(bar.ts)
                raise RuntimeError("flaky strategy")
        return super().on_bar(bar)
'''


def _setup(tmp_path: Path, strategy_yaml: str) -> Path:
    (tmp_path / "mymod.py").write_text(USER_MODULE)
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        f"journal:\n  path: {tmp_path / 'journal.sqlite'}\n"
        f"trace:\n  path: {tmp_path / 'trace.jsonl'}\nops:\n  port: 0\n" + strategy_yaml
    )
    return cfg


def _cryptoj(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m cryptoj ARGS --config CFG`` (``check-config CFG``) in the config's folder
    (this checkout)."""
    tail = [str(cfg)] if args[0] == "check-config" else ["--config", str(cfg)]
    return subprocess.run(
        [sys.executable, "-m", "cryptoj", *args, *tail],
        cwd=cfg.parent,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )


def _replay(cfg: Path) -> dict[str, object]:
    tmp = cfg.parent
    done = _cryptoj(
        cfg,
        "replay",
        "--json",
        "--journal",
        str(tmp / "replay.sqlite"),
        "--trace",
        str(tmp / "replay.jsonl"),
    )
    assert done.returncode == 0, done.stderr
    summary: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return summary


def test_a_strategy_from_the_working_directory_replays_and_names_its_orders(
    tmp_path: Path,
) -> None:
    cfg = _setup(tmp_path, 'strategy:\n  kind: "mymod:MyStrategy"\n  params: {lookback: 30}\n')
    s = _replay(cfg)
    assert s["invariants_ok"] is True, s["invariant_problems"]
    assert isinstance(s["orders"], int) and s["orders"] > 0
    assert s["orders_by_strategy"] == {"MyStrategy": s["orders"]}
    with sqlite3.connect(tmp_path / "replay.sqlite") as c:
        coid, reason = c.execute("SELECT client_order_id, reason FROM intents LIMIT 1").fetchone()
    assert "MyStrategy:" in reason
    follow = subprocess.run(
        [sys.executable, "-m", "cryptoj", "trace", "follow", str(tmp_path / "replay.jsonl"), coid],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert follow.returncode == 0, follow.stderr
    assert "strategy_id" in follow.stdout or "MyStrategy:" in follow.stdout
    assert "MyStrategy:" in follow.stdout


def test_a_strategy_that_raises_is_restarted_and_the_books_stay_consistent(
    tmp_path: Path,
) -> None:
    cfg = _setup(tmp_path, 'strategy:\n  kind: "mymod:Flaky"\n')
    s = _replay(cfg)
    assert s["crashes"] == 1 and s["restarts"] >= 1 and s["escalations"] == 0
    assert s["invariants_ok"] is True, s["invariant_problems"]
    assert s["exit_code"] == 0
    assert isinstance(s["orders"], int) and s["orders"] > 0


def test_bad_parameters_and_missing_modules_are_refused_with_exit_2(tmp_path: Path) -> None:
    cfg = _setup(
        tmp_path, 'strategy:\n  kind: "mymod:MyStrategy"\n  params: {lookback: 1, colour: 3}\n'
    )
    done = _cryptoj(cfg, "check-config")
    assert done.returncode == 2
    lines = done.stdout.strip().splitlines()
    assert "strategy.params.lookback: expected a whole number in [2, 100], got 1" in lines
    assert any(line.startswith("strategy.params.colour: unknown field") for line in lines)
    replay = _cryptoj(cfg, "replay", "--json")  # refused at start, the same lines
    assert replay.returncode == 2 and "strategy.params.lookback" in replay.stderr
    cfg.write_text('strategy:\n  kind: "nosuchmod:Thing"\n')
    done = _cryptoj(cfg, "check-config")
    assert done.returncode == 2
    assert "strategy.kind: cannot import module 'nosuchmod'" in done.stdout


def test_two_strategies_with_half_the_capital_each_report_their_orders(tmp_path: Path) -> None:
    cfg = _setup(
        tmp_path,
        "strategies:\n"
        "  - {kind: ema_trend, name: trend, weight: 0.5, fast_period: 3, slow_period: 8,"
        " entry_band: 0.0005}\n"
        '  - {kind: "mymod:MyStrategy", name: mine, weight: 0.5, params: {lookback: 30}}\n',
    )
    s = _replay(cfg)
    assert s["invariants_ok"] is True, s["invariant_problems"]
    by = s["orders_by_strategy"]
    assert isinstance(by, dict) and by.get("trend", 0) > 0 and by.get("mine", 0) > 0
    assert sum(by.values()) == s["orders"]


def test_the_daemon_runs_a_user_strategy_in_paper_mode(tmp_path: Path) -> None:
    cfg = _setup(
        tmp_path,
        'feed:\n  speed: 0\nstrategy:\n  kind: "mymod:MyStrategy"\n  params: {lookback: 5}\n',
    )
    proc = spawn_daemon(cfg)
    db = tmp_path / "journal.sqlite"
    reasons: list[str] = []
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and not reasons:
            try:
                with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
                    reasons = [r[0] for r in c.execute("SELECT reason FROM intents")]
            except sqlite3.OperationalError:
                pass  # the daemon has not created the journal (or its tables) yet
            time.sleep(0.2)  # polling interval of this test only
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert reasons, out
    assert all("MyStrategy:" in r for r in reasons if r.startswith("target"))
    assert "MyStrategy:" in (tmp_path / "trace.jsonl").read_text()
    assert proc.returncode == 0, out
