"""Seeded interleavings of multi-leg rebalance transactions with chaos, over the real actors.

Every seed runs the whole system on a 90-minute slice of the bundled recorded data with a fast
strategy, under the deterministic runtime (the seed chooses the schedule and the crash points),
against a paper venue that rejects a seeded share of orders. Legs beyond the visible depth go
as resting LIMIT orders with a short leg timeout, so transactions time out, are superseded by
newer risk versions while their buys wait, roll back after rejections and crashes, and (every
other seed) compensate. Each run must end with exit code 0 and every invariant of
:func:`cryptoj.summary.check_invariants` (no negative cash, no position decided above its limit,
reservations balanced, the journal equal to the venue, and the transaction journal consistent
with nothing left open); across the seeds each of those paths must really have happened.

A failing seed prints how to rerun it: ``pytest tests/test_rebalance_chaos.py -k 'seed_N'``.
"""

from __future__ import annotations

import random
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest

from cryptoj.actors.feed import ReplaySource
from cryptoj.actors.portfolio import PortfolioActor
from cryptoj.actors.shutdown import ShutdownActor
from cryptoj.config import Config, parse_config
from cryptoj.journal import Journal
from cryptoj.marketdata.loader import load_events
from cryptoj.models.orders import OrderAccepted, OrderRejected, SubmitOrder
from cryptoj.runtime.common import ChaosPlan, Registered, flatten_tree
from cryptoj.runtime.deterministic import DeterministicRuntime
from cryptoj.summary import check_invariants
from cryptoj.supervision.tree import WORKERS, Dependencies, build_tree
from cryptoj.venues.paper import PaperExchange
from tests.test_interleavings import write_slice

SEEDS = 24
REJECT_RATE = 0.12


def _cfg(rollback: str) -> Config:
    return parse_config(
        {
            "strategy": {
                "fast_period": 3,
                "slow_period": 8,
                "target_weight": 0.3,
                "entry_band": 0.0005,
            },
            # trades on every cross, without a turnover budget: the transaction paths are the
            # subject here, not the costs (tests/test_costs.py)
            "risk": {
                "volatility_halflife_bars": 5,
                "position_size_limit": 0.4,
                "max_daily_turnover": 100,
            },
            "portfolio": {
                "limit_bps": 5.0,
                "max_depth_multiple": 3.0,
                "leg_timeout_s": 90.0,
                "rollback": rollback,
                "cash_buffer": 0.1,
            },
            "supervision": {"max_restarts": 1000, "feed_max_restarts": 1000},
            "execution": {"max_duration_s": 60.0},  # leg timeouts must outlast a split
        }
    )


class FlakyPaper(PaperExchange):
    """A paper venue that rejects a seeded share of new orders (as a real venue may)."""

    def __init__(self, seed: int, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.rng = random.Random(f"flaky:{seed}")
        self.injected_rejections = 0

    def submit(self, order: SubmitOrder, ts: int) -> OrderAccepted | OrderRejected:
        if self.get_order(order.client_order_id) is None and self.rng.random() < REJECT_RATE:
            self.injected_rejections += 1
            return OrderRejected(
                ts=ts,
                client_order_id=order.client_order_id,
                product=order.product,
                reason="injected rejection",
            )
        return super().submit(order, ts)


@pytest.fixture(scope="module")
def batches(tmp_path_factory: pytest.TempPathFactory) -> list:
    return load_events(str(write_slice(tmp_path_factory.mktemp("chaos") / "slice.csv", 90)))


def _run(seed: int, batches: list, journal_path: Path) -> Counter[str]:
    cfg = _cfg("compensate" if seed % 2 else "keep")
    journal = Journal(journal_path)
    journal.set_meta("starting_cash", "100000")
    journal.close()
    venue = FlakyPaper(
        seed,
        starting_cash=Decimal(100_000),
        taker_fee=Decimal("0.006"),
        maker_fee=Decimal("0.004"),
        id_prefix=f"paper-{seed}",
    )
    source = ReplaySource(batches, bar_spread_bps=10.0, bar_depth_fraction=0.05)
    registry = flatten_tree(
        build_tree(cfg, Dependencies(venue, source, str(journal_path))), parent="shutdown"
    )
    registry["shutdown"] = Registered(
        "shutdown", "main", lambda: ShutdownActor(venue, str(journal_path), cfg=cfg)
    )
    start, end = source.first_ts, source.last_ts
    chaos = ChaosPlan.seeded(seed, 4, list(WORKERS), start, end)
    rt = DeterministicRuntime(seed=seed, start_ns=start, registry=registry, chaos=chaos)
    venue.set_listener(lambda event: rt.tell("execution", event, sender="venue"))
    rt.start_root("shutdown")
    rt.start_root("root")
    rt.run()
    portfolio = rt.actor("portfolio")
    assert portfolio is None or isinstance(portfolio, PortfolioActor)
    rt.stop_all()
    journal = Journal(journal_path)
    try:
        problems = check_invariants(journal, venue, portfolio, Decimal(100_000))
        txns = journal.txns()
        steps = journal.txn_steps()
        legs = journal.txn_legs()
    finally:
        journal.close()
    hint = f"seed {seed}: rerun with pytest tests/test_rebalance_chaos.py -k 'seed_{seed}'"
    assert rt.exit_code == 0, f"{hint}: {rt.exit_reason}"
    assert problems == [], f"{hint}: {problems}"
    seen: Counter[str] = Counter(str(t["state"]) for t in txns)
    per_txn = Counter(str(g["txn_id"]) for g in legs)
    seen["multi_leg"] = sum(1 for n in per_txn.values() if n > 1)
    seen["compensation"] = sum(1 for t in txns if t["kind"] == "compensation")
    seen["timed_out"] = sum(1 for g in legs if g["timed_out"])
    seen["recovered"] = sum(1 for s in steps if s["step"] == "recovered")
    seen["rejected_legs"] = sum(1 for g in legs if str(g["outcome"]).startswith("REJECTED"))
    seen["injected_rejections"] = venue.injected_rejections
    seen["crashes"] = chaos.injected
    return seen


@pytest.mark.parametrize("seed", [pytest.param(s, id=f"seed_{s}") for s in range(SEEDS)])
def test_a_seeded_run_with_rejections_timeouts_and_crashes_keeps_the_invariants(
    seed: int, batches: list, tmp_path: Path
) -> None:
    seen = _run(seed, batches, tmp_path / "journal.sqlite")
    _TOTALS.update(seen)
    assert seen["COMMITTED"] > 0  # it traded


_TOTALS: Counter[str] = Counter()


def test_the_seeds_exercised_every_path() -> None:
    """Runs after the seeds (same module, in file order): each path happened somewhere."""
    if sum(_TOTALS.values()) == 0:
        pytest.skip("run together with the seeded runs above")
    for key in (
        "ROLLED_BACK",
        "SUPERSEDED",
        "multi_leg",
        "compensation",
        "timed_out",
        "recovered",
        "rejected_legs",
        "crashes",
    ):
        assert _TOTALS[key] > 0, (key, dict(_TOTALS))
