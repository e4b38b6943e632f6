"""The same sweep on a small local Ray cluster gives the same trials as on the process pool."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from cryptoj.research.space import parse_spec
from cryptoj.research.sweep import SweepOptions, run_sweep

ray = pytest.importorskip("ray", reason="ray is not installed (pip install -e '.[research]')")

SPEC = {
    "data": "coinbase-4h-2016-2025",
    "from": "2020-01-01",
    "to": "2020-03-31",
    "trials": 4,
    "batch": 2,
    "seed": 5,
    "cscv_blocks": 4,
    "walk_forward": {"train_days": 45, "test_days": 20},
    "params": {
        "strategy.fast_period": {"low": 4, "high": 24, "step": 2},
        "strategy.slow_period": {"low": 30, "high": 96, "step": 6},
    },
}


def test_ray_and_pool_give_the_same_trials(tmp_path: Path) -> None:
    spec = parse_spec(SPEC)
    pool = run_sweep(spec, SweepOptions(out=tmp_path / "pool", jobs=2))
    on_ray = run_sweep(spec, SweepOptions(out=tmp_path / "ray", jobs=2, ray="local"))
    assert not ray.is_initialized()  # the backend stopped the cluster it started
    a = pd.DataFrame(pool.rows).drop(columns=["wall_seconds"])
    b = pd.DataFrame(on_ray.rows).drop(columns=["wall_seconds"])
    assert len(a) == 2 * 4 + 2 and (a.state == "COMPLETE").all()
    pd.testing.assert_frame_equal(a, b)
