"""Trace recorder: one JSON line per message delivery, dead letter and supervision event.

File format (JSON Lines, UTF-8, one object per line, keys in this order; optional keys omitted):

``seq``    int, 1-based position in the trace (per process run)
``ts``     int, time of the event in ns since the epoch, from the injected clock
``kind``   ``deliver`` (a message was handled), ``dead`` (dead letter: receiver dead or restarting,
           or left in a crashed actor's mailbox), ``exit`` (an actor stopped; ``note`` gives why),
           ``start`` (an actor started; ``note`` gives its generation)
``src``    sender name (``venue``, ``main``, ``timer`` for outside sources)
``dst``    receiver name
``type``   message type name
``id``     message id; ``corr`` correlation id (shared by everything one market event or command
           caused); ``cause`` id of the message being handled when this one was sent
``msg``    the message itself, msgspec-JSON (``type`` tag plus fields; Decimals as strings)
``dur_ns`` handling time and ``wait_ns`` mailbox wait, wall-clock ns, threaded runtime only
``note``   free text (exit reason, dead-letter reason)

Files rotate when they exceed ``max_bytes``: ``trace.jsonl`` → ``trace.jsonl.1`` → … up to
``max_files`` rotated files; the oldest is deleted, so disk use is bounded by
``(max_files + 1) × max_bytes``. Messages never contain secrets (credentials live only in the venue
client), so nothing needs redacting here.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import msgspec

from cryptoj.models.base import Message
from cryptoj.supervision.guard import ThreadBoard, ThreadGuard


class TraceLine(msgspec.Struct, omit_defaults=True, gc=False):
    """One trace record (see the module docstring); ``msg`` is the message itself."""

    seq: int
    ts: int
    kind: str
    src: str
    dst: str
    type: str
    id: str = ""
    corr: str = ""
    cause: str = ""
    msg: Any = None
    dur_ns: int | None = None
    wait_ns: int | None = None
    note: str = ""


_ENCODER = msgspec.json.Encoder(decimal_format="string")
#: Buffered bytes are written to the file beyond this size, and at least every FLUSH_S seconds.
BUFFER_BYTES = 256 * 1024
FLUSH_S = 1.0


def encode_message(message: Message) -> bytes:
    """The JSON form of a message, as stored in the ``msg`` field."""
    return _ENCODER.encode(message)


class TraceWriter:
    """Appends trace lines to a size-rotated JSONL file; safe to call from several threads.

    Lines are encoded in one msgspec call each into a buffer under a lock (so lines from
    different threads never interleave or tear) and written straight to the OS (an unbuffered
    file) when the buffer exceeds :data:`BUFFER_BYTES`, when the last write is older than
    :data:`FLUSH_S`, and on ``flush``, rotation and ``close``; a small flusher thread writes out
    what waits when no record comes, so a ``kill -9`` loses at most the last :data:`FLUSH_S` of
    the trace. The journal, not the trace, is the record the daemon recovers from.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        max_bytes: int = 50_000_000,
        max_files: int = 5,
        fresh: bool = False,
        board: ThreadBoard | None = None,
    ) -> None:
        """Open ``path`` for appending; ``fresh`` first deletes it and its rotated files;
        ``board``: where the flusher thread is reported (the process-wide one by default)."""
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if fresh:
            self.path.unlink(missing_ok=True)
            for old in self.path.parent.glob(self.path.name + ".*"):
                if old.name[len(self.path.name) + 1 :].isdigit():
                    old.unlink(missing_ok=True)
        self.max_bytes = max_bytes
        self.max_files = max_files
        self._lock = threading.Lock()
        self._file = open(self.path, "ab", buffering=0)  # noqa: SIM115 - closed in close()
        self._size = self._file.tell()
        self._buf = bytearray()
        self._last_write = time.monotonic()
        self._seq = 0
        self.records = 0
        self._closed = threading.Event()
        self.guard = ThreadGuard("trace-flush", "trace", board=board, stall_after_s=30.0)
        self._flusher = threading.Thread(
            target=self.guard.run,
            args=(self._flush_loop, self._closed),
            name=f"trace-flush:{self.path.name}",
            daemon=True,
        )
        self._flusher.start()

    def _flush_loop(self) -> None:
        """Write out buffered lines at least every FLUSH_S while the writer is open (under a
        guard: an error is logged and counted, and the loop restarts after a backoff)."""
        while not self._closed.wait(FLUSH_S / 2):
            self._flush_due()
            self.guard.beat()

    def _flush_due(self) -> None:
        """Write the buffer out if nothing was written for ``FLUSH_S / 2``."""
        with self._lock:
            if self._buf and time.monotonic() - self._last_write >= FLUSH_S / 2:
                self._write()

    def record(
        self,
        kind: str,
        ts: int,
        src: str,
        dst: str,
        message: Message,
        msg_id: str = "",
        corr: str = "",
        cause: str = "",
        dur_ns: int | None = None,
        wait_ns: int | None = None,
        note: str = "",
    ) -> None:
        """Write one record."""
        with self._lock:
            self._seq += 1
            line = TraceLine(
                self._seq,
                ts,
                kind,
                src,
                dst,
                type(message).__name__,
                msg_id,
                corr,
                cause,
                message,
                dur_ns,
                wait_ns,
                note,
            )
            buf = self._buf
            before = len(buf)
            _ENCODER.encode_into(line, buf, -1)
            buf.append(10)
            self._size += len(buf) - before
            self.records += 1
            if self._size >= self.max_bytes:
                self._write()
                self._rotate()
            elif len(buf) >= BUFFER_BYTES or time.monotonic() - self._last_write >= FLUSH_S:
                self._write()

    def _write(self) -> None:
        view = memoryview(self._buf)
        while view:  # an unbuffered write may take part of it
            view = view[self._file.write(view) or 0 :]
        view.release()
        self._buf.clear()
        self._last_write = time.monotonic()

    def _rotate(self) -> None:
        self._file.close()
        oldest = self.path.with_name(f"{self.path.name}.{self.max_files}")
        if oldest.exists():
            oldest.unlink()
        for i in range(self.max_files - 1, 0, -1):
            src = self.path.with_name(f"{self.path.name}.{i}")
            if src.exists():
                os.replace(src, self.path.with_name(f"{self.path.name}.{i + 1}"))
        os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        self._file = open(self.path, "ab", buffering=0)  # noqa: SIM115
        self._size = 0

    def flush(self) -> None:
        """Push buffered lines to the OS."""
        with self._lock:
            if not self._file.closed:
                self._write()

    def close(self) -> None:
        """Flush and close the file (idempotent); stops the flusher thread."""
        self._closed.set()
        with self._lock:
            if not self._file.closed:
                self._write()
                os.fsync(self._file.fileno())
                self._file.close()
        if self._flusher is not threading.current_thread():
            self._flusher.join(timeout=5)
