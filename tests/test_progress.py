"""Progress bars: drawn on a terminal, quiet otherwise; the report reports its steps."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from cryptoj.cli import main
from cryptoj.config import Config
from cryptoj.progress import Bar, day, wanted
from cryptoj.replay import ReplayOptions, run_replay
from cryptoj.report import write_report


class Tty(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_a_bar_is_wanted_on_a_terminal_without_json_only() -> None:
    assert wanted(json_output=False, stream=Tty())
    assert not wanted(json_output=True, stream=Tty())
    assert not wanted(json_output=False, stream=io.StringIO())


def test_the_bar_shows_the_count_and_the_note() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120, color_system=None)
    with Bar("replay", 10, console=console) as bar:
        bar.update(3, day(1_522_800_060_000_000_000))
        bar.finish("done")
    text = out.getvalue()
    assert "replay" in text and "10/10" in text and "done" in text
    assert day(None) == "" and day(1_522_800_060_000_000_000) == "2018-04-04"


def test_replay_and_report_are_quiet_when_stderr_is_not_a_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = tmp_path / "j.sqlite"
    code = main(
        ["replay", "--journal", str(journal), "--trace", "", "--report", str(tmp_path / "r")]
    )
    assert code == 0
    out, err = capsys.readouterr()
    assert err == "" and "report" in out
    assert main(["report", str(journal), "--out", str(tmp_path / "r2")]) == 0
    out, err = capsys.readouterr()
    assert err == "" and out.startswith("report written: ")


def test_the_report_calls_progress_after_each_step(tmp_path: Path) -> None:
    journal = tmp_path / "j.sqlite"
    run_replay(
        Config(), ReplayOptions(data="coinbase-1m-2018-04", journal=str(journal), trace=None)
    )
    steps: list[tuple[int, int, str]] = []
    write_report(journal, tmp_path / "r", progress=lambda *s: steps.append(s))
    done = [d for d, _, _ in steps]
    assert done == sorted(done) and done[0] == 0 and done[-1] == steps[0][1]
    assert any(what.endswith(".png") for _, _, what in steps)
