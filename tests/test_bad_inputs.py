"""Every bad input of issue 20 ends with exit code 2 and one line naming the problem.

Each case runs ``cryptoj.cli.main`` in process (no daemon or replay starts: every check comes
before any actor); one case runs a subprocess to show no traceback reaches the terminal.
"""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import pytest

from cryptoj.cli import main
from tests.stubs import ROOT


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """``cryptoj argv…`` in process: (exit code, the stderr line). Asserts one stderr line."""
    try:
        code = main(list(argv))
    except SystemExit as e:  # argparse usage errors
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected one line, got: {err!r} (stdout {out!r})"
    assert "Traceback" not in err + out
    return code, lines[0]


@pytest.fixture(autouse=True)
def _no_files_in_the_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # run reads ./config.yaml when present: there is none here


@pytest.fixture
def not_a_dir(tmp_path: Path) -> str:
    """A plain file: nothing can be created below it (whoever runs the tests, root too)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    return str(blocker)


def test_replay_journal_or_trace_that_cannot_be_written(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, not_a_dir: str
) -> None:
    code, line = run(capsys, "replay", "--journal", f"{not_a_dir}/j.sqlite", "--trace", "")
    assert code == 2 and "--journal" in line and "is not a directory" in line
    code, line = run(
        capsys, "replay", "--journal", str(tmp_path / "j.sqlite"), "--trace", f"{not_a_dir}/t"
    )
    assert code == 2 and "--trace" in line and "is not a directory" in line
    code, line = run(capsys, "replay", "--journal", str(tmp_path), "--trace", "")
    assert code == 2 and "--journal" in line and "is a directory" in line
    assert not (tmp_path / "j.sqlite").exists()


def test_daemon_config_with_an_unwritable_journal(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, not_a_dir: str
) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"journal:\n  path: {not_a_dir}/journal.sqlite\nops:\n  port: 0\n")
    code, line = run(capsys, "run", "--config", str(cfg))
    assert code == 2 and line.startswith(f"{cfg}: journal.path") and "not a directory" in line
    assert main(["check-config", str(cfg)]) == 2
    out, err = capsys.readouterr()
    assert out.strip().startswith("journal.path") and "1 problem(s)" in err


@pytest.mark.parametrize("port", ["99999", "-1", "http"])
def test_run_with_an_impossible_ops_port(capsys: pytest.CaptureFixture[str], port: str) -> None:
    code, line = run(capsys, "run", "--ops-port", port)
    assert code == 2 and "--ops-port" in line and port in line


def test_a_yaml_error_names_the_file_and_the_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    cfg = tmp_path / "broken.yaml"
    cfg.write_text("feed:\n  speed: 1\nrisk: [unclosed\n")
    code, line = run(capsys, "run", "--config", str(cfg))
    assert code == 2 and line.startswith(f"{cfg}: not valid YAML at line ")
    assert "<unicode string>" not in line


def test_a_gz_file_that_is_not_gzip(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    fake = tmp_path / "prices.csv.gz"
    fake.write_text("ts,product,open\n")
    code, line = run(capsys, "replay", "--data", str(fake), "--journal", str(tmp_path / "j"))
    assert code == 2 and str(fake) in line and "not a gzip file" in line
    truncated = tmp_path / "cut.csv.gz"
    truncated.write_bytes(gzip.compress(b"ts,product\n" * 100)[:30])
    code, line = run(capsys, "replay", "--data", str(truncated), "--journal", str(tmp_path / "j"))
    assert code == 2 and "cannot decompress" in line


def test_chaos_must_be_a_count_and_needs_the_deterministic_runtime(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, line = run(capsys, "replay", "--chaos", "-3")
    assert code == 2 and "--chaos" in line and "-3" in line
    journal = str(tmp_path / "j.sqlite")
    code, line = run(
        capsys, "replay", "--chaos", "2", "--runtime", "threaded", "--journal", journal
    )
    assert code == 2 and "--chaos" in line and "deterministic" in line
    code, line = run(capsys, "replay", "--chaos-storm", "--runtime", "threaded")
    assert code == 2 and "--chaos-storm" in line


def test_trace_show_of_an_unknown_type(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    trace.write_text("")
    code, line = run(capsys, "trace", "show", str(trace), "--type", "NoSuchType")
    assert code == 2 and "NoSuchType" in line and "SubmitOrder" in line


def test_no_traceback_reaches_the_terminal(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "cryptoj", "replay", "--journal", str(tmp_path), "--trace", ""],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"replay: --journal {tmp_path}: is a directory, expected a file path"
    ]
