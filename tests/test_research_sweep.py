"""``cryptoj sweep``: spec validation, walk-forward windows, trials as real replays, failed
trials kept, determinism, resuming after an interruption or a SIGKILL, and the outputs.

The sweeps here are tiny: the bundled 4h data over four months of 2020, two walk-forward
folds (60 train days, 30 test days), four trials per fold.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from cryptoj.config import ConfigError, load_config, parse_config
from cryptoj.marketdata.ticks import load_market_data
from cryptoj.replay import ReplayOptions, run_replay
from cryptoj.research.output import write_best, write_trials
from cryptoj.research.report import write_report
from cryptoj.research.space import (
    WalkForward,
    config_path_exists,
    grid_values,
    load_spec,
    parse_spec,
)
from cryptoj.research.sweep import SweepOptions, SweepOutcome, run_sweep
from cryptoj.research.trial import Payload, Task, load_payload_data, preceding, run_trial
from cryptoj.research.windows import make_folds

ROOT = Path(__file__).resolve().parents[1]
DATA = "coinbase-4h-2016-2025"

SPEC: dict[str, Any] = {
    "data": DATA,
    "from": "2020-01-01",
    "to": "2020-04-30",
    "trials": 4,
    "batch": 2,
    "seed": 3,
    "cscv_blocks": 4,
    "objective": {"metric": "sharpe", "max_drawdown": 0.3},
    "walk_forward": {"train_days": 60, "test_days": 30},
    "params": {
        "strategy.fast_period": {"low": 4, "high": 24, "step": 2},
        "strategy.slow_period": {"low": 30, "high": 96, "step": 6},
        "risk.position_size_limit": {"low": 0.05, "high": 0.5, "log": True},
    },
}


def _table(out: SweepOutcome) -> pd.DataFrame:
    """The trial table without its timings (the only figure that may differ between runs)."""
    return pd.DataFrame(out.rows).drop(columns=["wall_seconds"])


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> SweepOutcome:
    """The sweep run once, uninterrupted, on two pool workers."""
    out = tmp_path_factory.mktemp("ref")
    return run_sweep(parse_spec(SPEC), SweepOptions(out=out, jobs=2))


# -- the sweep file ----------------------------------------------------------------------


def test_spec_reports_every_problem_one_a_line() -> None:
    bad = {
        "params": {
            "strategy.fst_period": {"low": 1, "high": 5},
            "risk.stop_loss": {"low": 0.2, "high": 0.1},
            "strategy.band": {"choices": [0.0], "low": 0.0},
            "risk.position_size_limit": {"low": 0.0, "high": 0.5, "log": True},
            "feed.data": {"choices": ["x"]},
        },
        "overrides": {"risk.nope": 1},
        "cscv_blocks": 5,
    }
    with pytest.raises(ConfigError) as e:
        parse_spec(bad, "s.yaml")
    assert e.value.problems == [
        "params.strategy.fst_period: not a config field",
        "params.risk.stop_loss: low 0.2 is above high 0.1",
        "params.strategy.band: give either choices or a range (low, high), not both",
        "params.risk.position_size_limit: a log range needs low > 0, got 0.0",
        "params.feed.data: the market data is fixed for a sweep (set data: instead)",
        "overrides.risk.nope: not a config field",
        "cscv_blocks: expected an even number, got 5",
    ]
    with pytest.raises(ConfigError, match="trials"):
        parse_spec({**SPEC, "trials": 0})


def test_config_paths_and_grid_values() -> None:
    assert config_path_exists("strategy.fast_period")
    assert config_path_exists("shutdown.unwind.mode")
    assert not config_path_exists("strategy.fast_period.x")
    spec = parse_spec(SPEC)
    assert grid_values(spec.params["strategy.fast_period"], 5) == list(range(4, 25, 2))
    logs = grid_values(spec.params["risk.position_size_limit"], 3)
    assert logs[0] == pytest.approx(0.05) and logs[2] == pytest.approx(0.5)
    assert logs[1] == pytest.approx((0.05 * 0.5) ** 0.5)


def test_the_shipped_example_is_valid() -> None:
    spec = load_spec(ROOT / "examples" / "sweep.yaml")
    assert spec.walk_forward.enabled and spec.search == "tpe"
    assert "risk.position_size_limit" in spec.params


def test_walk_forward_windows_roll_by_the_test_length() -> None:
    folds = make_folds(
        dt.date(2020, 1, 1), dt.date(2020, 4, 30), WalkForward(train_days=60, test_days=30)
    )
    assert [(f.train_start, f.train_end, f.test_start, f.test_end) for f in folds] == [
        (dt.date(2020, 1, 1), dt.date(2020, 2, 29), dt.date(2020, 3, 1), dt.date(2020, 3, 30)),
        (dt.date(2020, 1, 31), dt.date(2020, 3, 30), dt.date(2020, 3, 31), dt.date(2020, 4, 29)),
    ]
    off = make_folds(dt.date(2020, 1, 1), dt.date(2020, 4, 30), WalkForward(enabled=False))
    assert len(off) == 1 and off[0].test_start is None
    with pytest.raises(ValueError, match="exceed"):
        make_folds(dt.date(2020, 1, 1), dt.date(2020, 1, 31), WalkForward())


# -- one trial -------------------------------------------------------------------------


def test_a_trial_is_the_replay_of_its_window(tmp_path: Path) -> None:
    """A trial on preloaded data gives the same figures as ``replay --from --to``."""
    before, batches = load_payload_data(DATA, None, dt.date(2020, 1, 1), dt.date(2020, 4, 30))
    params = {"strategy.fast_period": 8, "strategy.slow_period": 40}
    payload = Payload(DATA, batches, before, {}, 5, 86400.0)
    task = Task(0, 0, "train", params, dt.date(2020, 2, 1), dt.date(2020, 3, 15))
    # its warm-up comes from memory, and is what ``replay --from`` reads from the data set
    warm = load_market_data(DATA, end=task.start - dt.timedelta(days=1))
    assert preceding(payload, task.start) == warm
    res = run_trial(payload, task, tmp_path)
    assert res.ok, res.error
    cfg = parse_config({"strategy": {"fast_period": 8, "slow_period": 40}})
    opts = ReplayOptions(
        data=DATA,
        start=task.start,
        end=task.end,
        journal=str(tmp_path / "cli.sqlite"),
        trace=None,
        seed=5,
    )
    summary, code = run_replay(cfg, opts)
    assert code == 0
    assert res.figures["final_equity"] == summary["final_equity"]
    assert res.figures["fees_paid"] == summary["fees_paid"]
    assert res.figures["orders"] == summary["orders"] > 0
    assert len(res.equity) == 45 + 1  # one value per day, and the start
    assert list(tmp_path.glob("trial-*")) == []  # its journal is gone


def test_failures_come_back_with_their_error(tmp_path: Path) -> None:
    batches = load_market_data(DATA, start=dt.date(2020, 1, 1), end=dt.date(2020, 1, 31))
    payload = Payload(DATA, batches, [], {}, 5, 86400.0)
    bad = Task(
        0,
        1,
        "train",
        {"strategy.fast_period": 60, "strategy.slow_period": 30},
        dt.date(2020, 1, 1),
        dt.date(2020, 1, 31),
    )
    res = run_trial(payload, bad, tmp_path)
    assert not res.ok
    assert res.error.startswith("invalid config: strategy.fast_period: expected less than")
    empty = Task(0, 2, "train", {}, dt.date(2021, 1, 1), dt.date(2021, 1, 31))
    res = run_trial(payload, empty, tmp_path)
    assert not res.ok and "no market data between 2021-01-01 and 2021-01-31" in res.error


def test_invalid_trials_are_recorded_failed_and_the_sweep_goes_on(tmp_path: Path) -> None:
    spec = parse_spec(
        {
            **SPEC,
            "search": "grid",
            "trials": 10,
            "walk_forward": {"enabled": False},
            "to": "2020-02-29",
            "params": {
                "strategy.fast_period": {"choices": [10, 60]},
                "strategy.slow_period": {"choices": [30, 50]},
            },
        }
    )
    out = run_sweep(spec, SweepOptions(out=tmp_path, jobs=1))
    table = pd.DataFrame(out.rows)
    assert len(table) == 4  # the whole grid, once each, although the budget is 10
    pairs = zip(table["strategy.fast_period"], table["strategy.slow_period"], strict=True)
    assert sorted(pairs) == [
        (10, 30),
        (10, 50),
        (60, 30),
        (60, 50),
    ]
    failed = table[table.state == "FAIL"]
    assert len(failed) == 2 and set(failed["strategy.fast_period"]) == {60}
    assert all(e.startswith("invalid config: strategy.fast_period") for e in failed.error)
    assert out.folds[0].failed == 2 and out.folds[0].complete == 2
    assert out.folds[0].params["strategy.fast_period"] == 10


# -- the sweep -------------------------------------------------------------------------


def test_walk_forward_scores_each_choice_on_the_next_window(reference: SweepOutcome) -> None:
    table = _table(reference)
    assert reference.finished
    assert len(table[table.phase == "train"]) == 2 * 4
    tests = table[table.phase == "test"]
    assert list(tests.window_start) == ["2020-03-01", "2020-03-31"]
    for fold in reference.folds:
        chosen = table[(table.fold == fold.fold.index) & table.selected & (table.phase == "train")]
        assert list(chosen.trial) == [fold.best_number]
        train = table[(table.fold == fold.fold.index) & (table.phase == "train")]
        feasible = train[train.feasible == True]  # noqa: E712
        assert chosen.objective.iloc[0] == feasible.objective.max()
        assert fold.test["objective"] == tests[tests.fold == fold.fold.index].objective.iloc[0]
        assert fold.pbo is not None and 0.0 <= fold.pbo <= 1.0
        assert fold.dsr is not None and 0.0 <= fold.dsr <= 1.0


def test_same_seed_same_results_whatever_the_workers(
    reference: SweepOutcome, tmp_path: Path
) -> None:
    again = run_sweep(parse_spec(SPEC), SweepOptions(out=tmp_path, jobs=1))
    pd.testing.assert_frame_equal(_table(again), _table(reference))


def test_an_interrupted_sweep_resumes_without_repeating_a_trial(
    reference: SweepOutcome, tmp_path: Path
) -> None:
    first = run_sweep(parse_spec(SPEC), SweepOptions(out=tmp_path, jobs=2, stop_after=3))
    assert not first.finished and first.ran == 4  # stopped after its second batch
    second = run_sweep(parse_spec(SPEC), SweepOptions(out=tmp_path, jobs=2))
    assert second.finished
    total = len(reference.rows)
    assert first.ran + second.ran == total  # nothing ran twice
    pd.testing.assert_frame_equal(_table(second), _table(reference))
    third = run_sweep(parse_spec(SPEC), SweepOptions(out=tmp_path, jobs=2))
    assert third.ran == 0


def test_a_stored_study_of_another_sweep_is_refused(tmp_path: Path) -> None:
    from cryptoj.research.sweep import SweepError

    small = {**SPEC, "trials": 1, "walk_forward": {"enabled": False}, "to": "2020-01-31"}
    run_sweep(parse_spec(small), SweepOptions(out=tmp_path, jobs=1))
    with pytest.raises(SweepError, match="different sweep"):
        run_sweep(parse_spec({**small, "seed": 4}), SweepOptions(out=tmp_path, jobs=1))


def test_a_killed_sweep_continues_from_its_study(reference: SweepOutcome, tmp_path: Path) -> None:
    """SIGKILL the command (and its workers) once trials are stored, rerun it: the same table
    as the uninterrupted sweep."""
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(SPEC, sort_keys=True))  # another order: the same sweep
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "cryptoj", "sweep", str(space), "--out", str(out), "--jobs", "2"]
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    db = out / "study.sqlite"
    try:
        for _ in range(1200):  # bounded: up to 120 s
            if proc.poll() is not None or _complete_trials(db) >= 2:
                break
            time.sleep(0.1)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    killed_early = proc.returncode == -signal.SIGKILL
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(out / "trials.csv").drop(columns=["wall_seconds"])
    expected = _table(reference)
    assert list(table.trial) == list(expected.trial)
    assert list(table.objective) == pytest.approx(list(expected.objective.astype(float)))
    assert killed_early  # the kill landed before the sweep finished


def _complete_trials(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=1) as con:
            row = con.execute("SELECT COUNT(*) FROM trials WHERE state = 'COMPLETE'").fetchone()
        return int(row[0])
    except sqlite3.Error:
        return 0


def test_outputs_table_best_config_and_report(reference: SweepOutcome, tmp_path: Path) -> None:
    csv = write_trials(reference, tmp_path)
    best = write_best(reference, tmp_path)
    index = write_report(reference, tmp_path)
    table = pd.read_csv(csv)
    assert len(table) == len(reference.rows)
    assert {"strategy.fast_period", "objective", "sharpe", "error", "phase"} <= set(table.columns)
    assert best is not None
    cfg = load_config(best)  # a ready, valid config
    last = reference.folds[-1]
    assert cfg.strategy.fast_period == last.params["strategy.fast_period"]
    assert cfg.risk.position_size_limit == pytest.approx(last.params["risk.position_size_limit"])
    assert cfg.feed.data == DATA and cfg.seed == 3
    page = index.read_text()
    assert "in-sample against out-of-sample" in page and "PBO" in page
    for png in ("heatmap.png", "scatter.png", "equity.png"):
        assert (tmp_path / png).stat().st_size > 1000
        assert png in page


def test_sweep_command_rejects_a_bad_file(tmp_path: Path) -> None:
    space = tmp_path / "bad.yaml"
    space.write_text("params:\n  strategy.nope: {low: 1, high: 2}\n")
    done = subprocess.run(
        [sys.executable, "-m", "cryptoj", "sweep", str(space), "--out", str(tmp_path / "o")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "params.strategy.nope: not a config field" in done.stderr
