"""The journal: an embedded SQLite database in WAL mode. Journal first, then apply.

Each actor opens its own :class:`Journal` (SQLite connections belong to one thread) and writes
only its own tables (single writer):

========================  ================  ==================================================
table                     written by        holds
========================  ================  ==================================================
``meta``                  the runtime       starting cash, run id
``intents``               PortfolioActor    each order it decided, with the funds it reserved
``fills``                 PortfolioActor    every fill applied to the books (unique fill_id)
``position_changes``      PortfolioActor    cash and position after each fill
``orders``                ExecutionActor    order state machine (PENDING → OPEN → terminal)
``equity``                PortfolioActor    equity and cash, at most once per second (market time)
``events``                any actor         risk events, shutdown markers, reconciliations
``rebalance_txns``        PortfolioActor    each rebalance transaction: risk version, state
``rebalance_legs``        PortfolioActor    its legs: order, reserved funds, state, filled
``rebalance_steps``       PortfolioActor    every step of every transaction, in order
========================  ================  ==================================================

The three ``rebalance_*`` tables (:mod:`cryptoj.portfolio.transaction`) are created when a
journal is opened, so journals written before them open unchanged (they simply hold no
transactions). A transaction step, the legs it touches, and the intent it opens or closes are
written in one SQLite transaction (:meth:`Journal.record_txn`).

Decimals are stored as text, so nothing is rounded by SQLite. A fill and the position change it
causes are one transaction: after a crash (even ``kill -9``) the books rebuilt from the journal are
exactly the books that were applied. ``fills.value`` is the venue's exact notional when it is
finer than 1e-8 (``Fill.value``, e.g. Coinbase's quote-sized buys), NULL otherwise; journals
written before the column existed get it when opened. ``orders.submitted`` is the order as the
ExecutionActor received it (JSON), so a process after a crash can send an order of unknown
outcome again under its id exactly as it was; NULL in older journals (added when opened).

Group commit (:mod:`cryptoj.journal_batch`): by default every write is its own transaction;
the deterministic runtime commits once per 64 market instants instead, and the threaded
runtime the PortfolioActor's writes once per mailbox batch (its sends held until the commit),
with the same rows in the same order and journal-first holding in every committed state.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Container, Sequence
from contextlib import AbstractContextManager
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from cryptoj.journal_batch import connect
from cryptoj.models.orders import Fill, OrderStatus, Side


class OrderLike(Protocol):
    """What :func:`order_row` reads of an order: a ``SubmitOrder`` or a rebalance leg."""

    @property
    def client_order_id(self) -> str: ...
    @property
    def product(self) -> str: ...
    @property
    def side(self) -> Side: ...
    @property
    def order_type(self) -> object: ...
    @property
    def quantity(self) -> Decimal: ...
    @property
    def limit_price(self) -> Decimal | None: ...
    @property
    def reason(self) -> str: ...


def order_row(order: OrderLike, ts: int) -> dict[str, Any]:
    """The columns an order shares between its ``orders`` row (:meth:`Journal.record_order`)
    and its ``intents`` row (:meth:`Journal.record_intent`, with the funds reserved added),
    journalled at ``ts``."""
    return {
        "client_order_id": order.client_order_id,
        "product": order.product,
        "side": str(order.side),
        "order_type": str(order.order_type),
        "quantity": order.quantity,
        "limit_price": order.limit_price,
        "reason": order.reason,
        "ts": ts,
    }


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS intents (
    client_order_id TEXT PRIMARY KEY, product TEXT NOT NULL, side TEXT NOT NULL,
    order_type TEXT NOT NULL, quantity TEXT NOT NULL, limit_price TEXT,
    reserved_cash TEXT NOT NULL, reserved_base TEXT NOT NULL,
    status TEXT NOT NULL, reason TEXT NOT NULL, ts INTEGER NOT NULL, closed_ts INTEGER);
CREATE TABLE IF NOT EXISTS fills (
    fill_id TEXT PRIMARY KEY, client_order_id TEXT NOT NULL, product TEXT NOT NULL,
    side TEXT NOT NULL, quantity TEXT NOT NULL, price TEXT NOT NULL, fee TEXT NOT NULL,
    liquidity TEXT NOT NULL, ts INTEGER NOT NULL, value TEXT);
CREATE TABLE IF NOT EXISTS position_changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, fill_id TEXT NOT NULL, product TEXT NOT NULL,
    quantity TEXT NOT NULL, average_price TEXT NOT NULL, cash TEXT NOT NULL, ts INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS orders (
    client_order_id TEXT PRIMARY KEY, product TEXT NOT NULL, side TEXT NOT NULL,
    order_type TEXT NOT NULL, quantity TEXT NOT NULL, limit_price TEXT,
    status TEXT NOT NULL, filled_quantity TEXT NOT NULL, venue_order_id TEXT,
    reason TEXT NOT NULL, created_ts INTEGER NOT NULL, updated_ts INTEGER NOT NULL,
    submitted TEXT);
CREATE TABLE IF NOT EXISTS equity (
    ts INTEGER PRIMARY KEY, equity TEXT NOT NULL, cash TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, ts INTEGER NOT NULL, actor TEXT NOT NULL,
    kind TEXT NOT NULL, detail TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rebalance_txns (
    txn_id TEXT PRIMARY KEY, kind TEXT NOT NULL, parent TEXT, params_version INTEGER NOT NULL,
    policy TEXT NOT NULL, state TEXT NOT NULL, cause TEXT NOT NULL,
    created_ts INTEGER NOT NULL, updated_ts INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS rebalance_legs (
    client_order_id TEXT PRIMARY KEY, txn_id TEXT NOT NULL, seq INTEGER NOT NULL,
    product TEXT NOT NULL, side TEXT NOT NULL, order_type TEXT NOT NULL, quantity TEXT NOT NULL,
    limit_price TEXT, reserved_cash TEXT NOT NULL, reserved_base TEXT NOT NULL,
    visible TEXT NOT NULL, beyond_depth INTEGER NOT NULL, reason TEXT NOT NULL,
    state TEXT NOT NULL, filled TEXT NOT NULL, outcome TEXT NOT NULL,
    cancel_requested INTEGER NOT NULL, timed_out INTEGER NOT NULL, updated_ts INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS rebalance_steps (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, txn_id TEXT NOT NULL, ts INTEGER NOT NULL,
    step TEXT NOT NULL, state TEXT NOT NULL, detail TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS orders_by_venue_order_id ON orders (venue_order_id);
"""


def _create_schema(db: sqlite3.Connection) -> None:
    """Create what is missing of the schema on a new connection."""
    db.executescript(_SCHEMA)
    # journals written before these columns existed get them: fills.value NULL (the notional
    # is quantity × price truncated to 1e-8, as it always was for them), orders.submitted NULL
    _add_column(db, "fills", "value")
    _add_column(db, "orders", "submitted")


def _add_column(db: sqlite3.Connection, table: str, column: str) -> None:
    """Add a TEXT ``column`` to ``table`` of a journal written before it existed (NULL there)."""
    columns = {r[1] for r in db.execute(f"PRAGMA table_info({table})").fetchall()}
    if column not in columns:
        db.execute(f"ALTER TABLE {table} ADD COLUMN {column} TEXT")


class Journal:
    """One connection to the journal database (shared with the thread's other journals on the
    file inside :func:`~cryptoj.journal_batch.shared_connections`)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = connect(str(path), _create_schema)
        self._db = self._conn.db
        self._wlock = self._conn.wlock  # the file's process-wide write lock
        self._query = self._conn.read
        self._closed = False

    def close(self) -> None:
        """Close the connection (committing its part of an open
        :func:`~cryptoj.journal_batch.step_batch` first); a second call does nothing."""
        if not self._closed:
            self._closed = True
            self._conn.release()

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """A write transaction: committed on success, rolled back on error (a savepoint of
        the open :func:`~cryptoj.journal_batch.step_batch`, if any)."""
        return self._conn.transaction()

    def _write(self, sql: str, args: Any = ()) -> sqlite3.Cursor:
        """One statement, in its own transaction or the open batch's."""
        return self._conn.write(sql, args)

    # -- meta ------------------------------------------------------------------------------

    def set_meta(self, key: str, value: str) -> None:
        """Set a meta value."""
        self._write("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def get_meta(self, key: str) -> str | None:
        """A meta value, or None."""
        row = self._query("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    # -- portfolio tables ------------------------------------------------------------------

    def record_intent(self, row: dict[str, Any]) -> None:
        """Journal an order decided by the portfolio and the funds reserved for it."""
        self._write(
            "INSERT INTO intents VALUES (:client_order_id, :product, :side, :order_type,"
            " :quantity, :limit_price, :reserved_cash, :reserved_base, 'open', :reason, :ts, NULL)",
            {k: (str(v) if isinstance(v, Decimal) else v) for k, v in row.items()},
        )

    def close_intent(self, client_order_id: str, status: str, ts: int) -> None:
        """Mark an intent closed (its reservation released)."""
        self._write(
            "UPDATE intents SET status = ?, closed_ts = ? WHERE client_order_id = ?",
            (status, ts, client_order_id),
        )

    def open_intents(self) -> list[dict[str, Any]]:
        """Intents whose reservation is still held."""
        return self._rows(
            "SELECT * FROM intents WHERE status = 'open' ORDER BY ts, client_order_id"
        )

    def has_fill(self, fill_id: str) -> bool:
        """True when this fill was already applied (:meth:`record_fill` checks it itself)."""
        return (
            self._query("SELECT 1 FROM fills WHERE fill_id = ?", (fill_id,)).fetchone() is not None
        )

    def record_fill(
        self, fill: Fill, quantity_after: Decimal, average_price: Decimal, cash_after: Decimal
    ) -> bool:
        """Journal a fill and the position change it causes, atomically; False (and nothing
        written) when the fill id is already journalled (a re-sent fill)."""
        with self.transaction() as db:
            cur = db.execute(
                "INSERT INTO fills (fill_id, client_order_id, product, side, quantity, price,"
                " fee, liquidity, ts, value) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (fill_id) DO NOTHING",
                (
                    fill.fill_id,
                    fill.client_order_id,
                    fill.product,
                    str(fill.side),
                    str(fill.quantity),
                    str(fill.price),
                    str(fill.fee),
                    fill.liquidity,
                    fill.ts,
                    None if fill.value is None else str(fill.value),
                ),
            )
            if cur.rowcount != 1:
                return False
            db.execute(
                "INSERT INTO position_changes (fill_id, product, quantity, average_price, cash, ts)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    fill.fill_id,
                    fill.product,
                    str(quantity_after),
                    str(average_price),
                    str(cash_after),
                    fill.ts,
                ),
            )
        return True

    def fills(self, client_order_id: str | None = None) -> list[Fill]:
        """Every journalled fill (of one order when given) in the order it was applied."""
        where, args = (
            ("", ())
            if client_order_id is None
            else (" WHERE client_order_id = ?", (client_order_id,))
        )
        rows = self._query(
            "SELECT fill_id, client_order_id, product, side, quantity, price, fee, liquidity, ts,"
            f" value FROM fills{where} ORDER BY rowid",
            args,
        ).fetchall()
        return [
            Fill(
                fill_id=r[0],
                client_order_id=r[1],
                product=r[2],
                side=Side(r[3]),
                quantity=Decimal(r[4]),
                price=Decimal(r[5]),
                fee=Decimal(r[6]),
                liquidity=r[7],
                ts=r[8],
                value=None if r[9] is None else Decimal(r[9]),
            )
            for r in rows
        ]

    def position_history(self) -> list[tuple[int, str, Decimal, Decimal]]:
        """(ts, product, quantity after, cash after) for every fill, in the order applied."""
        rows = self._query(
            "SELECT ts, product, quantity, cash FROM position_changes ORDER BY seq"
        ).fetchall()
        return [(int(r[0]), r[1], Decimal(r[2]), Decimal(r[3])) for r in rows]

    def filled_quantity(self, client_order_id: str) -> Decimal:
        """Sum of journalled fills of one order."""
        rows = self._query(
            "SELECT quantity FROM fills WHERE client_order_id = ?", (client_order_id,)
        ).fetchall()
        return sum((Decimal(r[0]) for r in rows), Decimal(0))

    def fill_totals(
        self, client_order_id: str, fill_ids: Container[str] | None = None
    ) -> tuple[Decimal, Decimal, Decimal]:
        """Σ quantity, Σ notional (``Fill.notional``) and Σ fee of one order's journalled fills
        (only those with an id in ``fill_ids`` when given)."""
        qty = value = fee = Decimal(0)
        for f in self.fills(client_order_id):
            if fill_ids is None or f.fill_id in fill_ids:
                qty += f.quantity
                value += f.notional
                fee += f.fee
        return qty, value, fee

    def last_fill_ts(self) -> int | None:
        """The ``ts`` of the newest journalled fill, or None."""
        row = self._query("SELECT MAX(ts) FROM fills").fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def last_market_ts(self) -> int | None:
        """The newest market time the journal saw (equity marks and fills), or None: where a
        restarted paper daemon resumes its replay."""
        row = self._query(
            "SELECT MAX(ts) FROM (SELECT MAX(ts) AS ts FROM equity UNION ALL "
            "SELECT MAX(ts) FROM fills)"
        ).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def record_equity(self, ts: int, equity: Decimal, cash: Decimal) -> None:
        """Journal the marked equity at ``ts`` (one row per market timestamp)."""
        self._write("INSERT OR REPLACE INTO equity VALUES (?, ?, ?)", (ts, str(equity), str(cash)))

    def equity_curve(self) -> list[tuple[int, Decimal]]:
        """(ts, equity) rows, oldest first."""
        rows = self._query("SELECT ts, equity FROM equity ORDER BY ts").fetchall()
        return [(int(r[0]), Decimal(r[1])) for r in rows]

    # -- execution table -------------------------------------------------------------------

    def record_order(self, row: dict[str, Any]) -> bool:
        """Journal a new order as PENDING; False if the id is already known (idempotent).
        ``row["submitted"]`` (optional): the whole order as it goes to the venue, so a later
        process can send exactly it again (:func:`cryptoj.execution.records.journal_order`)."""
        cur = self._write(
            "INSERT OR IGNORE INTO orders VALUES (:client_order_id, :product, :side, :order_type,"
            " :quantity, :limit_price, 'PENDING', '0', NULL, :reason, :ts, :ts, :submitted)",
            {"submitted": None}
            | {k: (str(v) if isinstance(v, Decimal) else v) for k, v in row.items()},
        )
        return cur.rowcount == 1

    def update_order(
        self,
        client_order_id: str,
        ts: int,
        *,
        status: OrderStatus | None = None,
        filled_quantity: Decimal | None = None,
        venue_order_id: str | None = None,
        reason: str | None = None,
        only_from: OrderStatus | None = None,
    ) -> None:
        """Update an order's state; fields left as None keep their value. With ``only_from``
        the row changes only while its status is that one (e.g. PENDING → OPEN, which must
        not undo a terminal status written first)."""
        self._write(
            "UPDATE orders SET status = COALESCE(?, status),"
            " filled_quantity = COALESCE(?, filled_quantity),"
            " venue_order_id = COALESCE(?, venue_order_id), reason = COALESCE(?, reason),"
            " updated_ts = ? WHERE client_order_id = ? AND status = COALESCE(?, status)",
            (
                None if status is None else str(status),
                None if filled_quantity is None else str(filled_quantity),
                venue_order_id,
                reason,
                ts,
                client_order_id,
                None if only_from is None else str(only_from),
            ),
        )

    def order(self, client_order_id: str) -> dict[str, Any] | None:
        """One order row, or None."""
        rows = self._rows("SELECT * FROM orders WHERE client_order_id = ?", (client_order_id,))
        return rows[0] if rows else None

    def order_by_venue_id(self, venue_order_id: str) -> dict[str, Any] | None:
        """The order row the venue knows as ``venue_order_id``, or None."""
        rows = self._rows("SELECT * FROM orders WHERE venue_order_id = ?", (venue_order_id,))
        return rows[0] if rows else None

    def orders(self, *, open_only: bool = False) -> list[dict[str, Any]]:
        """Order rows (only non-terminal ones with ``open_only``)."""
        where = " WHERE status IN ('PENDING', 'OPEN')" if open_only else ""
        return self._rows(f"SELECT * FROM orders{where} ORDER BY created_ts, client_order_id")

    # -- rebalance transactions ------------------------------------------------------------

    def record_txn(
        self,
        txn: dict[str, Any],
        legs: Sequence[dict[str, Any]],
        steps: Sequence[tuple[str, str, str]],
        *,
        ts: int,
        intents: Sequence[dict[str, Any]] = (),
        closed: tuple[str, str] | None = None,
    ) -> None:
        """Journal one transaction step atomically: the transaction row, the leg rows (both
        upserted), the steps ((step, state after it, detail) each), the intents of legs being
        sent and the intent a closing leg closes (``closed`` = (client order id, status))."""
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO rebalance_txns VALUES (:txn_id, :kind, :parent,"
                " :params_version, :policy, :state, :cause, :created_ts, :updated_ts)",
                txn,
            )
            for leg in legs:
                db.execute(
                    "INSERT OR REPLACE INTO rebalance_legs VALUES (:client_order_id, :txn_id,"
                    " :seq, :product, :side, :order_type, :quantity, :limit_price,"
                    " :reserved_cash, :reserved_base, :visible, :beyond_depth, :reason, :state,"
                    " :filled, :outcome, :cancel_requested, :timed_out, :updated_ts)",
                    leg,
                )
            if steps:  # one statement for all of them (rows in order: seq as one by one)
                db.execute(
                    "INSERT INTO rebalance_steps (txn_id, ts, step, state, detail) VALUES "
                    + ", ".join(["(?, ?, ?, ?, ?)"] * len(steps)),
                    [x for row in steps for x in (txn["txn_id"], ts, *row)],
                )
            for row in intents:
                db.execute(
                    "INSERT INTO intents VALUES (:client_order_id, :product, :side, :order_type,"
                    " :quantity, :limit_price, :reserved_cash, :reserved_base, 'open', :reason,"
                    " :ts, NULL)",
                    {k: (str(v) if isinstance(v, Decimal) else v) for k, v in row.items()},
                )
            if closed is not None:
                db.execute(
                    "UPDATE intents SET status = ?, closed_ts = ? WHERE client_order_id = ?",
                    (closed[1], ts, closed[0]),
                )

    def txns(self, *, open_only: bool = False) -> list[dict[str, Any]]:
        """Transaction rows, oldest first (only those not yet terminal with ``open_only``)."""
        where = (
            " WHERE state NOT IN ('COMMITTED', 'ROLLED_BACK', 'SUPERSEDED')" if open_only else ""
        )
        return self._rows(f"SELECT * FROM rebalance_txns{where} ORDER BY created_ts, rowid")

    def txn_legs(self, txn_id: str | None = None) -> list[dict[str, Any]]:
        """Leg rows (of one transaction when given), by transaction and sequence."""
        if txn_id is None:
            return self._rows("SELECT * FROM rebalance_legs ORDER BY txn_id, seq")
        return self._rows("SELECT * FROM rebalance_legs WHERE txn_id = ? ORDER BY seq", (txn_id,))

    def txn_steps(self, txn_id: str | None = None) -> list[dict[str, Any]]:
        """Transaction steps in the order they were journalled."""
        if txn_id is None:
            return self._rows("SELECT * FROM rebalance_steps ORDER BY seq")
        return self._rows("SELECT * FROM rebalance_steps WHERE txn_id = ? ORDER BY seq", (txn_id,))

    def intents(self) -> list[dict[str, Any]]:
        """Every intent, in the order journalled."""
        return self._rows("SELECT * FROM intents ORDER BY rowid")

    # -- events ----------------------------------------------------------------------------

    def record_event(self, ts: int, actor: str, kind: str, detail: str) -> None:
        """Journal a risk, shutdown or reconciliation event."""
        self._write(
            "INSERT INTO events (ts, actor, kind, detail) VALUES (?, ?, ?, ?)",
            (ts, actor, kind, detail),
        )

    def has_event(self, kind: str, details: Collection[str]) -> bool:
        """Whether an event of ``kind`` has one of ``details`` as its detail."""
        marks = ", ".join("?" * len(details))
        sql = f"SELECT 1 FROM events WHERE kind = ? AND detail IN ({marks}) LIMIT 1"
        return self._query(sql, (kind, *details)).fetchone() is not None

    def leg_cancel_requested(self, client_order_ids: Collection[str]) -> bool:
        """Whether the portfolio asked to cancel a rebalance leg of one of these ids."""
        marks = ", ".join("?" * len(client_order_ids))
        sql = (
            "SELECT 1 FROM rebalance_legs WHERE cancel_requested"
            f" AND client_order_id IN ({marks}) LIMIT 1"
        )
        return self._query(sql, tuple(client_order_ids)).fetchone() is not None

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Journalled events, oldest first."""
        if kind is None:
            return self._rows("SELECT * FROM events ORDER BY seq")
        return self._rows("SELECT * FROM events WHERE kind = ? ORDER BY seq", (kind,))

    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        cur = self._query(sql, args)
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
