"""Concurrency tests over the real actors: many seeds, chosen schedules, and the ledger's algebra.

* Every seed of the deterministic scheduler (and every seed with injected crashes) must end a
  replay with exit code 0 and every invariant of :func:`cryptoj.summary.check_invariants`. The
  data is a 90-minute slice of the bundled, recorded ``coinbase-1m-2018-04`` set, with a fast
  strategy so trading starts within minutes. Orders beyond the visible depth are split into
  children (README "Order splitting"), and the crashes land in the middle of such splits too.
* Hypothesis chooses the interleaving itself (which ready mailbox is served next) in a scenario
  mixing rebalances, fills, rejections, risk updates and crash injections, and shrinks a failing
  schedule.
* A ``RuleBasedStateMachine`` drives the pure :class:`~cryptoj.portfolio.ledger.Ledger`.

A failing seed prints the command line that replays it. Standalone reproduction::

    python -m tests.test_interleavings --seed 7 --chaos 3
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from decimal import ROUND_DOWN, Decimal
from importlib import resources
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from cryptoj.actors.portfolio import PortfolioActor
from cryptoj.config import (
    Config,
    ExecutionConfig,
    RiskConfig,
    StrategyConfig,
    SupervisionConfig,
    load_config,
)
from cryptoj.contract import Actor, Context
from cryptoj.journal import Journal
from cryptoj.marketdata.loader import LONG_CSV_COLUMNS, get_dataset, load_events
from cryptoj.models.base import Message
from cryptoj.models.orders import Fill, OrderType, Side, SubmitOrder
from cryptoj.models.risk import RiskLevel, RiskParameters
from cryptoj.models.signals import TargetWeight
from cryptoj.portfolio.ledger import Holding, Ledger, Reservation
from cryptoj.replay import ReplayOptions, run_replay
from cryptoj.runtime.assemble import assemble
from cryptoj.runtime.common import CHAOS_PATHS, ChaosPlan, Registered
from cryptoj.runtime.deterministic import DeterministicRuntime
from cryptoj.summary import check_invariants
from cryptoj.supervision.tree import WORKERS

ROOT = Path(__file__).resolve().parents[1]
DATASET = "coinbase-1m-2018-04"
SLICE_MINUTES = 90
PRODUCTS = ("BTC-USD", "ETH-USD", "LTC-USD")

#: The replay configuration of the seed sweeps (and the YAML the reproduction command uses).
#: Orders beyond the depth are split into at most five children (one every 2 minutes): every
#: split path runs, at about the cost of the unsplit replay.
CFG = Config(
    strategy=StrategyConfig(fast_period=3, slow_period=8, entry_band=0.0005),
    risk=RiskConfig(volatility_halflife_bars=5),
    execution=ExecutionConfig(child_interval_s=120.0),
)
CFG_YAML = """\
strategy:
  fast_period: 3
  slow_period: 8
  entry_band: 0.0005
risk:
  volatility_halflife_bars: 5
execution:
  child_interval_s: 120
"""

PLAIN_SEEDS = 500
CHAOS_SEEDS = 200
CHAOS_PER_RUN = 3
BLOCK = 100


def write_slice(path: Path, minutes: int) -> Path:
    """The first ``minutes`` minutes of the bundled recorded set, rows unchanged, as a long CSV."""
    info = get_dataset(DATASET)
    raw = resources.files("cryptoj.marketdata").joinpath("bundled", info.file).read_bytes()
    header, *rows = gzip.decompress(raw).decode("utf-8").splitlines()
    assert header == ",".join(LONG_CSV_COLUMNS)
    first = min(int(r.split(",", 2)[1]) for r in rows)
    keep = [r for r in rows if int(r.split(",", 2)[1]) < first + minutes * 60_000]
    path.write_text("\n".join([header, *keep]) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def replay_inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(slice CSV, config YAML), kept by pytest after the run so a failing seed can be replayed."""
    d = tmp_path_factory.mktemp("interleavings")
    csv = write_slice(d / "slice.csv", SLICE_MINUTES)
    yaml = d / "config.yaml"
    yaml.write_text(CFG_YAML, encoding="utf-8")
    assert load_config(yaml) == CFG
    return csv, yaml


@pytest.fixture
def scratch(tmp_path: Path) -> Iterator[Path]:
    """A directory for the journals of many short runs: in RAM (/dev/shm) when there is one.

    Each replay opens, writes and checkpoints an SQLite WAL journal; on a busy disk that costs
    more than the replay itself. Durability is not under test here.
    """
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    d = Path(tempfile.mkdtemp(prefix="cryptoj-test-", dir=shm))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def repro(inputs: tuple[Path, Path], seed: int, chaos: int) -> str:
    csv, yaml = inputs
    out = Path(tempfile.gettempdir()) / "cryptoj-repro"
    return (
        f"seed {seed} (chaos {chaos}) — reproduce with:\n"
        f"    cd {ROOT} && {sys.executable} -m cryptoj replay --json --config {yaml} "
        f"--data {csv} --seed {seed} --chaos {chaos} "
        f"--journal {out}/journal.sqlite --trace {out}/trace.jsonl\n"
        f"    or: cd {ROOT} && {sys.executable} -m tests.test_interleavings "
        f"--seed {seed} --chaos {chaos}"
    )


def replay(
    csv: Path, journal: Path, seed: int, chaos: int, trace: Path | None = None
) -> tuple[dict[str, Any], int]:
    opts = ReplayOptions(
        data=str(csv),
        journal=str(journal),
        trace=str(trace) if trace else None,
        seed=seed,
        chaos=chaos,
    )
    return run_replay(CFG, opts)


def sweep(inputs: tuple[Path, Path], workdir: Path, seeds: range, chaos: int) -> Counter[str]:
    totals: Counter[str] = Counter()
    failures = []
    for seed in seeds:
        summary, code = replay(inputs[0], workdir / "journal.sqlite", seed, chaos)
        ok = code == 0 and summary["invariants_ok"] and summary["fills"] > 0
        if not ok:
            failures.append(
                f"{repro(inputs, seed, chaos)}\n    exit {code} ({summary['exit_reason']}), "
                f"fills {summary['fills']}, problems {summary['invariant_problems']}"
            )
        journal = Journal(workdir / "journal.sqlite")
        try:
            restored = len(journal.events("split_restored"))
        finally:
            journal.close()
        totals.update(
            runs=1,
            fills=summary["fills"],
            restarts=summary["restarts"],
            injected=summary["chaos_injected"],
            split_orders=summary["split_orders"],
            split_restored=restored,
        )
    assert not failures, f"{len(failures)} of {len(seeds)} seeds failed:\n" + "\n".join(failures)
    return totals


# -- (a) seed sweeps over the full system ----------------------------------------------------


@pytest.mark.parametrize("block", range(PLAIN_SEEDS // BLOCK))
def test_every_seed_ends_with_exit_0_and_invariants(
    replay_inputs: tuple[Path, Path], scratch: Path, block: int
) -> None:
    seeds = range(block * BLOCK, (block + 1) * BLOCK)
    totals = sweep(replay_inputs, scratch, seeds, chaos=0)
    assert totals["restarts"] == 0 and totals["injected"] == 0
    assert totals["split_orders"] > 0  # orders beyond the visible depth went out in children


@pytest.mark.parametrize("block", range(CHAOS_SEEDS // BLOCK))
def test_every_seed_with_injected_crashes_keeps_the_invariants(
    replay_inputs: tuple[Path, Path], scratch: Path, block: int
) -> None:
    seeds = range(block * BLOCK, (block + 1) * BLOCK)
    totals = sweep(replay_inputs, scratch, seeds, chaos=CHAOS_PER_RUN)
    assert totals["injected"] >= CHAOS_PER_RUN * BLOCK * 0.9  # the crashes really happened
    assert totals["restarts"] >= totals["injected"]
    assert totals["split_restored"] > 0  # crashes hit the ExecutionActor in mid-split too


def test_a_seed_replays_identically(replay_inputs: tuple[Path, Path], tmp_path: Path) -> None:
    runs = []
    for i in range(2):
        trace = tmp_path / f"trace{i}.jsonl"
        summary, _ = replay(replay_inputs[0], tmp_path / f"j{i}.sqlite", 11, 3, trace)
        drop = {"wall_seconds", "events_per_second", "journal", "trace", "trace_files"}
        runs.append(({k: v for k, v in summary.items() if k not in drop}, trace.read_bytes()))
    assert runs[0] == runs[1]


def test_market_events_are_never_delivered_before_their_timestamp(
    replay_inputs: tuple[Path, Path], tmp_path: Path
) -> None:
    """Also after the feed restarts: a replay must not run ahead of its own data.

    chaos=5 makes the fifth injected crash hit the feed right after it handled a poll (the
    ``after_receive`` path). The crashed instance's next poll timer is still pending when the
    restarted instance schedules its own poll, so two poll chains run from then on and every
    second batch is emitted one bar early.
    """
    failures = []
    for seed in range(3):
        trace = tmp_path / f"trace-{seed}.jsonl"
        summary, code = replay(replay_inputs[0], tmp_path / "j.sqlite", seed, 5, trace)
        assert code == 0 and summary["invariants_ok"], repro(replay_inputs, seed, 5)
        records = [json.loads(line) for line in trace.read_bytes().splitlines()]
        feed_crashes = [
            r
            for r in records
            if r["kind"] == "exit" and r["src"] == "feed" and "crash" in r["note"]
        ]
        assert feed_crashes, f"seed {seed}: the feed did not crash; the scenario is void"
        early = [
            r
            for r in records
            if r["kind"] == "deliver" and r["type"] in ("Bar", "Quote") and r["msg"]["ts"] > r["ts"]
        ]
        if early:
            first = early[0]
            failures.append(
                f"{repro(replay_inputs, seed, 5)}\n    {len(early)} market events delivered "
                f"before their timestamp; first: trace seq {first['seq']}, {first['type']} "
                f"stamped {first['msg']['ts']} delivered at {first['ts']}"
            )
    assert not failures, "\n".join(failures)


# -- (b) Hypothesis chooses the schedule -----------------------------------------------------

SCHED_MINUTES = 20
SCHED_CFG = Config(
    strategy=StrategyConfig(fast_period=3, slow_period=8, target_weight=0.3, entry_band=0.0005),
    risk=RiskConfig(volatility_halflife_bars=5, position_size_limit=0.5),
    supervision=SupervisionConfig(max_restarts=1000, feed_max_restarts=1000),
)


class DrawnSchedule:
    """Stands in for the runtime's scheduler RNG: Hypothesis draws which ready mailbox runs."""

    def __init__(self, data: st.DataObject) -> None:
        self.data = data
        self.draws = 0

    def randrange(self, n: int) -> int:
        self.draws += 1
        return self.data.draw(st.integers(0, n - 1))


class Inject(Message, frozen=True, kw_only=True):
    """Injector → itself: time to send entry ``index`` of its plan."""

    index: int


class Injector(Actor):
    """Sends planned messages (as a strategy, the risk actor or a rogue client would) on time."""

    kind = "injector"

    def __init__(self, plan: list[tuple[int, str, Message]]) -> None:
        self.plan = plan

    def on_start(self, ctx: Context) -> None:
        for i, (delay, _, _) in enumerate(self.plan):
            ctx.schedule(delay, Inject(ts=ctx.now(), index=i))

    def _handle_inject(self, msg: Inject, ctx: Context) -> None:
        _, to, m = self.plan[msg.index]
        ctx.send(to, m)


@pytest.fixture(scope="module")
def sched_batches(tmp_path_factory: pytest.TempPathFactory) -> list:
    csv = write_slice(tmp_path_factory.mktemp("sched") / "slice.csv", SCHED_MINUTES)
    return load_events(str(csv))


def _ops(span_ns: int) -> st.SearchStrategy[list[tuple[int, str, Message]]]:
    at = st.integers(0, span_ns)
    target = st.builds(
        lambda t, p, w: (
            t,
            "portfolio",
            TargetWeight(strategy_id="t", product=p, weight=w, reason="injected"),
        ),
        at,
        st.sampled_from(PRODUCTS),
        st.sampled_from([0.0, 0.1, 0.3, 0.5]),  # three products at 0.5: more than the cash
    )
    risk = st.builds(
        lambda t, level, cap, mult: (
            t,
            "portfolio",
            RiskParameters(
                version=10_000,
                level=level,
                max_weight=tuple((p, cap) for p in PRODUCTS),
                stop_loss=0.05,
                min_position_size=0.02,
                size_multiplier=mult,
                reason="injected",
            ),
        ),
        at,
        st.sampled_from(list(RiskLevel)),
        st.sampled_from([0.0, 0.2, 0.5]),
        st.sampled_from([0.5, 1.0]),
    )
    rogue = st.builds(
        lambda t, p: (
            t,
            "execution",
            SubmitOrder(
                client_order_id="",
                product=p,
                side=Side.BUY,
                order_type=OrderType.LIMIT,
                quantity=Decimal(1_000_000),
                limit_price=Decimal(1),  # holds 1,000,000 USD: more than the account has
                reason="more than the cash allows",
                split=False,  # whole, so the venue refuses it (split, each child would fit)
            ),
        ),
        at,
        st.sampled_from(PRODUCTS),
    )
    return st.lists(st.one_of(target, risk, rogue), min_size=1, max_size=8)


def _number_rogues(ops: list[tuple[int, str, Message]]) -> list[tuple[int, str, Message]]:
    out = []
    for i, (t, to, m) in enumerate(ops):
        if isinstance(m, SubmitOrder):
            m = msgspec.structs.replace(m, client_order_id=f"rogue-{i}")
        out.append((t, to, m))
    return out


def test_hypothesis_chosen_schedules_keep_the_invariants(
    sched_batches: list, scratch: Path
) -> None:
    first, last = sched_batches[0][0].ts, sched_batches[-1][0].ts
    span = last - first
    seen: Counter[str] = Counter()
    counter = iter(range(10**9))

    @settings(
        max_examples=50,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(
        ops=_ops(span),
        crashes=st.lists(
            st.tuples(st.sampled_from(WORKERS), st.sampled_from(CHAOS_PATHS), st.integers(0, span)),
            max_size=3,
        ),
        data=st.data(),
    )
    def run(ops: list, crashes: list, data: st.DataObject) -> None:
        journal_path = scratch / f"journal-{next(counter)}.sqlite"
        system = assemble(SCHED_CFG, sched_batches, str(journal_path), fresh_journal=True)
        plan = _number_rogues(ops)
        registry = dict(system.registry)
        registry["injector"] = Registered("injector", "main", lambda: Injector(plan))
        chaos = ChaosPlan()
        for actor, path, offset in crashes:
            chaos.points.setdefault(actor, []).append((first + offset, path))
        for pts in chaos.points.values():
            pts.sort()
        rt = DeterministicRuntime(seed=0, start_ns=system.start_ns, registry=registry, chaos=chaos)
        schedule = DrawnSchedule(data)
        rt._sched = schedule  # the only source of scheduling choices
        system.venue.set_listener(lambda event: rt.tell("execution", event, sender="venue"))
        rt.start_root("shutdown")
        rt.start_root("root")
        rt.start_root("injector")
        rt.run()
        portfolio = rt.actor("portfolio")
        assert portfolio is None or isinstance(portfolio, PortfolioActor)
        rt.stop_all()
        journal = Journal(journal_path)
        try:
            start = Decimal(journal.get_meta("starting_cash") or "0")
            problems = check_invariants(journal, system.venue, portfolio, start)
            orders = journal.orders()
            fills = journal.fills()
            splits = len(journal.events("split_plan"))
        finally:
            journal.close()
        assert rt.exit_code == 0, rt.exit_reason
        assert problems == [], problems
        seen.update(
            examples=1,
            draws=schedule.draws,
            fills=len(fills),
            rejections=sum(1 for o in orders if o["status"] == "REJECTED"),
            splits=splits,
            restarts=rt.stats.restarts,
            risk_updates=sum(1 for _, _, m in plan if isinstance(m, RiskParameters)),
            targets=sum(1 for _, _, m in plan if isinstance(m, TargetWeight)),
        )

    run()
    # The scenarios exercised what they are meant to.
    assert seen["examples"] >= 25, seen
    for key in ("draws", "fills", "rejections", "splits", "restarts", "risk_updates", "targets"):
        assert seen[key] > 0, (key, seen)


# -- (c) the ledger as a state machine -------------------------------------------------------

FEE = Decimal("0.006")
HEADROOM = Decimal("1.02")  # a buy reserves price × quantity × HEADROOM × (1 + FEE)
Q8 = Decimal("0.00000001")
START_CASH = Decimal(20_000)

quantities = st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal(40), places=8)
prices = st.decimals(min_value=Decimal("0.01"), max_value=Decimal(10_000), places=2)


class LedgerMachine(RuleBasedStateMachine):
    """Reserve, fill partially (better or worse than reserved, within the reservation), release.

    A model tracks cash, positions and each order's filled quantity independently.
    """

    def __init__(self) -> None:
        super().__init__()
        self.ledger = Ledger(START_CASH)
        self.cash = START_CASH
        self.positions: dict[str, Decimal] = {p: Decimal(0) for p in PRODUCTS}
        self.orders: dict[str, dict[str, Any]] = {}
        self.n = 0

    @staticmethod
    def _order(side: Side, product: str, qty: Decimal, price: Decimal) -> dict[str, Any]:
        return {"side": side, "product": product, "qty": qty, "price": price, "filled": Decimal(0)}

    def _coid(self) -> str:
        self.n += 1
        return f"o{self.n}"

    @rule(product=st.sampled_from(PRODUCTS), qty=quantities, price=prices)
    def reserve_buy(self, product: str, qty: Decimal, price: Decimal) -> None:
        cash = qty * price * HEADROOM * (1 + FEE)
        available = self.ledger.available_cash()
        coid = self._coid()
        res = self.ledger.reserve(coid, product, Side.BUY, qty, cash)
        if cash > available:
            assert isinstance(res, str) and "insufficient cash" in res
            assert coid not in self.ledger.reservations
        else:
            assert isinstance(res, Reservation)
            self.orders[coid] = self._order(Side.BUY, product, qty, price)

    @rule(product=st.sampled_from(PRODUCTS), fraction=st.sampled_from(["0.25", "0.5", "1", "1.5"]))
    def reserve_sell(self, product: str, fraction: str) -> None:
        available = self.ledger.available(product)
        qty = (available * Decimal(fraction)).quantize(Q8, rounding=ROUND_DOWN)
        coid = self._coid()
        price = Decimal(100)
        res = self.ledger.reserve(coid, product, Side.SELL, qty, Decimal(0))
        if qty <= 0:
            assert isinstance(res, str)
        elif qty > available:
            assert isinstance(res, str) and "insufficient" in res
        else:
            assert isinstance(res, Reservation)
            self.orders[coid] = self._order(Side.SELL, product, qty, price)

    @precondition(lambda self: bool(self.orders))
    @rule(
        data=st.data(),
        share=st.decimals(min_value=Decimal("0.01"), max_value=Decimal(1), places=2),
        # < 1: price improvement; up to HEADROOM: worse than the reference, still covered
        move=st.decimals(min_value=Decimal("0.90"), max_value=HEADROOM, places=4),
    )
    def fill(self, data: st.DataObject, share: Decimal, move: Decimal) -> None:
        coid = data.draw(st.sampled_from(sorted(self.orders)))
        o = self.orders[coid]
        remaining = o["qty"] - o["filled"]
        qty = (remaining * share).quantize(Q8, rounding=ROUND_DOWN)
        if qty <= 0:
            return
        price = (o["price"] * move).quantize(Q8, rounding=ROUND_DOWN)
        if price <= 0:
            return
        notional = (qty * price).quantize(Q8, rounding=ROUND_DOWN)
        fee = (notional * FEE).quantize(Q8, rounding=ROUND_DOWN)
        f = Fill(
            fill_id=f"f-{coid}-{o['filled']}",
            client_order_id=coid,
            product=o["product"],
            side=o["side"],
            quantity=qty,
            price=price,
            fee=fee,
            liquidity="TAKER",
        )
        self.ledger.apply_fill(f)
        o["filled"] += qty
        if o["side"] == Side.BUY:
            self.cash -= notional + fee
            self.positions[o["product"]] += qty
        else:
            self.cash += notional - fee
            self.positions[o["product"]] -= qty

    @precondition(lambda self: bool(self.orders))
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        coid = data.draw(st.sampled_from(sorted(self.orders)))
        assert self.ledger.release(coid) is not None
        del self.orders[coid]
        assert self.ledger.release(coid) is None  # idempotent

    @invariant()
    def books_match_the_model(self) -> None:
        assert self.ledger.cash == self.cash
        for p in PRODUCTS:
            assert self.ledger.position(p) == self.positions[p]
        assert set(self.ledger.reservations) == set(self.orders)

    @invariant()
    def no_negative_cash_or_positions(self) -> None:
        assert self.ledger.cash >= 0
        assert self.ledger.available_cash() >= 0, self.ledger.available_cash()
        for p in PRODUCTS:
            assert self.ledger.position(p) >= 0
            # Not exactly >= 0: held amounts are rounded to 28 digits (see the test below).
            assert self.ledger.available(p) >= Decimal("-1e-20"), (p, self.ledger.available(p))

    @invariant()
    def reserved_cash_is_the_sum_of_what_orders_still_hold(self) -> None:
        held = sum((r.held_cash for r in self.ledger.reservations.values()), Decimal(0))
        # cash − available is rounded to 28 digits around the size of the cash: compare closely
        assert abs(self.ledger.cash - self.ledger.available_cash() - held) <= Decimal("1e-18")
        expected = Decimal(0)
        for coid, o in self.orders.items():
            if o["side"] == Side.BUY:
                reserved = self.ledger.reservations[coid].cash
                expected += reserved * (o["qty"] - o["filled"]) / o["qty"]
        assert abs(held - expected) <= Decimal("1e-12"), (held, expected)


LedgerMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=30, deadline=None, database=None
)
test_ledger_state_machine = LedgerMachine.TestCase


@pytest.mark.parametrize("side", [Side.SELL, Side.BUY])
def test_a_partly_filled_reservation_holds_exactly_what_remains(side: Side) -> None:
    """Reserve everything, fill 5 of 14: what is still held must be exactly 9, not 9 + 1e-27.

    ``Reservation.held_cash`` / ``held_base`` multiply by ``(quantity − filled) / quantity``,
    rounded to 28 digits, so a reservation of the whole position (or all the cash) can hold a
    hair more than there is and ``problems()`` reports a broken invariant.
    """
    if side == Side.SELL:
        ledger = Ledger(Decimal(0), {"BTC-USD": Holding(Decimal(14), Decimal(7000))})
        res = ledger.reserve("o1", "BTC-USD", Side.SELL, Decimal(14), Decimal(0))
    else:
        ledger = Ledger(Decimal(14))
        res = ledger.reserve("o1", "BTC-USD", Side.BUY, Decimal(14), Decimal(14))
    assert isinstance(res, Reservation)
    ledger.apply_fill(
        Fill(
            fill_id="f1",
            client_order_id="o1",
            product="BTC-USD",
            side=side,
            quantity=Decimal(5),
            price=Decimal(1),
            fee=Decimal(0),
            liquidity="TAKER",
        )
    )
    held = res.held_base if side == Side.SELL else res.held_cash
    assert held == Decimal(9)
    assert ledger.available("BTC-USD") >= 0
    assert ledger.available_cash() >= 0
    assert ledger.problems() == []


def test_a_fill_beyond_its_reservation_shows_up_as_a_problem() -> None:
    """The converse of the machine's guarantee: overspending a reservation is detected."""
    ledger = Ledger(Decimal(1000))
    res = ledger.reserve("o1", "BTC-USD", Side.BUY, Decimal(1), Decimal(1000))
    assert isinstance(res, Reservation)
    ledger.apply_fill(
        Fill(
            fill_id="f1",
            client_order_id="o1",
            product="BTC-USD",
            side=Side.BUY,
            quantity=Decimal("0.5"),
            price=Decimal(1500),  # costs 750, the reservation held 500 for this half
            fee=Decimal(0),
            liquidity="TAKER",
        )
    )
    assert ledger.available_cash() == Decimal(-250)
    assert any("reservations exceed cash" in p for p in ledger.problems())


# -- standalone reproduction -----------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Replay one seed of the sweeps and print its summary (``-m tests.test_interleavings``)."""
    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--chaos", type=int, default=0)
    p.add_argument("--keep", action="store_true", help="keep the slice, journal and trace")
    args = p.parse_args(argv)
    d = Path(tempfile.mkdtemp(prefix="cryptoj-repro-"))
    try:
        csv = write_slice(d / "slice.csv", SLICE_MINUTES)
        summary, code = replay(csv, d / "journal.sqlite", args.seed, args.chaos, d / "trace.jsonl")
        print(json.dumps(summary, sort_keys=True, indent=1))
        if args.keep:
            print(f"files kept in {d}")
        return 0 if code == 0 and summary["invariants_ok"] else 1
    finally:
        if not args.keep:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
