"""The NautilusTrader side of the replay benchmark (``tools/nautilus_baseline.py``).

Runs only where the separate benchmark virtualenv exists (``bash tools/setup_nautilus_venv.sh``
creates ``.venv-nautilus``); nautilus is never a cryptoj dependency, so elsewhere it is skipped.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
VENV_PYTHON = ROOT / ".venv-nautilus" / "bin" / "python"
SCRIPT = ROOT / "tools" / "nautilus_baseline.py"
DATA = ROOT / "benchmarks" / "data" / "binance_BTCUSDT_trades_20240808T2354_20240809T0005.csv.gz"

pytestmark = pytest.mark.skipif(
    not VENV_PYTHON.exists(),
    reason=f"no nautilus benchmark venv at {VENV_PYTHON} (bash tools/setup_nautilus_venv.sh)",
)


def _baseline(*args: str) -> dict[str, Any]:
    """The JSON the nautilus side prints for ``args``."""
    proc = subprocess.run(
        [str(VENV_PYTHON), str(SCRIPT), *args, "--repeat", "1", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def test_nautilus_baseline_replays_all_ticks_and_trades() -> None:
    result = _baseline("--data", str(DATA))
    assert result["ticks"] == 19904
    assert result["orders"] > 0
    assert result["fills"] >= result["orders"]
    assert result["nautilus_version"] == "1.221.0"
    (run,) = result["runs"]
    assert run["orders_denied"] == 0
    assert run["orders_rejected"] == 0
    assert run["bars"] == 199
    assert result["ticks_per_second_median"] == run["ticks_per_second"] > 0


def test_nautilus_baseline_replays_the_bundled_minute_bars() -> None:
    result = _baseline("--bars")
    assert result["bars"] == 2447  # the BTC-USD trade bars of coinbase-1m-2018-04
    (run,) = result["runs"]
    assert run["bars"] == 2447  # every bar reached the strategy's bar type
    assert run["orders"] > 0 and run["fills"] >= run["orders"]
    assert run["orders_denied"] == 0 and run["orders_rejected"] == 0
    assert result["bars_per_second_median"] == run["bars_per_second"] > 0
