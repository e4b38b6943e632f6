"""The HTML report: from a replay (``replay --report``) and from any journal (``report``).

The figures are checked on small synthetic series; the pages on a one-day replay of two
products; the rendering in a real headless Chromium (skipped where it is not installed).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from cryptoj.cli import main
from cryptoj.config import parse_config
from cryptoj.journal import Journal
from cryptoj.report import write_report
from cryptoj.report.charts import CHARTS
from cryptoj.report.data import (
    ReportError,
    benchmark,
    drawdown,
    exposure_weights,
    level_series,
    load_report_data,
    slippage_bps,
)
from tests.stubs import chromium_command
from tests.test_ops import running

DAY = ["--from", "2018-04-04", "--to", "2018-04-04"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _t(*minutes: int) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(
        [pd.Timestamp("2018-04-04T00:00Z") + pd.Timedelta(minutes=m) for m in minutes]
    )


def _config(tmp_path: Path) -> Path:
    cfg = tmp_path / "config.yaml"
    # entry_band as small as the flip band: the strategy trades on this one day of minute bars
    cfg.write_text("feed:\n  products: [BTC-USD, ETH-USD]\nstrategy:\n  entry_band: 0.0005\n")
    return cfg


def _check_page(out: Path) -> str:
    """index.html refers to every chart, each a real, non-blank PNG; nothing external."""
    page = (out / "index.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    srcs = re.findall(r'<img src="([^"]+)"', page)
    assert srcs == [name for name, _, _ in CHARTS]
    for name in srcs:
        data = (out / name).read_bytes()
        assert data.startswith(PNG_SIGNATURE), name
        pixels = imread(out / name)
        assert pixels.shape[0] >= 200 and pixels.shape[1] >= 800, (name, pixels.shape)
        assert float(pixels[..., :3].std()) > 0.02, f"{name} is blank"
    assert not re.search(r"(src|href)=\"(https?:)?//", page), "the page loads something external"
    assert "<script" not in page and "<link" not in page
    return page


# -- the figures --------------------------------------------------------------------------------


def test_benchmark_is_equal_weight_buy_and_hold() -> None:
    prices = pd.DataFrame({"A": [100.0, 110.0, 120.0], "B": [10.0, 9.0, np.nan]}, index=_t(0, 1, 2))
    bench = benchmark(prices, 1000.0)
    # 500 in A (5 units) and 500 in B (50 units), held; a missing price keeps the last one
    assert bench.tolist() == pytest.approx([1000.0, 550.0 + 450.0, 600.0 + 450.0])
    assert drawdown(pd.Series([100.0, 120.0, 90.0, 130.0])).tolist() == pytest.approx(
        [0, 0, 0.25, 0]
    )


def test_risk_levels_exposure_and_slippage_from_journal_rows() -> None:
    index = _t(0, 1, 2, 3, 4)
    events = pd.DataFrame(
        {
            "ts": [index[1].value, index[3].value, index[3].value],
            "kind": ["risk_level", "risk_level", "feed_finished"],
            "detail": ["NORMAL -> CAUTION: drawdown", "CAUTION -> HALTED: loss", "x"],
        }
    )
    assert level_series(events, index).tolist() == [0, 1, 1, 3, 3]
    changes = pd.DataFrame(
        {"ts": [index[1].value, index[3].value], "product": ["A", "A"], "quantity": ["2", "0"]}
    )
    prices = pd.DataFrame({"A": [10.0, 10.0, 20.0, 20.0, 20.0]}, index=index)
    equity = pd.Series([100.0] * 5, index=index)
    assert exposure_weights(changes, prices, equity)["A"].tolist() == pytest.approx(
        [0, 0.2, 0.4, 0, 0]
    )
    fills = pd.DataFrame(
        {
            "ts": [index[1].value, index[2].value],
            "product": ["A", "A"],
            "side": ["BUY", "SELL"],
            "price": ["10.05", "19.9"],
        }
    )
    assert slippage_bps(fills, prices).tolist() == pytest.approx([50.0, 50.0])


def test_long_series_are_thinned_for_drawing_and_steps_keep_every_change() -> None:
    from cryptoj.report.charts import MAX_POINTS, _changes, _thin

    long = pd.Series(np.arange(10 * MAX_POINTS, dtype=float))
    thin = _thin(long)
    assert len(thin) <= MAX_POINTS + 1 and thin.iloc[0] == 0 and thin.iloc[-1] == long.iloc[-1]
    assert _thin(long.iloc[:10]).equals(long.iloc[:10])
    steps = pd.Series([0, 0, 1, 1, 1, 3, 0, 0], index=_t(*range(8)))
    assert _changes(steps).tolist() == [0, 1, 3, 0, 0]
    assert list(_changes(steps).index) == list(_t(0, 2, 5, 6, 7))


# -- pages --------------------------------------------------------------------------------------


def test_replay_report_writes_index_html_and_charts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    args = [
        "replay",
        *DAY,
        "--config",
        str(_config(tmp_path)),
        "--journal",
        str(tmp_path / "j.sqlite"),
        "--trace",
        "",
        "--report",
        str(out),
        "--json",
    ]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["report"] == str(out / "index.html")
    page = _check_page(out)
    assert "cryptoj replay of coinbase-1m-2018-04 (seed 7)" in page
    for label in (
        "final equity",
        "benchmark return",
        "excess return over benchmark",
        "max drawdown",
        "fees paid",
        "fees paid / start equity",
        "turnover (traded value / start equity)",
        "time at each risk level",
        "invariants ok",
    ):
        assert f"<th>{label}</th>" in page, label
    assert f"<td>{summary['final_equity']:,.2f}</td>" in page
    assert "<td>BTC-USD, ETH-USD</td>" in page
    assert f"<th>fills</th><td>{summary['fills']} (" in page
    assert f"<th>fees paid</th><td>{summary['fees_paid']:,.2f}</td>" in page
    assert f"<td>{summary['fees_pct']:.2%}</td>" in page
    assert f"<td>{summary['turnover']:.2f}×</td>" in page


def test_report_command_renders_a_journal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = tmp_path / "j.sqlite"
    cfg = str(_config(tmp_path))
    assert main(["replay", *DAY, "--config", cfg, "--journal", str(journal), "--trace", ""]) == 0
    capsys.readouterr()
    out = tmp_path / "rep"
    code = main(
        [
            "report",
            str(journal),
            "--data",
            "coinbase-1m-2018-04",
            "--config",
            cfg,
            "--out",
            str(out),
            "--title",
            "My session",
        ]
    )
    assert code == 0
    assert capsys.readouterr().out.strip() == f"report written: {out / 'index.html'}"
    assert "<title>My session</title>" in _check_page(out)


def test_report_of_a_live_daemon_journal(tmp_path: Path) -> None:
    with running(tmp_path, speed=1500) as r:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            j = Journal(tmp_path / "journal.sqlite")
            try:
                if len(j.fills()) >= 2:
                    break
            finally:
                j.close()
            time.sleep(0.05)
        r.daemon.request_stop("enough")
        assert r.wait_exit() == 0
    index = write_report(
        tmp_path / "journal.sqlite",
        tmp_path / "live",
        data="coinbase-1m-2018-04",
        products=["BTC-USD", "ETH-USD"],
    )
    page = _check_page(index.parent)
    assert "<th>fills</th><td>0</td>" not in page


def test_an_empty_journal_still_gets_a_page_and_bad_input_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = tmp_path / "empty.sqlite"
    j = Journal(journal)
    j.set_meta("starting_cash", "1000")
    j.close()
    with pytest.raises(ReportError, match="does not record its market data"):
        load_report_data(journal)
    index = write_report(journal, tmp_path / "e", data="coinbase-1m-2018-04")
    page = index.read_text(encoding="utf-8")
    assert "no equity recorded in the journal" in page
    assert all((tmp_path / "e" / name).is_file() for name, _, _ in CHARTS)
    assert main(["report", str(tmp_path / "missing.sqlite"), "--out", str(tmp_path / "m")]) == 2
    assert "no such journal" in capsys.readouterr().err
    cfg = parse_config({})
    assert cfg.feed.data == "coinbase-1m-2018-04"


# -- in a real browser ---------------------------------------------------------------------------


@pytest.mark.skipif(
    shutil.which("chromium") is None,
    reason="Chromium is not installed (Debian: apt-get install -y chromium); "
    "the report's HTML and PNGs are still checked by the other tests",
)
def test_the_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = [
        "replay",
        *DAY,
        "--config",
        str(_config(tmp_path)),
        "--journal",
        str(tmp_path / "j.sqlite"),
        "--trace",
        "",
        "--report",
        str(out),
    ]
    assert main(args) == 0
    shot = tmp_path / "screenshot.png"
    cmd = chromium_command(
        tmp_path / "profile",
        "1200,1600",
        "--hide-scrollbars",
        f"--screenshot={shot}",
        (out / "index.html").resolve().as_uri(),
    )
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert shot.is_file() and shot.read_bytes().startswith(PNG_SIGNATURE)
    pixels = imread(shot)[..., :3]
    assert pixels.shape[:2] == (1600, 1200)
    assert float(pixels.std()) > 0.05, "the screenshot is blank"
    # the equity chart's line colour (#1565c0) is on screen: the PNGs loaded, not only the text
    blue = np.abs(pixels - np.array([0x15, 0x65, 0xC0]) / 255).max(axis=-1) < 0.08
    assert blue.sum() > 200, "the equity chart did not render"
    keep = os.environ.get("CRYPTOJ_KEEP_SCREENSHOT")  # a path: keep the screenshot to look at
    if keep:
        shutil.copyfile(shot, keep)
