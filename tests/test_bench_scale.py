"""``tools/bench_scale.py`` runs the daemon against the fake and prints every documented figure.

Not a timing test: a short run (3 products, the fake's maximal rate, 2 s) in a child process on
127.0.0.1; nothing here depends on how fast the machine is.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIELDS = {
    "products", "rate", "msg_per_s", "events_per_s", "lag_p50_ms", "lag_p99_ms",
    "lag_p50_ms_by_third", "lag_p99_ms_by_third", "wire_lag_p99_ms", "max_mailbox",
    "rss_growth_mb", "merged_trades", "conflated_quotes", "overloaded_s",
}  # fmt: skip


def test_a_short_run_prints_every_figure() -> None:
    proc = subprocess.run(
        [sys.executable, "tools/bench_scale.py", "--runs", "3:max", "--seconds", "2",
         "--warmup-s", "0", "--json"],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (run,) = json.loads(proc.stdout.strip().splitlines()[-1])["runs"]
    assert run.keys() >= FIELDS
    assert run["products"] == 3 and run["rate"] == "max" and run["exit_code"] == 0
    assert run["msg_per_s"] > 0 and run["events_per_s"] > 0  # the daemon saw the feed
    assert run["conflation"] is True
