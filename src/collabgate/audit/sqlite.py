"""The audit trail in the embedded SQLite file: append-only in the database, hash-chained.

Triggers refuse UPDATE and DELETE on ``audit_log``, so the application (or a careless operator)
cannot rewrite history through SQL. Someone with the file can still drop the triggers; the chain
(see :mod:`collabgate.audit.chain`) and the ``audit_head`` row, written in the same transaction as
every append, are what reveal that afterwards.

Finding a user's or a resource's records: query the views ``audit_log_by_user`` and
``audit_log_by_resource`` (``SELECT * FROM audit_log_by_user WHERE user_id = ? ORDER BY seq``):
same columns as ``audit_log``, served by an index. Those indexes are tables of their own
(``audit_user_index``, ``audit_resource_index``), filled in bulk, not secondary indexes on
``audit_log``: one of those takes every record at a random position, so each record of a commit
dirtied a page of its own in each of them, and the WAL receives every dirtied page whole — half
of what storing an update cost (bench/sqlite_writes.py). Here a record enters them in the same
transaction as the ``index_rows``-th record after it, with all the records in between, sorted,
so each page is written once per fold; the views add the few records not folded yet (read by
``seq``, the table's own key), so they always show every record. Each start folds what is left.
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
from collabgate.storage.sqlite import SqliteDatabase, fold_when_due

#: Rows per INSERT: 10 bound variables each, far below SQLite's limit (32,766).
ROWS_PER_STATEMENT = 500

#: Records after the last fold that make an append fold them into the index tables: several
#: per user and resource in each fold, so that a page of an index table is written once for many.
INDEX_ROWS = 16384

_COLUMN_NAMES = (
    "seq",
    "occurred_at",
    "event_type",
    "instance_id",
    "user_id",
    "resource_id",
    "connection_id",
    "details",
    "prev_hash",
    "hash",
)
_COLUMNS = ", ".join(_COLUMN_NAMES)
_ROW = "(" + ", ".join("?" * len(_COLUMN_NAMES)) + ")"


def _view_columns(key: str, source: str) -> str:
    """``audit_log``'s columns, with ``<key>_id`` taken from ``source``: the index table in the
    indexed half of a view, so that a condition on it is answered by that table's key."""
    return ", ".join(
        f"{source}.{name} AS {name}" if name == f"{key}_id" else f"a.{name}"
        for name in _COLUMN_NAMES
    )


#: Index every record after the index head, then move the head to the last record.
_FOLD = (
    *(
        f"INSERT INTO audit_{key}_index ({key}_id, seq) SELECT {key}_id, seq FROM audit_log"
        f" WHERE seq > (SELECT seq FROM audit_index_head WHERE id = 1) AND {key}_id IS NOT NULL"
        f" ORDER BY {key}_id, seq"
        for key in ("user", "resource")
    ),
    "UPDATE audit_index_head SET seq = (SELECT coalesce(max(seq), 0) FROM audit_log) WHERE id = 1",
)

_LOG_SCHEMA = (
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
    # Files written before the index tables had these as secondary indexes.
    "DROP INDEX IF EXISTS audit_log_user_id",
    "DROP INDEX IF EXISTS audit_log_resource_id",
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

INDEX_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS audit_user_index (
        user_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        PRIMARY KEY (user_id, seq)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS audit_resource_index (
        resource_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        PRIMARY KEY (resource_id, seq)
    ) WITHOUT ROWID""",
    # One row: every record up to seq is in both index tables.
    """CREATE TABLE IF NOT EXISTS audit_index_head (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        seq INTEGER NOT NULL
    )""",
    "INSERT OR IGNORE INTO audit_index_head (id, seq) VALUES (1, 0)",
    *(
        f"""CREATE VIEW IF NOT EXISTS audit_log_by_{key} AS
        SELECT {_view_columns(key, "i")} FROM audit_{key}_index i JOIN audit_log a ON a.seq = i.seq
        UNION ALL
        SELECT {_view_columns(key, "a")} FROM audit_log a
        WHERE a.seq > (SELECT seq FROM audit_index_head WHERE id = 1)"""
        for key in ("user", "resource")
    ),
    *_FOLD,  # each start folds what the last run left
)

SCHEMA = (*_LOG_SCHEMA, *INDEX_SCHEMA)

GUARD_TRIGGERS = (
    "audit_log_no_update",
    "audit_log_no_delete",
    "audit_head_forward_only",
    "audit_head_no_delete",
)


class SqliteAuditStore:
    """:class:`~collabgate.audit.port.AuditStore` on a shared :class:`SqliteDatabase`.

    The chain is extended inside the writer thread, in the transaction that stores the rows, from
    the head read in that same transaction: the chain order is the commit order, whoever calls.
    :meth:`close` stops this store; the database belongs to whoever created it.
    """

    def __init__(
        self, database: SqliteDatabase, *, create_schema: bool = True, index_rows: int = INDEX_ROWS
    ) -> None:
        """``create_schema=False`` leaves the file untouched (verification of evidence)."""
        if index_rows < 1:
            raise ValueError(f"index_rows must be at least 1 (got {index_rows})")
        self._db = database
        self._closed = False
        self._index_rows = index_rows
        if create_schema:
            database.add_schema(SCHEMA)

    @property
    def database(self) -> SqliteDatabase:
        return self._db

    async def append(self, events: Sequence[AuditEvent]) -> None:
        self._check_open()
        if not events:
            return
        # Encode on the caller's side: the writer thread only hashes and inserts.
        prepared = [prepare_event(event) for event in events]
        await self._db.write(partial(_append, prepared, index_rows=self._index_rows))

    def append_in_transaction(
        self, connection: sqlite3.Connection, prepared: list[PreparedEvent]
    ) -> None:
        """Chain ``prepared`` in the writer's transaction in progress, for a write that must be
        durable with its records or not at all (a document update: documents/sqlite.py)."""
        _append(prepared, connection, index_rows=self._index_rows)

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


def _append(
    prepared: list[PreparedEvent], connection: sqlite3.Connection, *, index_rows: int = INDEX_ROWS
) -> None:
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
    (indexed,) = connection.execute("SELECT seq FROM audit_index_head WHERE id = 1").fetchone()
    fold_when_due(
        connection,
        "fold_audit_index",
        _fold_index,
        waiting=seq - indexed,
        added=len(prepared),
        every=index_rows,
        failed_event="audit_index_fold_failed",
        unindexed=seq - indexed,
    )


def _fold_index(connection: sqlite3.Connection) -> None:
    for statement in _FOLD:
        connection.execute(statement)


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
