"""Following a growing trace file (``trace tail``): :class:`TailReader` returns the records
appended since its last poll, surviving rotation and truncation.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

from cryptoj.trace.records import CorruptHandler, Record, decode_line


def _identity(st: os.stat_result) -> tuple[int, int]:
    """Identifies a rotated (no longer written) file even if its inode number is reused later."""
    return st.st_ino, st.st_mtime_ns


class TailReader:
    """Reads the records appended to a growing trace file, surviving rotation and truncation.

    Call :meth:`poll` repeatedly; it returns the complete lines written since the last call.
    When ``path`` is replaced (rotation, or a fresh writer) the rest of the old file is drained,
    rotated files not seen yet are read whole, oldest first (several rotations between two
    polls), then the new ``path`` from its start. When ``path`` shrinks (truncation) it is
    reread from 0. Files rotated out of existence between two polls are lost."""

    def __init__(
        self,
        path: str | Path,
        *,
        from_start: bool = False,
        on_corrupt: CorruptHandler | None = None,
    ) -> None:
        """Open ``path`` (``OSError`` if missing) at its end, or at its start if ``from_start``."""
        self.path = Path(path)
        self.on_corrupt = on_corrupt
        self._fh: BinaryIO = open(self.path, "rb")  # noqa: SIM115 - closed in close()
        self._ino = os.fstat(self._fh.fileno()).st_ino
        self._buf = b""
        self._lineno = 0
        self._done = {_identity(st) for _, st in self._rotated()}  # older than our start
        if not from_start:
            while chunk := self._fh.read(1 << 20):
                data = self._buf + chunk
                self._lineno += chunk.count(b"\n")
                self._buf = data[data.rfind(b"\n") + 1 :]

    def _decode(self, lines: list[bytes], file: Path, first_lineno: int) -> list[Record]:
        out = []
        for lineno, line in enumerate(lines, first_lineno):
            if not line.strip():
                continue
            try:
                rec = decode_line(line)
            except ValueError as e:
                if self.on_corrupt is not None:
                    self.on_corrupt(str(file), lineno, str(e))
                continue
            rec.file, rec.line = str(file), lineno
            out.append(rec)
        return out

    def _read(self) -> list[Record]:
        data = self._buf + self._fh.read()
        *lines, self._buf = data.split(b"\n")
        out = self._decode(lines, self.path, self._lineno + 1)
        self._lineno += len(lines)
        return out

    def _rotated(self) -> list[tuple[Path, os.stat_result]]:
        """``path.1``, ``path.2``, … (newest first) that exist now."""
        found = []
        for i in range(1, 10_000):
            cand = self.path.with_name(f"{self.path.name}.{i}")
            try:
                found.append((cand, os.stat(cand)))
            except FileNotFoundError:
                break
        return found

    def _unseen(self, new_ino: int) -> list[tuple[Path, BinaryIO]]:
        """Rotated files not read yet and older than inode ``new_ino``, opened, oldest first.
        Retries when a rotation renames files while they are being opened."""
        for _ in range(5):
            rotated = self._rotated()
            inos = [st.st_ino for _, st in rotated]
            if new_ino in inos:  # rotated again already: newer files wait for the next switch
                rotated = rotated[inos.index(new_ino) + 1 :]
            opened: list[tuple[Path, BinaryIO]] = []
            consistent = True
            for name, st in reversed(rotated):
                if _identity(st) in self._done:
                    continue
                try:
                    fh = open(name, "rb")  # noqa: SIM115 - closed by the caller
                except FileNotFoundError:
                    consistent = False
                    break
                opened.append((name, fh))
                if _identity(os.fstat(fh.fileno())) != _identity(st):
                    consistent = False
                    break
            if consistent:
                return opened
            for _, stale in opened:
                stale.close()
        return []

    def _switch(self) -> list[Record]:
        """Follow a rotation: the rest of the old file, unseen rotated files, the new file."""
        out = self._read()  # written between our last read and the rotation
        self._done.add(_identity(os.fstat(self._fh.fileno())))
        new_fh = open(self.path, "rb")  # noqa: SIM115
        new_ino = os.fstat(new_fh.fileno()).st_ino
        for name, fh in self._unseen(new_ino):
            with fh:
                self._done.add(_identity(os.fstat(fh.fileno())))
                out += self._decode(fh.read().split(b"\n"), name, 1)
        present = {_identity(st) for _, st in self._rotated()}
        self._done &= present | {_identity(os.fstat(self._fh.fileno()))}
        self._fh.close()
        self._fh, self._ino, self._buf, self._lineno = new_fh, new_ino, b"", 0
        return out + self._read()

    def poll(self) -> list[Record]:
        """New complete records (possibly none)."""
        out = self._read()
        try:
            st = os.stat(self.path)
        except FileNotFoundError:  # between the rename and the re-creation of a rotation
            return out
        if st.st_ino != self._ino:
            out += self._switch()
        elif st.st_size < self._fh.tell():
            self._fh.seek(0)
            self._buf, self._lineno = b"", 0
            out += self._read()
        return out

    def close(self) -> None:
        """Close the file."""
        self._fh.close()
