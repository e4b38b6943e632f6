"""WAL checkpoints off the actors' threads.

The journal runs SQLite in WAL mode with ``synchronous=NORMAL``: a commit appends to the WAL
and does not wait for the disk; the WAL is synced when it is checkpointed (its pages copied
into the database file, which is then synced too). By default SQLite checkpoints inside the
commit that takes the WAL past 1,000 pages, so every few hundred commits one actor's journal
write pays for copying the pages and two fsyncs (milliseconds on a shared disk) while a tick
waits behind it.

:class:`WalCheckpointer` runs a ``PASSIVE`` checkpoint (never waits for readers or writers)
every ``interval_s`` on a thread and connection of its own, so the WAL is restarted before a
writer's commit reaches the automatic threshold (at 1,000 ticks/s the actors write about 5,000
WAL frames a second, so the default 0.1 s keeps it near 500; a heavier load simply lets the
writers' own automatic checkpoints take over again). Durability does not change: a
committed transaction is in the WAL file either way (safe against a process kill); an OS crash
or power loss can lose the transactions committed since the last WAL sync, as with any
``synchronous=NORMAL`` WAL database.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from cryptoj.supervision.guard import ThreadBoard, ThreadGuard

STALL_S = 30.0  # no checkpoint call for this long: reported stalled


class WalCheckpointer:
    """A daemon thread checkpointing one SQLite database's WAL every ``interval_s``."""

    def __init__(
        self, path: str | Path, interval_s: float = 0.1, *, board: ThreadBoard | None = None
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s: expected > 0, got {interval_s}")
        self.path = str(path)
        self.interval_s = interval_s
        self.checkpoints = 0  # completed checkpoint calls
        self.busy = 0  # calls that could not finish (a reader or writer in the way)
        # frames in the WAL at the last checkpoint: about those written since the one before
        self.last_frames = 0
        self._stop = threading.Event()
        self.guard = ThreadGuard(
            "cryptoj-wal-checkpoint", "journal", board=board, stall_after_s=STALL_S
        )
        self._thread = threading.Thread(
            target=self.guard.run,
            args=(self._run, self._stop),
            name="cryptoj-wal-checkpoint",
            daemon=True,
        )

    def start(self) -> WalCheckpointer:
        """Start the thread."""
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the thread (after its current checkpoint) and close its connection."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _run(self) -> None:
        """Open a connection of its own and checkpoint until stopped (under the guard: a
        connection that cannot be opened, or any other error, is logged and retried after a
        backoff)."""
        db = sqlite3.connect(self.path, isolation_level=None, timeout=0.0)
        try:
            while not self._stop.wait(self.interval_s):
                self._checkpoint(db)
                self.guard.beat()
        finally:
            db.close()

    def _checkpoint(self, db: sqlite3.Connection) -> None:
        try:
            row = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.OperationalError:
            return  # busy or locked: the next round tries again
        self.checkpoints += 1
        if row is not None:  # (busy, frames in the WAL, frames checkpointed)
            self.busy += int(row[0])
            self.last_frames = int(row[1])


__all__ = ["WalCheckpointer"]
