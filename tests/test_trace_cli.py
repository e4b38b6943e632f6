"""Tests of the trace CLI (``cryptoj trace …``) over traces of real replays."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from cryptoj.config import Config
from cryptoj.models.system import Tick
from cryptoj.replay import ReplayOptions, run_replay
from cryptoj.trace.cli import main
from cryptoj.trace.recorder import TraceWriter
from cryptoj.trace.records import parse_time
from cryptoj.trace.tail import TailReader

REPO = Path(__file__).resolve().parents[1]
DATA = "coinbase-1m-2018-04"


def replay(directory: Path, name: str, seed: int = 7, chaos: int = 0) -> Path:
    """Run a deterministic replay writing ``directory/name``; return the trace path.

    The journal must not be called ``name.<anything>``: a fresh TraceWriter deletes every
    ``name.*`` file as an old rotation."""
    trace = directory / name
    opts = ReplayOptions(
        data=DATA,
        journal=str(directory / f"{Path(name).stem}-journal.sqlite"),  # not name.*: see below
        trace=str(trace),
        seed=seed,
        chaos=chaos,
    )
    run_replay(Config(), opts)
    return trace


@pytest.fixture(scope="module")
def traces(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Traces made once per module, lazily: ``seed7``, ``seed7_again``, ``seed8``, ``chaos``."""
    directory = tmp_path_factory.mktemp("traces")
    settings = {"seed7": (7, 0), "seed7_again": (7, 0), "seed8": (8, 0), "chaos": (7, 5)}

    class Lazy(dict[str, Path]):
        def __missing__(self, key: str) -> Path:
            seed, chaos = settings[key]
            self[key] = replay(directory, f"{key}.jsonl", seed=seed, chaos=chaos)
            return self[key]

    return Lazy()


@pytest.fixture(scope="module")
def records(traces: dict[str, Path]) -> list[dict[str, Any]]:
    """The seed-7 trace, parsed."""
    return [json.loads(line) for line in traces["seed7"].read_text().splitlines()]


def run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    """``cryptoj trace argv…`` in process: (exit code, stdout, stderr)."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every stdout line parsed as JSON."""
    return [json.loads(line) for line in text.splitlines() if line]


def first_order(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The first SubmitOrder delivered to execution."""
    return next(r for r in records if r["type"] == "SubmitOrder" and r["kind"] == "deliver")


def first_whole_order(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The first SubmitOrder delivered to execution and sent whole: no child order of it
    (``{id}-c{n}``, README "Order splitting") shows up in the venue's events."""
    split = set()
    for r in records:
        parent, _, n = str(r["msg"].get("client_order_id", "")).rpartition("-c")
        if r["src"] == "venue" and n.isdigit():
            split.add(parent)
    return next(
        r
        for r in records
        if r["type"] == "SubmitOrder"
        and r["kind"] == "deliver"
        and r["msg"]["client_order_id"] not in split
    )


# --- show -------------------------------------------------------------------------------------

FILTERS = {
    "actor": (["--actor", "execution"], lambda r: "execution" in (r["src"], r["dst"])),
    "type": (["--type", "Fill,OrderClosed"], lambda r: r["type"] in ("Fill", "OrderClosed")),
    "product": (
        ["--product", "eth-usd"],
        lambda r: (
            "ETH-USD"
            in (r["msg"].get("product"), *(q["product"] for q in r["msg"].get("quotes") or ()))
        ),
    ),
    "time": (
        ["--since", "2018-04-04T00:48", "--until", "2018-04-04T00:49:00Z"],
        lambda r: parse_time("2018-04-04T00:48") <= r["ts"] <= parse_time("2018-04-04T00:49"),
    ),
    "correlation": (["--correlation", "mkt-s7-000048"], lambda r: r.get("corr") == "mkt-s7-000048"),
    "kind and epoch ns": (
        ["--kind", "start", "--until", str(parse_time("2018-04-04T00:01"))],
        lambda r: r["kind"] == "start" and r["ts"] <= parse_time("2018-04-04T00:01"),
    ),
}


@pytest.mark.parametrize("name", FILTERS)
def test_show_returns_exactly_the_records_matching_a_filter(
    name: str, traces: dict[str, Path], records: list[dict[str, Any]], capsys: Any
) -> None:
    flags, wanted = FILTERS[name]
    code, out, _ = run(capsys, "show", traces["seed7"], *flags, "--json")
    shown = json_lines(out)
    assert code == 0
    assert shown, "the filter should match something in a real replay"
    assert [r["seq"] for r in shown] == [r["seq"] for r in records if wanted(r)]


def test_show_json_output_round_trips_to_the_original_lines(
    traces: dict[str, Path], capsys: Any
) -> None:
    code, out, _ = run(capsys, "show", traces["seed7"], "--json")
    assert code == 0
    assert out.splitlines() == traces["seed7"].read_text().splitlines()


def test_show_prints_an_aligned_table_with_payload_summaries(
    traces: dict[str, Path], records: list[dict[str, Any]], capsys: Any
) -> None:
    order = first_order(records)
    code, out, _ = run(capsys, "show", traces["seed7"], "--type", "SubmitOrder", "--limit", "2")
    lines = out.splitlines()
    assert code == 0
    assert len(lines) == 3 and lines[0].split()[:2] == ["seq", "time"]
    assert {line.index("deliver") for line in lines[1:]} == {lines[0].index("kind")}
    when = dt.datetime.fromtimestamp(order["ts"] / 1e9, dt.UTC)
    assert when.strftime("%Y-%m-%d %H:%M") in lines[1] and "portfolio → execution" in lines[1]
    assert f"client_order_id={order['msg']['client_order_id']}" in lines[1]
    assert f"product={order['msg']['product']}" in lines[1]


def test_show_reads_the_rotated_files_oldest_first_by_default(tmp_path: Path, capsys: Any) -> None:
    writer = TraceWriter(tmp_path / "t.jsonl", max_bytes=600, max_files=50)
    for i in range(40):
        writer.record("deliver", 1, "a", "b", Tick(kind="poll"), msg_id=f"m{i + 1}", corr="m1")
    writer.close()
    assert (tmp_path / "t.jsonl.3").exists()
    _, current, _ = run(capsys, "show", tmp_path / "t.jsonl", "--json", "--current-only")
    _, everything, _ = run(capsys, "show", tmp_path / "t.jsonl", "--json")
    _, explicit, _ = run(capsys, "show", tmp_path / "t.jsonl", "--json", "--all-rotated")
    assert [r["seq"] for r in json_lines(everything)] == list(range(1, 41))
    assert explicit == everything
    assert len(json_lines(current)) < 40
    code, _, err = run(capsys, "follow", tmp_path / "t.jsonl", "m1", "--current-only")
    assert code == 2
    assert "no message id or client order id 'm1'" in err
    assert "older rotated files exist" in err and "t.jsonl.1" in err
    code, _, err = run(capsys, "follow", tmp_path / "t.jsonl", "m99")
    assert code == 2 and "rotated file(s)" in err and len(err.strip().splitlines()) == 1
    assert run(capsys, "follow", tmp_path / "t.jsonl", "m1")[0] == 0


def test_show_refuses_an_unknown_type_naming_the_known_ones(tmp_path: Path, capsys: Any) -> None:
    writer = TraceWriter(tmp_path / "t.jsonl")
    writer.record("deliver", 1, "a", "b", Tick(kind="poll"), msg_id="m1", corr="m1")
    writer.close()
    code, out, err = run(capsys, "show", tmp_path / "t.jsonl", "--type", "NoSuchType")
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert "NoSuchType" in err and "SubmitOrder" in err and "Fill" in err
    assert run(capsys, "show", tmp_path / "t.jsonl", "--type", "tick")[0] == 0


# --- follow ----------------------------------------------------------------------------------


def test_follow_of_a_client_order_id_shows_its_causes_risk_snapshot_and_fills_in_causal_order(
    traces: dict[str, Path], records: list[dict[str, Any]], capsys: Any
) -> None:
    order = first_whole_order(records)  # a split order's later children follow its timer
    coid = order["msg"]["client_order_id"]
    code, out, _ = run(capsys, "follow", traces["seed7"], coid, "--json")
    nodes = json_lines(out)
    types = [n["type"] for n in nodes]
    assert code == 0
    assert nodes[0]["type"] == "Tick" and nodes[0]["depth"] == 0
    bar, weight = types.index("Bar"), types.index("TargetWeight")
    risk, submit = types.index("RiskParameters"), types.index("SubmitOrder")
    fills = [i for i, t in enumerate(types) if t == "Fill"]
    assert fills and bar < weight < risk < submit < min(fills)
    assert nodes[submit]["id"] == order["id"] and nodes[submit]["role"] == "target"
    assert nodes[bar]["depth"] < nodes[weight]["depth"] < nodes[submit]["depth"]
    assert all(nodes[i]["depth"] > nodes[submit]["depth"] for i in fills)
    # the snapshot is the one the portfolio used: its version is quoted in the order's reason
    snapshot = nodes[risk]
    assert snapshot["role"] == "risk" and snapshot["dst"] == "portfolio"
    assert f"risk v{snapshot['msg']['version']} " in order["msg"]["reason"]
    # every venue fill of the order is there, and they add up to the filled quantity
    venue_fills = [n["msg"] for n in nodes if n["type"] == "Fill" and n["src"] == "venue"]
    closed = next(n["msg"] for n in nodes if n["type"] == "OrderClosed")
    expected = [
        r["msg"]["fill_id"]
        for r in records
        if r["type"] == "Fill" and r["src"] == "venue" and r["msg"]["client_order_id"] == coid
    ]
    assert [f["fill_id"] for f in venue_fills] == expected
    total = sum(Decimal(f["quantity"]) for f in venue_fills)
    assert total == Decimal(closed["filled_quantity"])


def test_follow_text_names_the_reason_the_risk_in_effect_and_the_outcome(
    traces: dict[str, Path], records: list[dict[str, Any]], capsys: Any
) -> None:
    order = first_order(records)
    code, out, _ = run(capsys, "follow", traces["seed7"], order["msg"]["client_order_id"])
    assert code == 0
    assert "[risk in effect] version=" in out and "[target]" in out
    assert f"  reason: {order['msg']['reason']}" in out
    assert re.search(r"→ FILLED, filled [\d.]+ in \d+ fill\(s\), avg price", out)


def test_follow_of_a_message_id_walks_up_to_the_tick_that_started_it(
    traces: dict[str, Path], records: list[dict[str, Any]], capsys: Any
) -> None:
    fill = next(r for r in records if r["type"] == "Fill" and r["dst"] == "portfolio")
    code, out, _ = run(capsys, "follow", traces["seed7"], fill["id"], "--json")
    nodes = json_lines(out)
    chain = [n["type"] for n in nodes if n["role"] in ("root", "cause", "target")]
    assert code == 0
    assert chain == ["Tick", "Bar", "TargetWeight", "SubmitOrder", "Fill", "Fill"]
    assert [n["depth"] for n in nodes if n["role"] != "risk"][:6] == [0, 1, 2, 3, 4, 5]


def test_follow_of_an_unknown_id_exits_2_with_a_message(
    traces: dict[str, Path], capsys: Any
) -> None:
    code, out, err = run(capsys, "follow", traces["seed7"], "cj-s7-999999")
    assert code == 2 and out == ""
    assert err.strip() == (
        f"trace follow: no message id or client order id 'cj-s7-999999' in {traces['seed7']}"
    )


def test_follow_in_a_file_holding_two_runs_uses_the_latest(
    traces: dict[str, Path], records: list[dict[str, Any]], tmp_path: Path, capsys: Any
) -> None:
    both = tmp_path / "both.jsonl"
    both.write_text(traces["seed7"].read_text() * 2)
    order = first_order(records)
    code, out, _ = run(capsys, "follow", both, order["msg"]["client_order_id"], "--json")
    assert code == 0
    nodes = json_lines(out)
    assert [n["seq"] for n in nodes if n["type"] == "SubmitOrder"] == [order["seq"]]
    assert len(nodes) == len({(n["seq"], n["role"]) for n in nodes})


# --- stats -----------------------------------------------------------------------------------


def test_stats_counts_match_a_manual_count(
    traces: dict[str, Path], records: list[dict[str, Any]], capsys: Any
) -> None:
    code, out, _ = run(capsys, "stats", traces["seed7"], "--json")
    stats = json.loads(out)
    delivered = [r for r in records if r["kind"] == "deliver"]
    assert code == 0
    assert stats["records"] == len(records)
    assert stats["delivered"]["total"] == len(delivered)
    assert stats["delivered"]["by_type"] == dict(Counter(r["type"] for r in delivered))
    assert stats["delivered"]["by_actor"] == dict(Counter(r["dst"] for r in delivered))
    assert stats["restarts"] == {} and stats["dead_letters"]["total"] == 0
    assert stats["handling_ns"] is None and stats["mailbox_wait_ns"] is None


def test_stats_of_a_chaos_trace_reports_restarts_exits_and_dead_letters(
    traces: dict[str, Path], capsys: Any
) -> None:
    lines = traces["chaos"].read_text().splitlines()
    kinds = Counter(json.loads(line)["kind"] for line in lines)
    code, out, _ = run(capsys, "stats", traces["chaos"], "--json")
    stats = json.loads(out)
    assert code == 0
    assert sum(stats["restarts"].values()) > 0
    assert stats["dead_letters"]["total"] == kinds["dead"] > 0
    assert sum(e["crash"] for e in stats["exits"].values()) > 0
    code, text, _ = run(capsys, "stats", traces["chaos"])
    assert "restarts: " in text and "restarts: none" not in text
    assert "handling time p50/p99: n/a (deterministic trace)" in text
    assert "InjectedCrash" in text


def test_stats_reports_percentiles_when_records_carry_timings(tmp_path: Path, capsys: Any) -> None:
    trace = tmp_path / "timed.jsonl"
    trace.write_text(
        "".join(
            json.dumps(
                {
                    "seq": i,
                    "ts": i,
                    "kind": "deliver",
                    "src": "a",
                    "dst": "b",
                    "type": "Tick",
                    "id": f"m{i}",
                    "msg": {"type": "Tick", "kind": "x"},
                    "dur_ns": i * 1000,
                    "wait_ns": 5,
                }
            )
            + "\n"
            for i in range(1, 101)
        )
    )
    code, out, _ = run(capsys, "stats", trace, "--json")
    stats = json.loads(out)
    assert code == 0
    assert stats["handling_ns"]["all"] == {"count": 100, "p50": 50_000, "p99": 99_000}
    assert stats["mailbox_wait_ns"]["by_actor"]["b"]["p99"] == 5


# --- diff ------------------------------------------------------------------------------------


def test_diff_of_two_same_seed_traces_says_identical(traces: dict[str, Path], capsys: Any) -> None:
    code, out, _ = run(capsys, "diff", traces["seed7"], traces["seed7_again"])
    n = len(traces["seed7"].read_text().splitlines())
    assert (code, out.strip()) == (0, f"identical ({n} records)")


def test_diff_ignores_handling_time_and_mailbox_wait(
    traces: dict[str, Path], tmp_path: Path, capsys: Any
) -> None:
    timed = tmp_path / "timed.jsonl"
    lines = traces["seed7"].read_text().splitlines()
    timed.write_text("".join(line[:-1] + ', "dur_ns": 7, "wait_ns": 9}\n' for line in lines))
    code, out, _ = run(capsys, "diff", traces["seed7"], timed)
    assert code == 0 and out.startswith("identical")


def test_diff_of_seed_7_and_seed_8_reports_the_first_divergence(
    traces: dict[str, Path], capsys: Any
) -> None:
    a = traces["seed7"].read_text().splitlines()
    b = traces["seed8"].read_text().splitlines()
    first = next(i for i, (x, y) in enumerate(zip(a, b, strict=False), 1) if x != y)
    code, out, _ = run(capsys, "diff", traces["seed7"], traces["seed8"])
    assert code == 1
    assert f"first divergence at record {first}:" in out
    assert re.search(rf"≠ +{first} ", out)
    assert "differing fields: " in out and "records only in one trace" in out


# --- robustness ------------------------------------------------------------------------------


def test_a_corrupt_line_in_the_middle_is_skipped_with_one_warning_per_line(
    traces: dict[str, Path], records: list[dict[str, Any]], tmp_path: Path, capsys: Any
) -> None:
    lines = traces["seed7"].read_text().splitlines()
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join([*lines[:100], "{not json", '{"seq": 5}', *lines[100:]]) + "\n")
    code, out, err = run(capsys, "stats", bad, "--json")
    assert code == 0 and json.loads(out)["records"] == len(lines)
    warnings = err.splitlines()
    assert len(warnings) == 2
    assert warnings[0].startswith(f"{bad}:101: skipped corrupt record: ")
    assert warnings[1].startswith(f"{bad}:102: skipped corrupt record: ") and "`ts`" in warnings[1]
    order = first_order(records)
    code, out, err = run(capsys, "follow", bad, order["msg"]["client_order_id"])
    assert code == 0 and "[target]" in out and len(err.splitlines()) == 2


def test_a_missing_file_exits_2_with_a_one_line_message(tmp_path: Path, capsys: Any) -> None:
    for command in (["show"], ["stats"], ["follow"], ["tail"]):
        argv = [*command, tmp_path / "nope.jsonl", *(["m1"] if command == ["follow"] else [])]
        code, out, err = run(capsys, *argv)
        assert (code, out) == (2, "")
        assert err == f"trace {command[0]}: {tmp_path / 'nope.jsonl'}: No such file or directory\n"


def test_a_bad_time_is_a_usage_error() -> None:
    assert main(["show", "x.jsonl", "--since", "yesterday"]) == 2
    assert parse_time("2018-04-04T12:00") == parse_time("2018-04-04T12:00:00Z")
    assert parse_time("2018-04-04T12:00:00+02:00") == parse_time("2018-04-04T10:00Z")
    assert parse_time("1522843200000000000") == parse_time("2018-04-04T12:00")


# --- tail ------------------------------------------------------------------------------------


def test_tail_prints_records_appended_by_another_thread_and_stops_after_max_seconds(
    traces: dict[str, Path], tmp_path: Path, capsys: Any
) -> None:
    lines = traces["seed7"].read_text().splitlines(keepends=True)
    live = tmp_path / "live.jsonl"
    live.write_text("".join(lines[:50]))

    def append() -> None:
        for line in lines[50:60]:
            time.sleep(0.02)
            with live.open("a") as f:
                f.write(line)

    writer = threading.Timer(0.2, append)
    writer.start()
    t0 = time.monotonic()
    code, out, _ = run(capsys, "tail", live, "--json", "--max-seconds", "1", "--poll", "20")
    elapsed = time.monotonic() - t0
    writer.join()
    assert code == 0 and 0.9 <= elapsed < 2.5
    assert [r["seq"] for r in json_lines(out)] == list(range(51, 61))


def test_tail_reader_survives_rotation_and_truncation(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    writer = TraceWriter(path, max_bytes=1000, max_files=3)
    tail = TailReader(path, from_start=True)

    def write(n: int) -> None:
        for _ in range(n):
            writer.record("deliver", 1, "a", "b", Tick(kind="poll"), msg_id="m", corr="m")
        writer.flush()

    write(3)
    assert [r.seq for r in tail.poll()] == [1, 2, 3]
    write(6)  # the file rotates once on the way
    assert (tmp_path / "t.jsonl.1").exists()
    assert [r.seq for r in tail.poll()] == [4, 5, 6, 7, 8, 9]
    writer.close()
    path.write_text("")  # truncated in place
    assert tail.poll() == []
    path.write_text(traces_line(1) + traces_line(2))
    assert [r.seq for r in tail.poll()] == [1, 2]
    tail.close()


def test_tail_reader_catches_up_on_several_rotations_and_a_fresh_writer(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    writer = TraceWriter(path, max_bytes=1000, max_files=10)

    def write(w: TraceWriter, n: int) -> None:
        for _ in range(n):
            w.record("deliver", 1, "a", "b", Tick(kind="poll"), msg_id="m", corr="m")
        w.flush()

    write(writer, 2)
    tail = TailReader(path)  # from the end: records 1 and 2 are not reported
    write(writer, 30)  # four rotations before the next poll
    assert (tmp_path / "t.jsonl.4").exists()
    assert [r.seq for r in tail.poll()] == list(range(3, 33))
    writer.close()
    fresh = TraceWriter(path, max_bytes=1000, max_files=10, fresh=True)  # a new run
    write(fresh, 10)
    assert [r.seq for r in tail.poll()] == list(range(1, 11))
    fresh.close()
    tail.close()


def traces_line(seq: int) -> str:
    """A minimal valid trace line."""
    return (
        json.dumps({"seq": seq, "ts": 0, "kind": "start", "src": "a", "dst": "b", "type": "X"})
        + "\n"
    )


# --- entry points ----------------------------------------------------------------------------


def test_tools_trace_py_and_python_m_cryptoj_trace_print_the_same(traces: dict[str, Path]) -> None:
    argv = ["show", str(traces["seed7"]), "--type", "SubmitOrder", "--limit", "3"]
    tool = subprocess.run(
        [sys.executable, "tools/trace.py", *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    module = subprocess.run(
        [sys.executable, "-m", "cryptoj", "trace", *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert tool.returncode == module.returncode == 0, tool.stderr + module.stderr
    assert tool.stdout == module.stdout
    assert len(tool.stdout.splitlines()) == 4 and "SubmitOrder" in tool.stdout


def test_follow_summaries_agree_with_the_journal(traces: dict[str, Path], capsys: Any) -> None:
    """For every decided order of a replay, ``follow``'s closing line gives the journal's
    fill count and filled quantity (split orders included: their fills reach the portfolio
    under the parent's id), and names no unrelated order."""
    import re
    import sqlite3
    from decimal import Decimal

    trace = traces["seed7"]
    db = sqlite3.connect(trace.parent / "seed7-journal.sqlite")
    rows = db.execute(
        "SELECT client_order_id, count(*), group_concat(quantity, ' ') FROM fills "
        "GROUP BY client_order_id"
    ).fetchall()
    db.close()
    assert rows and any(n > 1 for _, n, _ in rows), "expected a split order in the replay"
    split = 0
    for coid, n, quantities in rows:
        code, out, _ = run(capsys, "follow", trace, coid)
        assert code == 0
        filled = sum((Decimal(q) for q in quantities.split()), Decimal(0))
        summaries = re.findall(r"^order (\S+): .* filled (\S+) in (\d+) fill", out, re.M)
        assert len(summaries) == 1, out
        name, quantity, count = summaries[0]
        assert (name, Decimal(quantity), int(count)) == (coid, filled, n), out
        children = re.search(
            r"child orders: \d+ .*, (\d+) venue fill\(s\), filled (\S+)$", out, re.M
        )
        if children:  # a split order: its children's venue fills are the parent's fills
            split += 1
            assert (int(children.group(1)), Decimal(children.group(2))) == (n, filled), out
    assert split > 0


def test_a_rotated_replay_trace_is_read_whole_and_named_in_the_summary(
    tmp_path: Path, capsys: Any
) -> None:
    from cryptoj.config import parse_config

    cfg = parse_config({"trace": {"max_bytes": 2_000_000, "max_files": 20}})
    trace = tmp_path / "t.jsonl"
    opts = ReplayOptions(data=DATA, journal=str(tmp_path / "j.sqlite"), trace=str(trace))
    summary, code = run_replay(cfg, opts)
    assert code == 0
    assert len(summary["trace_files"]) > 2 and summary["trace_files"][-1] == str(trace)
    assert summary["trace_files"][0].endswith(f".{len(summary['trace_files']) - 1}")
    code, out, _ = run(capsys, "stats", trace, "--json")
    assert code == 0 and json.loads(out)["records"] == summary["trace_records"]
    code, out, _ = run(capsys, "stats", trace, "--json", "--current-only")
    assert json.loads(out)["records"] < summary["trace_records"]
    rotated = len(summary["trace_files"]) - 1
    out = run(capsys, "stats", trace)[1]
    assert out.startswith(f"{trace} and its {rotated} rotated file(s): ")
    out = run(capsys, "stats", trace, "--current-only")[1]
    assert out.startswith(f"{trace} only ({rotated} older rotated file(s) not read")
