"""The market data error, in a module of its own: the CLI and the live start catch it without
importing the loaders (the live daemon reads no data file before it trades)."""

from __future__ import annotations


class DataError(Exception):
    """A market data file or set name is unusable; the message says where and why.

    Raised for input problems the caller has to fix (wrong name, missing file, malformed row,
    filters that select nothing). ``path`` is the file (or set name), ``line`` the 1-based line
    number (``None`` when the problem is not on one line), ``problem`` the bare description.
    """

    def __init__(self, path: str, problem: str, line: int | None = None) -> None:
        self.path = path
        self.line = line
        self.problem = problem
        where = path if line is None else f"{path}:{line}"
        super().__init__(f"{where}: {problem}")
