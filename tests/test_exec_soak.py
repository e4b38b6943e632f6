"""The execution soak end to end, small: the real daemon process against the local fake.

Twelve intents with random REST faults, one operator restart of an actor and one SIGKILL of
the whole daemon (then a fresh start that recovers from the journal and the venue). The full
run (``python tools/exec_soak.py --orders 200 --fault-rate 0.2 --seed 3 --kill9 3``) is in
BENCHMARKS.md / the README.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import exec_soak  # noqa: E402


def test_no_order_is_lost_or_duplicated_through_faults_restarts_and_a_kill9(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--orders", "12", "--fault-rate", "0.3", "--seed", "5", "--kill9", "1"]
    argv += ["--restarts", "1", "--keep", str(tmp_path), "--json"]
    code = exec_soak.main(argv)
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    checks = {
        "exit code 0": code == 0,
        "orders_intended >= 12": out["orders_intended"] >= 12,
        "one kill, exit -9": out["kills"] == 1 and out["exit_codes"][:1] == [-9],
        "one actor restart": out["actor_restarts"] == 1,
        "no duplicates at the venue": out["duplicates_at_venue"] == 0,
        "no lost fills": out["lost_fills"] == 0,
        "no overbooked fills": out["overbooked_fills"] == 0,
        # a fill booked from an order's cumulative report may cover several venue fills
        # (polled after two fills): the quantities are checked per order above
        "0 < journal fills <= venue fills": 0 < out["journal_fills"] <= out["venue_fills"],
        "positions match": out["positions_match"] is True,
        "no open intents": out["open_intents"] == 0,
        "no open orders": out["open_orders"] == 0,
        "final exit code 0": out["final_exit_code"] == 0,
        "faults injected": sum(out["faults_injected"].values()) > 0,
        "venue.json kept": (tmp_path / "venue.json").exists(),
    }
    failed = [name for name, ok in checks.items() if not ok]
    if failed:  # every field of the audit, and how to run exactly this soak again
        pytest.fail(
            f"failed: {', '.join(failed)}\n"
            f"reproduce: {exec_soak.reproduce_command(argv)}\n"
            f"daemon log and journal: {tmp_path}\n" + json.dumps(out, indent=1, sort_keys=True),
            pytrace=False,
        )


def test_a_life_longer_than_the_liveness_target_without_any_order_counts_as_a_miss(
    tmp_path: Path,
) -> None:
    """``first_orders`` judges every start: a life of 7 s that saw no order is a start not
    within 5 s (it used to be left out of the count), a life killed after 2 s without an order
    cannot be judged, and the last start without an order is not counted either."""
    from datetime import UTC, datetime

    from cryptoj.journal import Journal

    journal = tmp_path / "journal.sqlite"
    Journal(journal).close()
    s = 10**9
    t0 = 1_800_000_000 * s
    starts = [t0, t0 + 3 * s, t0 + 10 * s, t0 + 12 * s, t0 + 20 * s]

    def order(at_ns: int) -> dict[str, str]:
        stamp = datetime.fromtimestamp(at_ns / s, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return {"created_time": stamp}

    # start 0: order after 1 s; start 1: 7 s, none; start 2: 2 s, none; start 3: order after 6 s
    orders = [order(t0 + 1 * s), order(t0 + 18 * s)]
    out = exec_soak.first_orders(starts, starts, orders, journal)
    assert out["start_to_first_order_s"] == [1.0, 6.0]
    assert out["starts_within_5s"] == "1 of 3"
    assert (out["starts_without_order"], out["starts_cut_short"]) == (1, 1)
    assert [slow["start"] for slow in out["slow_starts"]] == [1, 3]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--orders", "12", "--kill9", "20"], "--kill9 must be between 0 and 11 with --orders 12"),
        (["--orders", "10", "--kill9", "1"], "--kill9 must be between 0 and 0 with --orders 10"),
        (["--orders", "0"], "--orders must be at least 1"),
    ],
)
def test_a_run_that_cannot_make_its_kills_is_refused_with_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        exec_soak.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
