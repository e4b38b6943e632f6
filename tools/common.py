"""Helpers shared by the tools: other commits checked out beside this one, and the daemon run
from compiled bytecode.

``tools/`` is not a package: each tool puts this directory on ``sys.path`` (a script run as
``python tools/x.py`` has it there already) and imports ``from common import ...``.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class UnknownRevision(Exception):
    """A revision given on the command line that names no commit of this repository."""


def short_hash(commit: str, option: str) -> str:
    """The short hash of ``commit`` (given as ``option``); :class:`UnknownRevision` when it
    names no commit."""
    done = subprocess.run(
        [
            "git",
            "-C",
            str(ROOT),
            "rev-parse",
            "--verify",
            "--quiet",
            "--short",
            f"{commit}^{{commit}}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0 or not done.stdout.strip():
        raise UnknownRevision(f"{option} {commit!r}: no such commit in {ROOT}")
    return done.stdout.strip()


def has_uncommitted_changes() -> bool:
    """True when this checkout has uncommitted changes to tracked files."""
    done = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        check=False,
    )
    return bool(done.stdout.strip())


def make_worktree(rev: str, tree: Path) -> Path:
    """A detached git worktree of ``rev`` at ``tree`` (remove it with :func:`remove_worktree`)."""
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(tree), rev],
        check=True,
    )
    return tree


def remove_worktree(tree: Path) -> None:
    """Remove a worktree made by :func:`make_worktree`."""
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False
    )


@contextlib.contextmanager
def checkouts(base: str, head: str | None) -> Iterator[tuple[Path, Path, Path]]:
    """A temporary directory, ``base`` checked out in it and ``head`` too (None: this checkout
    as it is); the worktrees are removed at the end."""
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        trees = [make_worktree(base, tmp / "base")]
        try:
            trees.append(ROOT if head is None else make_worktree(head, tmp / "head"))
            yield tmp, trees[0], trees[1]
        finally:
            for tree in trees:
                if tree != ROOT:
                    remove_worktree(tree)


def cached_bytecode_env(checkout: Path, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment ``env`` (default: this process's) for a daemon that runs ``checkout``'s
    cryptoj from compiled bytecode, as a pip installation does; ``checkout`` is compiled here.

    With ``PYTHONDONTWRITEBYTECODE`` set (as in the helper sessions) and no ``__pycache__``,
    every start compiles every cryptoj module from source, a cost an installed daemon does not
    pay. So ``python -m compileall -q cryptoj`` runs once in ``checkout`` (bytecode written
    beside the sources, where an installation has it; only stale files are compiled again) and
    the variable is dropped from the returned environment, so that the daemon reads that
    bytecode. The standard library and the dependencies keep their installed bytecode. The
    compiler runs with the returned environment, so that a ``PYTHONPYCACHEPREFIX`` in it puts
    the bytecode where the daemon will look for it.
    """
    out = dict(os.environ if env is None else env)
    out.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "cryptoj"], cwd=checkout, env=out, check=True
    )
    return out
