"""The audit trail in PostgreSQL: append-only, hash-chained, ONE chain for every gateway instance.

A document update's record (``DOCUMENT_UPDATED``) is chained in the update's own transaction
(:meth:`PostgresAuditStore.append_in_transaction`, called from the documents lane), so the update
is durable with its record or not at all. That transaction then holds the head lock from its
chaining to its commit, like an append of the audit lane. A table of pending records, chained
later by the audit lane, kept document commits off that lock but measured slower
(docs/performance.md, "An update and its audit record in one transaction").

How appends stay one chain across instances: every append transaction first locks the single
``audit_head`` row ``FOR UPDATE``, reads the last (seq, hash) there, chains its events onto it,
inserts them and moves the head, all before COMMIT. A second instance's append waits on that row
lock and then continues from the new head, so the chain order is the commit order, whoever calls.
Appends go through the ``audit`` lane of the group-commit writer, so all the events one instance
has pending share one lock, one insert and one commit.

Append-only in the database: triggers refuse UPDATE, DELETE and TRUNCATE on ``audit_log`` (and on
each monthly partition), on ``audit_head`` and on ``audit_retention``. Someone who owns the tables
can drop the triggers; the chain and the head row reveal tampering afterwards, and
:meth:`PostgresAuditStore.missing_guards` reports missing or disabled triggers. For a deployment
with separate roles, the application role should hold only ``SELECT, INSERT`` on ``audit_log``,
``SELECT, UPDATE`` on ``audit_head``, ``SELECT`` on ``audit_retention`` and ``EXECUTE`` on
``collabgate_audit_ensure_partitions``; run retention with the owner role (see migration 0002).

Partitions and retention: ``audit_log`` is partitioned by month of ``recorded_at`` (PostgreSQL's
clock under the head lock, never moving backwards), so the oldest months always hold a prefix of
the chain. :meth:`PostgresAuditStore.drop_expired_partitions` drops whole months older than the
retention and records a *retention anchor* (the last dropped seq and its hash) from which
:func:`collabgate.audit.verify.verify_store` starts. Missing months are created on write (and ahead
of time by ``collabgate migrate``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, Final

import asyncpg
import asyncpg.exceptions as pg_errors
import orjson

from collabgate.audit.chain import (
    GENESIS_HASH,
    PreparedEvent,
    VerifyReport,
    link_canonical,
    parse_event_type,
    prepare_event,
)
from collabgate.audit.port import AuditEvent, AuditRecord
from collabgate.audit.verify import verify_store
from collabgate.storage.postgres import Connection, PostgresDatabase

LANE: Final = "audit"
#: Months of partitions created ahead of the one being written.
PARTITIONS_AHEAD: Final = 2
DEFAULT_RETENTION_YEARS: Final = 10

#: Append-only triggers each table must have, enabled.
GUARD_TRIGGERS: Final[dict[str, tuple[str, ...]]] = {
    "audit_log": ("audit_log_no_update", "audit_log_no_delete", "audit_log_no_truncate"),
    "audit_head": ("audit_head_forward_only", "audit_head_no_delete", "audit_head_no_truncate"),
    "audit_retention": (
        "audit_retention_no_update",
        "audit_retention_no_delete",
        "audit_retention_no_truncate",
    ),
}
#: Triggers each monthly partition must have (row triggers are cloned, TRUNCATE is created).
PARTITION_TRIGGERS: Final = GUARD_TRIGGERS["audit_log"]

_PARTITION_NAME = re.compile(r"^audit_log_(\d{4})_(\d{2})$")

_COLUMNS = (
    "seq, occurred_at, event_type, instance_id, user_id, resource_id, connection_id,"
    " details, prev_hash, hash"
)
_LOCK_HEAD = (
    "SELECT seq, hash, greatest(recorded_at, clock_timestamp())"
    " FROM audit_head WHERE id = 1 FOR UPDATE"
)
_INSERT = f"""
    INSERT INTO audit_log (recorded_at, {_COLUMNS})
    SELECT $1, r.*
    FROM unnest(
        $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
        $9::text[], $10::text[], $11::text[]
    ) AS r
"""
_MOVE_HEAD = "UPDATE audit_head SET seq = $1, hash = $2, recorded_at = $3 WHERE id = 1"
_ENSURE_PARTITIONS = "SELECT name FROM collabgate_audit_ensure_partitions($1, $2) AS name"
_PARTITIONS = """
    SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = 'audit_log'::regclass ORDER BY c.relname
"""


class AuditRetentionError(RuntimeError):
    """Retention refused to drop partitions (nothing was dropped); the message says why."""


@dataclass(frozen=True, slots=True)
class RetentionResult:
    """What one retention run did."""

    cutoff: datetime  # partitions ending at or before this instant were expired
    dropped: list[str]  # partition names, oldest first
    anchor: tuple[int, str] | None  # where verification now starts (None: from the genesis)


class PostgresAuditStore:
    """:class:`~collabgate.audit.port.AuditStore` on a shared :class:`PostgresDatabase`.

    :meth:`close` stops this store; the database belongs to whoever created it. Raises
    :class:`~collabgate.storage.postgres.PostgresUnavailableError` (a ``ConnectionError``) while
    PostgreSQL is away, which the audit trail answers by buffering and retrying.
    """

    def __init__(self, database: PostgresDatabase) -> None:
        self._db = database
        self._closed = False
        self._months: set[tuple[int, int]] = set()  # (year, month) partitions known to exist

    # --- the port ----------------------------------------------------------------------------

    async def append(self, events: Sequence[AuditEvent]) -> None:
        self._check_open()
        if not events:
            return
        # Encode on the caller's side: the writer only chains and inserts.
        prepared = [prepare_event(event) for event in events]
        await self._db.write_many(self._append_batches, prepared, lane=LANE)

    async def records(self, after_seq: int = 0, limit: int = 10_000) -> list[AuditRecord]:
        self._check_open()
        return await self._db.read(partial(_records, after_seq, limit))

    async def head(self) -> tuple[int, str]:
        self._check_open()
        return await self._db.read(_head)

    async def close(self) -> None:
        self._closed = True

    # --- verification and operations ---------------------------------------------------------

    async def retention_anchor(self) -> tuple[int, str] | None:
        """(seq, hash) of the last record dropped by retention; verification starts after it."""
        self._check_open()
        return await self._db.read(_retention_anchor)

    async def missing_guards(self) -> list[str]:
        """Append-only triggers that are missing or disabled (dropped by someone?)."""
        self._check_open()
        return await self._db.read(_missing_guards)

    async def ensure_partitions(self, months_ahead: int = PARTITIONS_AHEAD) -> list[str]:
        """Create this month's partition and ``months_ahead`` more when missing; return new names."""
        self._check_open()
        return await self._db.write(partial(_ensure_partitions, months_ahead), lane=LANE)

    async def drop_expired_partitions(
        self,
        retention_years: int = DEFAULT_RETENTION_YEARS,
        *,
        now: datetime | None = None,
        dry_run: bool = False,
    ) -> RetentionResult:
        """Drop every monthly partition whose rows were all recorded over ``retention_years`` ago.

        Whole partitions only (the one deletion the trail allows), in one transaction holding the
        head lock, with a retention anchor recorded so the rest still verifies. Needs the table
        owner's rights. Raises :class:`AuditRetentionError`, dropping nothing, when the expired
        months do not hold a prefix of the chain (rows were moved: investigate, don't force).
        ``dry_run`` makes the same checks and reports what would be dropped, dropping nothing.
        """
        self._check_open()
        if retention_years < 1:
            raise ValueError(f"retention_years must be at least 1 (got {retention_years})")
        cutoff = _years_before(now or datetime.now(UTC), retention_years)
        operation = partial(_drop_expired, cutoff, retention_years, dry_run)
        return await self._db.write(operation, lane=LANE)

    # --- internals ---------------------------------------------------------------------------

    @property
    def database(self) -> PostgresDatabase:
        return self._db

    async def append_in_transaction(
        self, connection: Connection, prepared: list[PreparedEvent]
    ) -> None:
        """Chain ``prepared`` in the caller's transaction, for a write that must be durable
        with its records or not at all (a document update: documents/postgres.py). It takes
        the head lock, which that transaction then holds until it ends."""
        await self._append_batches(connection, [prepared])

    async def _append_batches(
        self, connection: Connection, batches: list[list[PreparedEvent]]
    ) -> Sequence[None]:
        """Chain every queued batch onto the locked head and store them with one insert."""
        # The month's partition is made before the head lock: creating it locks audit_log,
        # which a document transaction waiting for the head may already hold (a deadlock).
        await self._ensure_month(connection, datetime.now(UTC))
        row = await connection.fetchrow(_LOCK_HEAD)
        if row is None:
            raise RuntimeError("audit_head has no row: the schema is damaged")
        seq, prev_hash, recorded_at = int(row[0]), str(row[1]), row[2]
        await self._ensure_month(connection, recorded_at)
        columns: list[list[Any]] = [[] for _ in range(10)]
        for batch in batches:
            for values, canonical in batch:
                seq += 1
                digest = link_canonical(prev_hash, seq, canonical)
                for column, value in zip(columns, (seq, *values, prev_hash, digest), strict=True):
                    column.append(value)
                prev_hash = digest
        try:
            await connection.execute(_INSERT, recorded_at, *columns)
        except pg_errors.CheckViolationError:
            self._months.clear()  # "no partition of relation": a cached month is gone; re-check
            raise
        await connection.execute(_MOVE_HEAD, seq, prev_hash, recorded_at)
        return [None] * len(batches)

    async def _ensure_month(self, connection: Connection, recorded_at: datetime) -> None:
        month = (recorded_at.year, recorded_at.month)
        if month not in self._months:
            await connection.fetch(_ENSURE_PARTITIONS, recorded_at, PARTITIONS_AHEAD)
            self._months.add(month)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the audit store is closed")


# --- encoding and decoding -------------------------------------------------------------------------


def _record(row: asyncpg.Record) -> AuditRecord:
    """Decode a row as stored, without repairing anything: verification needs the raw values."""
    event = AuditEvent(
        event_type=parse_event_type(row["event_type"]),
        occurred_at=row["occurred_at"],
        instance_id=row["instance_id"],
        user_id=row["user_id"],
        resource_id=row["resource_id"],
        connection_id=row["connection_id"],
        details=_decode_details(row["details"]),
    )
    return AuditRecord(seq=row["seq"], event=event, prev_hash=row["prev_hash"], hash=row["hash"])


def _decode_details(text: Any) -> dict[str, Any]:
    try:
        value = orjson.loads(text)
    except (orjson.JSONDecodeError, TypeError):
        return {"undecodable_details": str(text)}
    return value if isinstance(value, dict) else {"undecodable_details": str(text)}


# --- reads -----------------------------------------------------------------------------------------


async def _records(after_seq: int, limit: int, connection: Connection) -> list[AuditRecord]:
    rows = await connection.fetch(
        f"SELECT {_COLUMNS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2", after_seq, limit
    )
    return [_record(row) for row in rows]


async def _head(connection: Connection) -> tuple[int, str]:
    row = await connection.fetchrow("SELECT seq, hash FROM audit_head WHERE id = 1")
    return (0, GENESIS_HASH) if row is None else (int(row[0]), str(row[1]))


async def _retention_anchor(connection: Connection) -> tuple[int, str] | None:
    row = await connection.fetchrow(
        "SELECT anchor_seq, anchor_hash FROM audit_retention"
        " ORDER BY anchor_seq DESC, id DESC LIMIT 1"
    )
    if row is None or int(row[0]) == 0:
        return None
    return int(row[0]), str(row[1])


async def _missing_guards(connection: Connection) -> list[str]:
    rows = await connection.fetch(
        """
        SELECT c.relname, t.tgname, t.tgenabled IN ('O', 'A') AS enabled
        FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
        WHERE NOT t.tgisinternal
          AND (c.relname = ANY($1::text[])
               OR c.oid IN (SELECT inhrelid FROM pg_inherits
                            WHERE inhparent = 'audit_log'::regclass))
        """,
        list(GUARD_TRIGGERS),
    )
    present = {(str(row[0]), str(row[1])): bool(row[2]) for row in rows}
    partitions = [str(row[0]) for row in await connection.fetch(_PARTITIONS)]
    expected = [(table, name) for table, names in GUARD_TRIGGERS.items() for name in names]
    expected += [(table, name) for table in partitions for name in PARTITION_TRIGGERS]
    problems = []
    for table, name in expected:
        where = "" if table in GUARD_TRIGGERS else f" on {table}"
        if (table, name) not in present:
            problems.append(f"{name}{where}")
        elif not present[(table, name)]:
            problems.append(f"{name}{where} (disabled)")
    return problems


# --- partitions and retention ----------------------------------------------------------------------


async def _ensure_partitions(months_ahead: int, connection: Connection) -> list[str]:
    rows = await connection.fetch(
        "SELECT name FROM collabgate_audit_ensure_partitions(now(), $1) AS name", months_ahead
    )
    return [str(row[0]) for row in rows]


def _years_before(moment: datetime, years: int) -> datetime:
    """The same calendar instant ``years`` earlier (29 February becomes the 28th)."""
    moment = moment.astimezone(UTC)
    try:
        return moment.replace(year=moment.year - years)
    except ValueError:
        return moment.replace(year=moment.year - years, day=28)


def _partition_end(name: str) -> datetime | None:
    """The first instant after the month a partition holds (None for a name not ours)."""
    match = _PARTITION_NAME.match(name)
    if match is None:
        return None
    year, month = int(match[1]), int(match[2])
    return datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)


async def _seq_bound(connection: Connection, partition: str, bound: str) -> int | None:
    value = await connection.fetchval(f'SELECT {bound}(seq) FROM "{partition}"')
    return None if value is None else int(value)


async def _drop_expired(
    cutoff: datetime, retention_years: int, dry_run: bool, connection: Connection
) -> RetentionResult:
    """One retention run, inside the audit lane's transaction (holding the head lock)."""
    head = await connection.fetchrow("SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE")
    if head is None:
        raise RuntimeError("audit_head has no row: the schema is damaged")
    names = [str(row[0]) for row in await connection.fetch(_PARTITIONS)]
    expired = [name for name in names if (end := _partition_end(name)) and end <= cutoff]
    if not expired:
        return RetentionResult(cutoff, [], await _retention_anchor(connection))
    kept = [name for name in names if name not in expired]
    anchor = await _new_anchor(connection, expired, kept)
    if anchor is None:  # the expired months were empty: the anchor does not move
        anchor = await _retention_anchor(connection) or (0, GENESIS_HASH)
    result = RetentionResult(cutoff, expired, anchor if anchor[0] else None)
    if dry_run:
        return result
    await connection.execute(
        "INSERT INTO audit_retention (retention_years, cutoff, partitions, anchor_seq,"
        " anchor_hash, head_seq, head_hash) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        retention_years,
        cutoff,
        expired,
        anchor[0],
        anchor[1],
        int(head[0]),
        str(head[1]),
    )
    for name in expired:
        await connection.execute(f'DROP TABLE "{name}"')
    return result


async def _new_anchor(
    connection: Connection, expired: list[str], kept: list[str]
) -> tuple[int, str] | None:
    """The last record in the expired partitions, checked to end a prefix of the chain."""
    lasts = [(await _seq_bound(connection, name, "max"), name) for name in expired]
    stored = [(seq, name) for seq, name in lasts if seq is not None]
    if not stored:
        return None
    anchor_seq, where = max(stored)
    firsts = [
        seq for name in kept if (seq := await _seq_bound(connection, name, "min")) is not None
    ]
    if firsts and min(firsts) <= anchor_seq:
        raise AuditRetentionError(
            f"expired partitions hold seq up to {anchor_seq} but seq {min(firsts)} lies in a"
            " partition that is kept: the chain is not in partition order (rows moved?);"
            " nothing was dropped"
        )
    anchor_hash = await connection.fetchval(
        f'SELECT hash FROM "{where}" WHERE seq = $1 LIMIT 1', anchor_seq
    )
    return anchor_seq, str(anchor_hash)


# --- verification of a whole database --------------------------------------------------------------


async def verify_postgres(database_url: str) -> VerifyReport:
    """Verify the audit trail at ``database_url`` without changing it (``collabgate audit verify``).

    Starts from the retention anchor, compares the end with the recorded head, and reports
    missing or disabled append-only triggers. Raises
    :class:`~collabgate.storage.postgres.PostgresStartupError` when the database can't be used.
    """
    database = PostgresDatabase(database_url, min_size=1, max_size=2, health_check_interval=None)
    await database.open()
    store = PostgresAuditStore(database)
    try:
        report = await verify_store(store)
        missing = await store.missing_guards()
    finally:
        await database.close()
    problems = report.problems + [f"append-only guard missing: {name}" for name in missing]
    return VerifyReport(not problems, report.records_checked, problems)
