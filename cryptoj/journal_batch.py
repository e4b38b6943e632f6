"""The journal's SQLite connections, and group commit.

By default every journal write is its own transaction. Inside ``with step_batch():`` the
calling thread's writes share transactions committed at the points the caller chooses
(:func:`commit_batch`) and when the block ends. Inside ``with shared_connections():`` the
:class:`~cryptoj.journal.Journal` objects one thread opens on one file share a single
connection, so the writes of several actors running in that thread (the deterministic
runtime) go into one transaction instead of committing each time the writer changes.

The deterministic runtime uses both: one transaction per 64 market instants (its
``instants_per_commit``); the threaded runtime uses :func:`step_batch` for one transaction per
mailbox batch of the PortfolioActor. See :func:`step_batch` for what is guaranteed and why
journal-first still holds.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

_WRITE_LOCKS: dict[str, threading.RLock] = {}
_WRITE_LOCKS_GUARD = threading.Lock()


def _write_lock(path: str) -> threading.RLock:
    """The process-wide write lock of a journal file (a new one for ``:memory:``).

    The actors' connections to one journal take turns on it before SQLite's own write lock:
    a writer that finds the file busy then waits exactly as long as the other's statement,
    instead of in SQLite's busy handler, which sleeps 1, 2, 5, 10 ... ms between retries.
    Other processes still meet SQLite's lock and its busy timeout.
    """
    if path == ":memory:":
        return threading.RLock()
    key = os.path.realpath(path)
    with _WRITE_LOCKS_GUARD:
        lock = _WRITE_LOCKS.get(key)
        if lock is None:
            lock = _WRITE_LOCKS[key] = threading.RLock()
        return lock


class _Batch(threading.local):
    """The calling thread's group commit: whether one is open, and the connection holding its
    open transaction (another connection commits it before it writes or reads)."""

    def __init__(self) -> None:
        self.active = False
        self.holder: Connection | None = None

    def commit(self) -> None:
        """Commit the open transaction, if any."""
        holder = self.holder
        if holder is not None:
            self.holder = None
            holder._end()


class _Shared(threading.local):
    """The calling thread's shared connections (file → connection) while sharing is on."""

    def __init__(self) -> None:
        self.depth = 0
        self.connections: dict[str, Connection] = {}


_BATCH = _Batch()
_SHARED = _Shared()


@contextmanager
def step_batch() -> Iterator[None]:
    """Group the calling thread's journal writes into transactions that end at the commit
    points the caller chooses (:func:`commit_batch`) and when the block ends, normally or by an
    exception; a nested block joins the outer one.

    What is guaranteed: the rows, their order and every value read back are exactly those of
    the same code without the block (each statement its own transaction), and what is durable
    at any time is a *prefix* of that statement sequence ending at a commit point. So after a
    kill the journal is a state the unbatched run also passed through, and journal-first (an
    order journalled before the venue is asked; a decision before its effects) holds in every
    durable state whenever it holds in the unbatched run. How:

    * one connection at a time holds the thread's open transaction; another connection that
      writes *or reads* commits it first, so rows are committed in the order written, a read
      sees every earlier write of the thread, and one thread never holds two SQLite write
      locks on one file (which would deadlock);
    * a :meth:`Connection.transaction` inside the block is a savepoint: on error it rolls back
      alone, as it would have on its own;
    * nothing is rolled back when the block ends with an exception: what the statements wrote
      is committed, as each autocommit would have been.

    The deterministic runtime commits at the end of a market instant (all the steps handled
    before its clock moves on), every ``instants_per_commit`` instants. Every message and
    paper-venue call inside them stays in the process, whose state dies with it just as the
    uncommitted rows do; a paper run resumed after a kill continues from the journal's last
    market time, the end of a committed instant.

    In the threaded runtime a message is acted on by another thread at once (before this
    thread's commit), so there a batch is used only with an outbox that holds the actor's sends
    until the commit (:mod:`cryptoj.runtime.threaded`, group commit: the PortfolioActor); the
    ExecutionActor calls a real venue from its handler right after journalling the order, so
    each of its writes stays its own transaction.
    """
    if _BATCH.active:
        yield
        return
    _BATCH.active = True
    try:
        yield
    finally:
        _BATCH.active = False
        _BATCH.commit()


def commit_batch() -> None:
    """A commit point of the calling thread's open :func:`step_batch`: commit what it holds so
    far and keep the batch open (a no-op without one)."""
    if _BATCH.holder is not None:
        _BATCH.commit()


@contextmanager
def shared_connections() -> Iterator[None]:
    """While the block runs, the journals this thread opens on one file share one connection
    (``:memory:`` excepted), so a :func:`step_batch` spanning several actors' writes is one
    transaction. Journals opened inside keep their connection after the block (it closes with
    the last of them); journals opened after it get connections of their own again."""
    _SHARED.depth += 1
    try:
        yield
    finally:
        _SHARED.depth -= 1
        if not _SHARED.depth:
            _SHARED.connections.clear()


class Connection:
    """One SQLite connection to a journal file (WAL mode, autocommit), with the file's
    process-wide write lock; shared by the journals of one thread in :func:`shared_connections`."""

    __slots__ = ("db", "key", "refs", "wlock")

    def __init__(self, db: sqlite3.Connection, wlock: threading.RLock, key: str | None) -> None:
        self.db = db
        self.wlock = wlock
        self.key = key
        self.refs = 1

    def write(self, sql: str, args: Any = ()) -> sqlite3.Cursor:
        """One statement: in the thread's :func:`step_batch` when one is open, otherwise in its
        own (autocommit) transaction, under the write lock."""
        if _BATCH.active:
            self._join()
            return self.db.execute(sql, args)
        with self.wlock:
            return self.db.execute(sql, args)

    def read(self, sql: str, args: Any = ()) -> sqlite3.Cursor:
        """A query, after another connection's open batch transaction is committed (a read sees
        every write made before it on this thread, batched or not)."""
        holder = _BATCH.holder
        if holder is not None and holder is not self:
            _BATCH.commit()
        return self.db.execute(sql, args)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: committed on success, rolled back on error. Inside a
        :func:`step_batch` it is a savepoint of the batch's transaction (rolled back alone on
        error, committed with the batch)."""
        if _BATCH.active:
            self._join()
            self.db.execute("SAVEPOINT txn")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK TO txn")
                self.db.execute("RELEASE txn")
                raise
            self.db.execute("RELEASE txn")
            return
        with self.wlock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    def release(self) -> None:
        """One journal less uses it; the last one closes it (committing its batch first)."""
        self.refs -= 1
        if self.refs > 0:
            return
        if _BATCH.holder is self:
            _BATCH.commit()
        if self.key is not None and _SHARED.connections.get(self.key) is self:
            del _SHARED.connections[self.key]
        self.db.close()

    def _join(self) -> None:
        """Hold the thread's batch transaction (committing another holder's first)."""
        if _BATCH.holder is self:
            return
        _BATCH.commit()
        self.wlock.acquire()
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self.wlock.release()
            raise
        _BATCH.holder = self

    def _end(self) -> None:
        """Commit the batch transaction and release the write lock."""
        try:
            self.db.execute("COMMIT")
        finally:
            self.wlock.release()


def connect(path: str, init: Callable[[sqlite3.Connection], None]) -> Connection:
    """A connection to the journal file ``path``: the thread's shared one inside
    :func:`shared_connections`, else a new one, on which ``init`` (the schema) runs first."""
    _BATCH.commit()  # creating the schema may write: nobody else may hold the lock
    key = None if path == ":memory:" else os.path.realpath(path)
    if _SHARED.depth and key is not None:
        shared = _SHARED.connections.get(key)
        if shared is not None:
            shared.refs += 1
            return shared
    db = sqlite3.connect(path, isolation_level=None, timeout=30.0)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    wlock = _write_lock(path)
    with wlock:
        init(db)
    conn = Connection(db, wlock, key)
    if _SHARED.depth and key is not None:
        _SHARED.connections[key] = conn
    return conn
