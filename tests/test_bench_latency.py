"""The live-path latency benchmark (``tools/bench_latency.py``) measures what it says it does.

Not a timing test (nothing here depends on how fast the machine is): a short run in a child
process must print every documented figure, match orders to the ticks that caused them (so it
has samples at all), and pace the floor exactly.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEYS = {"p50_us", "p99_us", "max_us", "floor_p99_us", "ratio_p99", "samples", "cpu_us_per_tick"}


def _run(*args: str) -> dict[str, object]:
    return _bench("--rate", "400", "--seconds", "1.5", "--slices", "1", *args)


def _bench(*args: str) -> dict[str, object]:
    """``tools/bench_latency.py ARGS --json`` in a child process; its JSON line."""
    proc = subprocess.run(
        [sys.executable, "tools/bench_latency.py", *args, "--json"],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def test_orders_are_matched_to_the_ticks_that_caused_them() -> None:
    out = _run()
    assert out.keys() >= KEYS
    assert out["floor_samples"] == 600  # 400 ticks/s for 1.5 s, one sample each
    samples = out["samples"]
    assert isinstance(samples, int) and samples > 0  # orders traced back to their ticks
    assert isinstance(out["p50_us"], float) and out["p50_us"] > 0


def test_an_unknown_measure_is_refused() -> None:
    proc = subprocess.run(
        [sys.executable, "tools/bench_latency.py", "--without", "nonsense"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 2 and "unknown nonsense" in proc.stderr


def test_burst_mode_prints_each_phase_and_loses_no_traded_volume() -> None:
    out = _bench("--burst", "--rate", "200", "--phase-seconds", "1", "--burst-seconds", "1")
    for phase in ("pre", "burst", "post"):
        assert {f"{phase}_p50_us", f"{phase}_p99_us", f"{phase}_samples"} <= out.keys()
    assert out["burst_rate"] == 1000 and out["pre_samples"] != 0
    assert {"burst_p99_ratio", "recovery_s", "max_mailbox", "merged_trades"} <= out.keys()
    assert out["dropped_non_quote"] == 0
    assert out["trade_volume_handled"] == out["trade_volume_pushed"]  # merged, never lost
