"""The correlation's scalar and array paths give the same bits (cryptoj.risk.correlation)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from cryptoj.risk import correlation
from cryptoj.risk.correlation import EwmaCorrelation, round_like_python


def _run(monkeypatch: pytest.MonkeyPatch, small: int, n: int) -> list[object]:
    """Feed the same seeded returns (gaps, NaN, flat prices) with the switch at ``small``;
    everything the RiskActor reads after each update."""
    monkeypatch.setattr(correlation, "SMALL", small)
    rng = random.Random(n)
    names = [f"P{i:02d}" for i in range(n)]
    corr = EwmaCorrelation(halflife=5, min_periods=3)
    seen: list[object] = []
    for t in range(120):
        chosen = rng.sample(names, rng.randint(1, n))
        common = rng.gauss(0, 0.01)
        rets = {p: 0.6 * common + rng.gauss(0, 0.01) for p in chosen}
        if t % 17 == 0:
            rets[chosen[0]] = float("nan")
        if t % 23 == 0:
            rets[chosen[-1]] = 0.0
        corr.update(rets)
        order = sorted(names)
        seen.append(
            (
                corr.average_pairwise(),
                [corr.of(p) for p in names],
                corr.pairs(order),
                corr.pairs(["unknown", *order[:3]]),
            )
        )
    seen.append(corr.matrix().tolist())
    return seen


@pytest.mark.parametrize("n", [2, 5, 12])
def test_scalar_and_array_paths_agree_bit_for_bit(monkeypatch: pytest.MonkeyPatch, n: int) -> None:
    scalar = _run(monkeypatch, 10**9, n)
    assert _run(monkeypatch, 0, n) == scalar
    assert _run(monkeypatch, 4, n) == scalar  # switching between paths as the sets vary


def test_round_like_python_matches_round() -> None:
    rng = np.random.default_rng(1)
    halves = (np.arange(-20_000, 20_000) + 0.5) / 1e6  # the nearest doubles to ties
    values = np.concatenate([rng.uniform(-1, 1, 50_000), halves, [0.0, -0.0, 1.0, -1.0]])
    got = round_like_python(values.reshape(1, -1), 6)[0]
    want = np.array([round(float(v), 6) for v in values])
    assert np.array_equal(got, want)
    assert np.array_equal(np.signbit(got), np.signbit(want))
