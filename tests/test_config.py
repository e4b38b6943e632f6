"""Config loading, validation messages and the check-config command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cryptoj.config import Config, ConfigError, load_config, parse_config

ROOT = Path(__file__).resolve().parents[1]


def test_the_shipped_config_yaml_is_valid_and_equals_the_defaults() -> None:
    assert load_config(ROOT / "config.yaml") == Config()


def test_risk_defaults_are_the_seed_values_as_fractions() -> None:
    r = Config().risk
    assert (r.daily_loss_limit, r.position_size_limit, r.stop_loss) == (0.02, 0.10, 0.05)
    assert (r.correlation_weight, r.volatility_weight, r.min_position_size) == (0.30, 0.40, 0.02)


def test_the_drawdown_limit_must_lie_strictly_between_0_and_1() -> None:
    assert Config().risk.max_drawdown == 0.10
    for bad in (0, 1, 1.5, "ten"):
        with pytest.raises(ConfigError) as e:
            parse_config({"risk": {"max_drawdown": bad}})
        assert e.value.problems == [f"risk.max_drawdown: expected a number in (0, 1), got {bad!r}"]


def test_every_problem_is_reported_with_its_field_path() -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(
            {
                "risk": {"daily_loss_limit": "two", "stop_loss": 5, "colour": 1},
                "feed": {"speed": -1},
                "bogus": True,
            }
        )
    assert e.value.problems == [
        "bogus: unknown field (known: coinbase, execution, feed, flags, journal, "
        "live_trading_confirmed, logging, mode, ops, paper, portfolio, risk, seed, shutdown, "
        "strategies, strategy, supervision, trace)",
        "risk.colour: unknown field (known: caution_drawdown, correlation_grid_s, "
        "correlation_weight, daily_loss_limit, har_period_s, max_daily_turnover, max_drawdown, "
        "min_position_size, position_size_limit, stop_loss, "
        "volatility_halflife_bars, volatility_model, volatility_weight)",
        "risk.daily_loss_limit: expected a number in (0, 1], got 'two'",
        "risk.stop_loss: expected a number in (0, 1], got 5",
        "feed.speed: expected a number >= 0, got -1",
    ]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"mode": "yolo"}, "mode: expected one of 'live', 'paper', got 'yolo'"),
        (
            {"strategy": {"fast_period": 2.5}},
            "strategy.fast_period: expected a whole number > 0, got 2.5",
        ),
        ({"trace": {"enabled": "yes"}}, "trace.enabled: expected true or false, got 'yes'"),
        ({"feed": {"products": ["btc"]}}, "feed.products: expected a list of text matching"),
        ({"risk": "high"}, "risk: expected a mapping of fields, got 'high'"),
        (
            {"paper": {"starting_cash": None}},
            "paper.starting_cash: expected a number > 0, got nothing (null)",
        ),
        (
            {"strategy": {"fast_period": 50, "slow_period": 10}},
            "strategy.fast_period: expected less than",
        ),
        ({"mode": "live"}, "mode: 'live' also needs live_trading_confirmed: true"),
        (
            {"execution": {"max_depth_share": 0}},
            "execution.max_depth_share: expected a number in (0, 1], got 0",
        ),
        (
            {"execution": {"child_interval_s": 60, "max_duration_s": 30}},
            "execution.max_duration_s: expected at least execution.child_interval_s",
        ),
    ],
)
def test_bad_values_name_the_field_and_what_was_expected(raw: dict, expected: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(raw)
    assert any(p.startswith(expected) for p in e.value.problems), e.value.problems


def test_invalid_yaml_and_missing_files_are_config_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("risk: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="cannot read file"):
        load_config(tmp_path / "missing.yaml")


def _check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cryptoj", "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_check_config_exits_0_on_a_valid_file() -> None:
    done = _check(ROOT / "config.yaml")
    assert done.returncode == 0, done.stderr
    assert "OK" in done.stdout


def test_check_config_exits_2_naming_a_wrong_type_a_range_and_an_unknown_key(
    tmp_path: Path,
) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("risk:\n  daily_loss_limit: two\n  stop_loss: 7\n  colour: blue\n")
    done = _check(f)
    assert done.returncode == 2
    lines = done.stdout.splitlines()
    assert "risk.daily_loss_limit: expected a number in (0, 1], got 'two'" in lines
    assert "risk.stop_loss: expected a number in (0, 1], got 7" in lines
    assert any(line.startswith("risk.colour: unknown field") for line in lines)


def test_the_portfolio_section_is_validated_field_by_field() -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(
            {
                "portfolio": {
                    "weighting": "kelly",
                    "volatile_drift_multiplier": 0.5,
                    "leg_timeout_s": 300,
                }
            }
        )
    problems = e.value.problems
    assert any(p.startswith("portfolio.weighting: expected one of") for p in problems), problems
    assert any(p.startswith("portfolio.volatile_drift_multiplier") for p in problems), problems
    ok = parse_config(
        {
            "portfolio": {"rollback": "compensate", "leg_timeout_s": 300},
            "execution": {"max_duration_s": 120},
        }
    )
    assert ok.portfolio.rollback == "compensate"
    with pytest.raises(ConfigError, match=r"portfolio\.leg_timeout_s: expected more than"):
        parse_config({"portfolio": {"leg_timeout_s": 300}})


def test_the_latency_monitor_must_outlast_a_split_order() -> None:
    """A split parent may take execution.max_duration_s to close: a latency monitor shorter
    than that would fire on every split order."""
    with pytest.raises(ConfigError, match=r"shutdown\.monitor\.max_latency_s: expected more"):
        parse_config({"shutdown": {"monitor": {"max_latency_s": 30}}})
    for ok in (
        {"shutdown": {"monitor": {"max_latency_s": 30}}, "execution": {"split_enabled": False}},
        {"shutdown": {"monitor": {"max_latency_s": 700}}},
        {"shutdown": {"monitor": {"max_latency_s": 0}}},
    ):
        parse_config(ok)
