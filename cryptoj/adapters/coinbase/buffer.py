"""A bounded on-disk ring of raw websocket frames, and its reader (for replaying a session).

Every frame a connection receives is appended, unchanged, with its receive time and connection
id, to segment files ``frames-<first recv ns>-<n>.cbf`` in one directory. A segment is closed at
``segment_bytes``; when all segments together exceed ``max_bytes`` the oldest are deleted, so
the disk use stays bounded. Records are length-prefixed (frames are JSON text, but nothing is
assumed about their content)::

    <recv_ns: u64 LE> <conn id length: u16 LE> <frame length: u32 LE> <conn id> <frame>

:func:`read_frames` yields the records of a directory in write order and stops quietly at a
truncated last record (a crash mid-write). Writing is buffered; :meth:`RawFrameBuffer.flush`
(called about once a second by the connections) bounds what a crash can lose.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

_HEAD = struct.Struct("<QHI")
SUFFIX = ".cbf"


@dataclass(frozen=True, slots=True)
class RecordedFrame:
    """One recorded frame."""

    recv_ns: int
    connection: str
    data: bytes


class RawFrameBuffer:
    """Appends frames to a size-bounded ring of segment files (thread-safe)."""

    def __init__(
        self,
        directory: str | Path,
        *,
        max_bytes: int = 256_000_000,
        segment_bytes: int = 16_000_000,
    ) -> None:
        if segment_bytes <= 0 or max_bytes < segment_bytes:
            raise ValueError("expected 0 < segment_bytes <= max_bytes")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self._lock = threading.Lock()
        self._file: BinaryIO | None = None
        self._size = 0
        self._seq = len(segments(self.directory))
        self.frames = 0
        self.bytes = 0
        self.deleted_segments = 0

    def append(self, recv_ns: int, connection: str, data: bytes) -> None:
        """Record one frame."""
        conn = connection.encode()
        record = _HEAD.pack(recv_ns, len(conn), len(data))
        with self._lock:
            if self._file is None or self._size >= self.segment_bytes:
                self._rotate(recv_ns)
            assert self._file is not None
            self._file.write(record)
            self._file.write(conn)
            self._file.write(data)
            n = _HEAD.size + len(conn) + len(data)
            self._size += n
            self.bytes += n
            self.frames += 1

    def flush(self) -> None:
        """Push buffered records to the operating system."""
        with self._lock:
            if self._file is not None:
                self._file.flush()

    def close(self) -> None:
        """Flush and close the current segment."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def _rotate(self, recv_ns: int) -> None:
        if self._file is not None:
            self._file.close()
        self._seq += 1
        path = self.directory / f"frames-{recv_ns:020d}-{self._seq:06d}{SUFFIX}"
        self._file = path.open("ab")
        self._size = 0
        self._trim()

    def _trim(self) -> None:
        files = segments(self.directory)
        total = sum(f.stat().st_size for f in files)
        # the newest segment is the one just opened: never delete it
        for f in files[:-1]:
            if total + self.segment_bytes <= self.max_bytes:
                break
            total -= f.stat().st_size
            f.unlink(missing_ok=True)
            self.deleted_segments += 1


def segments(directory: str | Path) -> list[Path]:
    """The segment files of a buffer directory, oldest first."""
    return sorted(Path(directory).glob(f"frames-*{SUFFIX}"))


def read_frames(directory: str | Path) -> Iterator[RecordedFrame]:
    """Every recorded frame of ``directory``, in write order."""
    for path in segments(directory):
        data = path.read_bytes()
        pos = 0
        while pos + _HEAD.size <= len(data):
            recv_ns, clen, dlen = _HEAD.unpack_from(data, pos)
            start = pos + _HEAD.size
            end = start + clen + dlen
            if end > len(data):
                break  # truncated last record
            conn = data[start : start + clen].decode()
            yield RecordedFrame(recv_ns, conn, data[start + clen : end])
            pos = end
