"""The optimiser's one- and two-product path gives the bits of its array code."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from cryptoj.portfolio import optimizer


@pytest.mark.parametrize("method", ["risk_parity", "inverse_vol", "signal"])
def test_small_path_matches_the_array_code_bit_for_bit(method: str) -> None:
    rng = random.Random(11)
    checked = 0
    for _ in range(3000):
        active = ["A", "B"][: rng.choice([1, 2])]
        budget = {p: rng.uniform(1e-6, 1.0) for p in active}
        vols = {p: rng.uniform(1e-4, 0.2) for p in active if rng.random() < 0.95}
        if not vols:
            vols = {"A": 0.01}
        r = rng.choice([rng.uniform(-1, 1), 1.0, -1.0, 1 - 2e-6, float("nan")])
        corr = {("A", "B"): r}
        small = optimizer._proportions_small(active, budget, vols, corr, method)
        if small is None:
            continue  # a correlation to repair: the array code decides
        assert small == optimizer._proportions_array(active, budget, vols, corr, method)
        checked += 1
    assert checked > 2000


def test_mean_of_a_short_diagonal_is_numpys() -> None:
    """The sweeps scale the covariance by the mean of its diagonal on plain floats below eight
    products (numpy adds fewer than eight numbers one after the other, then divides)."""
    rng = np.random.default_rng(5)
    for _ in range(2000):
        n = int(rng.integers(1, 8))
        diag = (rng.uniform(1e-8, 1.0, n) * 10.0 ** rng.integers(-6, 3, n)).tolist()
        cov = np.diag(diag)
        assert sum(diag[i] for i in range(n)) / n == float(np.mean(np.diag(cov)))


def test_unrolled_two_product_sweeps_match_the_loop() -> None:
    """``_sweeps_two`` against the general coordinate-descent loop written out here."""
    rng = np.random.default_rng(9)
    for _ in range(2000):
        a = rng.normal(size=(2, 2))
        cov = (a @ a.T + 0.1 * np.eye(2)).tolist()
        b = rng.uniform(0.05, 1.0, 2).tolist()
        x = [b[i] / math.sqrt(cov[i][i]) for i in range(2)]
        x = [v / sum(x) for v in x]
        want = list(x)
        for _ in range(1000):
            moved = 0.0
            for i in range(2):
                rest = sum(cov[i][j] * want[j] for j in range(2) if j != i)
                d = cov[i][i]
                new = (-rest + math.sqrt(rest * rest + 4.0 * d * b[i])) / (2.0 * d)
                moved = max(moved, abs(new - want[i]))
                want[i] = new
            if moved < 1e-11 * sum(want):
                break
        assert optimizer._sweeps_two(cov, b, x) == want
