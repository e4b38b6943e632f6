"""Checks of the files cryptoj writes (journal, trace, log), before anything opens them.

A missing parent directory is fine (it is created); a path that names a directory, a parent
that is a file, or a directory that cannot be written is a problem, reported as one line.
"""

from __future__ import annotations

import os
from pathlib import Path


def writable_file_problem(path: str | Path, what: str) -> str | None:
    """One line naming why ``path`` cannot be written as a file, or None when it can."""
    p = Path(path)
    if p.is_dir():
        return f"{what} {p}: is a directory, expected a file path"
    if p.exists():
        return None if os.access(p, os.W_OK) else f"{what} {p}: file is not writable"
    parent = p.parent
    while not parent.exists():
        if parent == parent.parent:
            break
        parent = parent.parent
    if not parent.is_dir():
        return f"{what} {p}: {parent} is not a directory"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"{what} {p}: directory {parent} is not writable"
    return None


__all__ = ["writable_file_problem"]
