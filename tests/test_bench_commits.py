"""``tools/bench_commits.py`` refuses a revision that names no commit in one line (exit 2)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--base", "no-such-rev"], "--base 'no-such-rev'"),
        (["--base", "HEAD", "--head", "HEAD~999999"], "--head 'HEAD~999999'"),
        (["--base", "HEAD:README.md"], "--base 'HEAD:README.md'"),  # a file, not a commit
    ],
)
def test_an_unknown_revision_is_one_line_naming_it(args: list[str], named: str) -> None:
    done = subprocess.run(
        [sys.executable, "tools/bench_commits.py", *args],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == f"bench_commits: {named}: no such commit in {REPO}\n"
