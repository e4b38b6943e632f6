"""Read-only queries on the journal for status and metrics, and the journal-writable check.

Each call opens its own read-only connection (``mode=ro``; SQLite connections belong to one
thread and the HTTP server answers on many), so the ops endpoint never writes and never holds
a lock the actors need. Numbers are aggregated in SQL; decimals become floats (metrics only).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

NS_PER_DAY = 86_400_000_000_000
TERMINAL = ("FILLED", "CANCELLED", "REJECTED", "EXPIRED")


@contextmanager
def read_only(path: str | Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection to an existing journal (raises sqlite3.Error if there is none)."""
    uri = f"file:{quote(str(Path(path).resolve()))}?mode=ro"
    con = sqlite3.connect(uri, uri=True, timeout=2.0)
    try:
        yield con
    finally:
        con.close()


def journal_figures(path: str | Path) -> dict[str, Any]:
    """Orders by status, fills per product and side, the latest equity and today's loss."""
    with read_only(path) as db:
        orders = dict(db.execute("SELECT status, COUNT(*) FROM orders GROUP BY 1").fetchall())
        fills = [
            {
                "product": r[0],
                "side": r[1],
                "count": r[2],
                "notional": r[3] or 0.0,
                "fees": r[4] or 0.0,
            }
            for r in db.execute(
                "SELECT product, side, COUNT(*), SUM(CAST(quantity AS REAL) * CAST(price AS REAL)),"
                " SUM(CAST(fee AS REAL)) FROM fills GROUP BY 1, 2 ORDER BY 1, 2"
            )
        ]
        last = db.execute("SELECT ts, equity, cash FROM equity ORDER BY ts DESC LIMIT 1").fetchone()
        day: dict[str, Any] = {}
        if last is not None:
            # the UTC day convention (README "The UTC day"): 00:00 closes the previous day;
            # the reference is the last equity at or before the day's opening 00:00
            day_start = (int(last[0]) - 1) // NS_PER_DAY * NS_PER_DAY
            ref = (
                db.execute(
                    "SELECT equity FROM equity WHERE ts <= ? ORDER BY ts DESC LIMIT 1", (day_start,)
                ).fetchone()
                or db.execute(
                    "SELECT equity FROM equity WHERE ts > ? ORDER BY ts LIMIT 1", (day_start,)
                ).fetchone()
            )
            peak = db.execute(
                "SELECT MAX(CAST(equity AS REAL)) FROM equity WHERE ts > ?", (day_start,)
            ).fetchone()
            sod, eq = float(ref[0]), float(last[1])
            day = {
                "start_of_day_equity": sod,
                "peak_equity": max(sod, float(peak[0])),
                "daily_loss": (sod - eq) / sod if sod > 0 else 0.0,
            }
        events = dict(db.execute("SELECT kind, COUNT(*) FROM events GROUP BY 1").fetchall())
    return {
        "orders": orders,
        "fills": fills,
        "equity": None
        if last is None
        else {"ts": int(last[0]), "equity": float(last[1]), "cash": float(last[2])},
        "day": day,
        "events": events,
    }


def open_orders(path: str | Path, limit: int = 100) -> list[dict[str, Any]]:
    """Non-terminal orders of the ExecutionActor, oldest first."""
    return _dicts(
        path,
        "SELECT client_order_id, product, side, order_type, quantity, limit_price, status,"
        " filled_quantity, created_ts, reason FROM orders WHERE status IN ('PENDING', 'OPEN')"
        " ORDER BY created_ts, client_order_id LIMIT ?",
        (limit,),
    )


def recent_events(
    path: str | Path, kinds: tuple[str, ...] = (), limit: int = 20
) -> list[dict[str, Any]]:
    """The newest journalled events (of ``kinds`` when given), oldest first."""
    where = f" WHERE kind IN ({','.join('?' * len(kinds))})" if kinds else ""
    rows = _dicts(
        path,
        f"SELECT seq, ts, actor, kind, detail FROM events{where} ORDER BY seq DESC LIMIT ?",
        (*kinds, limit),
    )
    return rows[::-1]


def recent_orders(path: str | Path, limit: int = 20) -> list[dict[str, Any]]:
    """The orders changed last (any status, child orders included), newest first."""
    return _dicts(
        path,
        "SELECT client_order_id, product, side, order_type, quantity, limit_price, status,"
        " filled_quantity, created_ts, updated_ts, reason FROM orders"
        " ORDER BY updated_ts DESC, client_order_id DESC LIMIT ?",
        (limit,),
    )


def _dicts(path: str | Path, sql: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
    """The rows of one read-only query, each as a dict by column name."""
    with read_only(path) as db:
        cur = db.execute(sql, args)
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def equity_marks(path: str | Path, after: int | None = None) -> list[tuple[int, float]]:
    """The journal's equity marks (market time, equity), oldest first; only those after
    ``after`` when given (the primary key makes that a range read)."""
    with read_only(path) as db:
        rows = db.execute(
            "SELECT ts, CAST(equity AS REAL) FROM equity WHERE ts > ? ORDER BY ts",
            (-(2**63) if after is None else after,),
        ).fetchall()
    return [(int(ts), float(e)) for ts, e in rows]


def journal_writable(path: str | Path, min_free_mb: float) -> tuple[bool, str]:
    """Can the actors write the journal now? (file and folder writable, disk space, write lock)."""
    p = Path(path)
    if not p.is_file():
        return False, f"{p} does not exist"
    if not (os.access(p, os.W_OK) and os.access(p.parent, os.W_OK)):
        return False, f"{p} or its folder is not writable"
    free_mb = shutil.disk_usage(p.parent).free / 1e6
    if free_mb < min_free_mb:
        return False, f"only {free_mb:.0f} MB free next to {p} (need {min_free_mb:.0f})"
    uri = f"file:{quote(str(p.resolve()))}?mode=rw"
    try:
        con = sqlite3.connect(uri, uri=True, timeout=0.5, isolation_level=None)
    except sqlite3.Error as e:
        return False, f"cannot open {p}: {e}"
    try:
        con.execute("BEGIN IMMEDIATE")
        con.execute("ROLLBACK")
    except sqlite3.OperationalError as e:
        if "locked" in str(e) or "busy" in str(e):
            return True, f"writable (busy), {free_mb:.0f} MB free"
        return False, f"{p}: {e}"
    finally:
        con.close()
    return True, f"writable, {free_mb:.0f} MB free"


__all__ = [
    "equity_marks",
    "journal_figures",
    "journal_writable",
    "open_orders",
    "read_only",
    "recent_events",
    "recent_orders",
]
