"""The audit trail in the embedded SQLite file: append-only in the database, hash-chained.

Triggers refuse UPDATE and DELETE on ``audit_log``, so the application (or a careless operator)
cannot rewrite history through SQL. Someone with the file can still drop the triggers; the chain
(see :mod:`collabgate.audit.chain`) and the ``audit_head`` row, written in the same transaction as
every append, are what reveal that afterwards.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from functools import partial
from typing import Any

import orjson

from collabgate.audit.chain import (
    GENESIS_HASH,
    PreparedEvent,
    link_canonical,
    parse_event_type,
    prepare_event,
)
from collabgate.audit.port import AuditEvent, AuditRecord
from collabgate.storage.sqlite import SqliteDatabase

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS audit_log (
        seq INTEGER PRIMARY KEY,
        occurred_at INTEGER NOT NULL,
        event_type TEXT NOT NULL,
        instance_id TEXT NOT NULL,
        user_id TEXT,
        resource_id TEXT,
        connection_id TEXT,
        details TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS audit_log_user_id ON audit_log (user_id)",
    "CREATE INDEX IF NOT EXISTS audit_log_resource_id ON audit_log (resource_id)",
    "CREATE INDEX IF NOT EXISTS audit_log_event_type ON audit_log (event_type)",
    "CREATE INDEX IF NOT EXISTS audit_log_occurred_at ON audit_log (occurred_at)",
    """CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: UPDATE refused'); END""",
    """CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: DELETE refused'); END""",
    # One row: the last (seq, hash) written, to detect a truncated tail.
    """CREATE TABLE IF NOT EXISTS audit_head (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        seq INTEGER NOT NULL,
        hash TEXT NOT NULL
    )""",
    f"INSERT OR IGNORE INTO audit_head (id, seq, hash) VALUES (1, 0, '{GENESIS_HASH}')",
    # The head only moves forward, and only onto a record that exists with that hash.
    """CREATE TRIGGER IF NOT EXISTS audit_head_forward_only BEFORE UPDATE ON audit_head
    WHEN NEW.seq < OLD.seq
      OR NOT EXISTS (SELECT 1 FROM audit_log WHERE seq = NEW.seq AND hash = NEW.hash)
    BEGIN SELECT RAISE(ABORT, 'audit_head may only move forward onto a stored record'); END""",
    """CREATE TRIGGER IF NOT EXISTS audit_head_no_delete BEFORE DELETE ON audit_head
    BEGIN SELECT RAISE(ABORT, 'audit_head cannot be deleted'); END""",
)

GUARD_TRIGGERS = (
    "audit_log_no_update",
    "audit_log_no_delete",
    "audit_head_forward_only",
    "audit_head_no_delete",
)

#: Rows per INSERT: 10 bound variables each, far below SQLite's limit (32,766).
ROWS_PER_STATEMENT = 500
_ROW = "(" + ", ".join("?" * 10) + ")"

_COLUMNS = (
    "seq, occurred_at, event_type, instance_id, user_id, resource_id, connection_id,"
    " details, prev_hash, hash"
)


class SqliteAuditStore:
    """:class:`~collabgate.audit.port.AuditStore` on a shared :class:`SqliteDatabase`.

    The chain is extended inside the writer thread, in the transaction that stores the rows, from
    the head read in that same transaction: the chain order is the commit order, whoever calls.
    :meth:`close` stops this store; the database belongs to whoever created it.
    """

    def __init__(self, database: SqliteDatabase, *, create_schema: bool = True) -> None:
        """``create_schema=False`` leaves the file untouched (verification of evidence)."""
        self._db = database
        self._closed = False
        if create_schema:
            database.add_schema(SCHEMA)

    async def append(self, events: Sequence[AuditEvent]) -> None:
        self._check_open()
        if not events:
            return
        # Encode on the caller's side: the writer thread only hashes and inserts.
        prepared = [prepare_event(event) for event in events]
        await self._db.write(partial(_append, prepared))

    async def records(self, after_seq: int = 0, limit: int = 10_000) -> list[AuditRecord]:
        self._check_open()
        return await self._db.read(partial(_records, after_seq, limit))

    async def head(self) -> tuple[int, str]:
        self._check_open()
        return await self._db.read(_head)

    async def missing_guards(self) -> list[str]:
        """Names of the append-only triggers that are not in the database (dropped?)."""
        self._check_open()
        present = set(await self._db.read(_trigger_names))
        return [name for name in GUARD_TRIGGERS if name not in present]

    async def close(self) -> None:
        self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the audit store is closed")


def _append(prepared: list[PreparedEvent], connection: sqlite3.Connection) -> None:
    seq, prev_hash = _head(connection)
    rows = []
    for columns, canonical in prepared:
        seq += 1
        digest = link_canonical(prev_hash, seq, canonical)
        rows.append((seq, *columns, prev_hash, digest))
        prev_hash = digest
    # Multi-row statements, not executemany: each row of that is another GIL hand-off for the
    # writer thread (see collabgate.storage.sqlite).
    for start in range(0, len(rows), ROWS_PER_STATEMENT):
        chunk = rows[start : start + ROWS_PER_STATEMENT]
        connection.execute(
            f"INSERT INTO audit_log ({_COLUMNS}) VALUES " + ", ".join([_ROW] * len(chunk)),
            [value for row in chunk for value in row],
        )
    connection.execute("UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1", (seq, prev_hash))


def _head(connection: sqlite3.Connection) -> tuple[int, str]:
    row = connection.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone()
    return (0, GENESIS_HASH) if row is None else (int(row[0]), str(row[1]))


def _trigger_names(connection: sqlite3.Connection) -> list[str]:
    rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
    return [str(name) for (name,) in rows]


def _records(after_seq: int, limit: int, connection: sqlite3.Connection) -> list[AuditRecord]:
    cursor = connection.execute(
        f"SELECT {_COLUMNS} FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, limit)
    )
    return [_record(row) for row in cursor]


def _record(row: tuple[Any, ...]) -> AuditRecord:
    """Decode a row as stored, without repairing anything: verification needs the raw values."""
    seq, occurred_at, event_type, instance_id, user_id, resource_id, connection_id = row[:7]
    details_text, prev_hash, digest = row[7:]
    event = AuditEvent(
        event_type=parse_event_type(event_type),
        occurred_at=occurred_at,
        instance_id=instance_id,
        user_id=user_id,
        resource_id=resource_id,
        connection_id=connection_id,
        details=_decode_details(details_text),
    )
    return AuditRecord(seq=seq, event=event, prev_hash=prev_hash, hash=digest)


def _decode_details(text: Any) -> dict[str, Any]:
    try:
        value = orjson.loads(text)
    except (orjson.JSONDecodeError, TypeError):
        return {"undecodable_details": str(text)}
    return value if isinstance(value, dict) else {"undecodable_details": str(text)}
