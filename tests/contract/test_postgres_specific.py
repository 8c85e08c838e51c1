"""What only the PostgreSQL adapters do: migrations, partitions, retention, indexes, start-up checks,
group commit across lanes, several gateway instances writing one audit chain, and outages.

Also home of :class:`PostgresTestDatabase`, the per-test database the contract suites use for their
"postgres" backend. Tests need a PostgreSQL on ``COLLABGATE_TEST_DATABASE_URL`` (default
postgresql://postgres@127.0.0.1:5432/postgres) whose user may create databases. When it is not
reachable they skip, except under ``CI=true`` where that is a failure. Every test creates its own
database ``cgtest_<uuid>`` and drops it afterwards.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import sys
import threading
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import orjson
import pytest
from structlog.testing import capture_logs

from collabgate.audit.chain import GENESIS_HASH, link
from collabgate.audit.port import AuditEvent, AuditEventType
from collabgate.audit.postgres import (
    AuditRetentionError,
    PostgresAuditStore,
    verify_postgres,
)
from collabgate.audit.trail import AuditTrail
from collabgate.audit.verify import verify_store
from collabgate.documents.port import UpdateRecord
from collabgate.documents.postgres import APPEND_LOCK_KEY, PostgresDocumentStore
from collabgate.ops.metrics import Metrics
from collabgate.settings import SettingsError
from collabgate.storage.migrate import (
    MigrationError,
    current_revision,
    downgrade,
    head_revision,
    migrate,
)
from collabgate.storage.migrations import SCHEMA_HEAD
from collabgate.storage.postgres import (
    PostgresDatabase,
    PostgresSchemaError,
    PostgresStartupError,
    PostgresUnavailableError,
    redact,
)
from tests.support.requirements import unavailable

TEST_DATABASE_URL = os.environ.get(
    "COLLABGATE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


# --- the per-test database -------------------------------------------------------------------------


def with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` instead."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def connect_admin() -> asyncpg.Connection[asyncpg.Record]:
    """A connection to the test server's admin database; skip (or fail under CI=true) without one."""
    try:
        return await asyncpg.connect(TEST_DATABASE_URL, timeout=5)
    except Exception as exc:
        unavailable(
            f"PostgreSQL tests need a PostgreSQL at {redact(TEST_DATABASE_URL)}"
            f" (COLLABGATE_TEST_DATABASE_URL): {exc!r}"
        )


class PostgresTestDatabase:
    """A database of one test's own, ``cgtest_<uuid>``: created, migrated, and dropped at the end.

    It can also be made unreachable the way an outage looks to the gateway (its backends
    terminated, new connections refused) without stopping the shared server.
    """

    def __init__(self) -> None:
        self.name = f"cgtest_{uuid.uuid4().hex}"
        self.url = with_database(TEST_DATABASE_URL, self.name)
        self.created = False

    async def create(self, *, migrated: bool = True) -> str:
        admin = await connect_admin()
        try:
            await admin.execute(f'CREATE DATABASE "{self.name}"')
        finally:
            await admin.close()
        self.created = True
        if migrated:
            await migrate(self.url)
        return self.url

    async def drop(self) -> None:
        if not self.created:
            return
        admin = await connect_admin()
        try:
            await admin.execute(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS true')
            await admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        finally:
            await admin.close()
        self.created = False

    async def block_connections(self) -> None:
        """Refuse new connections and cut the existing ones: the database is 'down'."""
        admin = await connect_admin()
        try:
            await admin.execute(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS false')
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = $1 AND pid <> pg_backend_pid()",
                self.name,
            )
        finally:
            await admin.close()

    async def allow_connections(self) -> None:
        if not self.created:
            return
        admin = await connect_admin()
        try:
            await admin.execute(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS true')
        finally:
            await admin.close()

    async def execute(self, sql: str, *params: Any) -> None:
        connection = await asyncpg.connect(self.url, timeout=5)
        try:
            await connection.execute(sql, *params)
        finally:
            await connection.close()

    async def fetch(self, sql: str, *params: Any) -> list[asyncpg.Record]:
        connection = await asyncpg.connect(self.url, timeout=5)
        try:
            return await connection.fetch(sql, *params)
        finally:
            await connection.close()

    def execute_sync(self, sql: str, *params: Any) -> None:
        """Run SQL from synchronous code inside a running loop (on a thread with its own loop)."""
        outcome: list[BaseException] = []

        def run() -> None:
            try:
                asyncio.run(self.execute(sql, *params))
            except BaseException as exc:
                outcome.append(exc)

        thread = threading.Thread(target=run)
        thread.start()
        thread.join()
        if outcome:
            raise outcome[0]


def dollar_placeholders(sql: str) -> str:
    """SQLite's ``?`` placeholders as PostgreSQL's ``$1, $2, ...``."""
    counter = iter(range(1, 1_000))
    return re.sub(r"\?", lambda _: f"${next(counter)}", sql)


# --- fixtures --------------------------------------------------------------------------------------


@pytest.fixture
async def pg() -> AsyncIterator[PostgresTestDatabase]:
    database = PostgresTestDatabase()
    await database.create()
    try:
        yield database
    finally:
        await database.drop()


@pytest.fixture
async def database(pg: PostgresTestDatabase) -> AsyncIterator[PostgresDatabase]:
    db = PostgresDatabase(pg.url, health_check_interval=None)
    await db.open()
    try:
        yield db
    finally:
        await db.close()


def event(n: int, *, occurred_at: int | None = None) -> AuditEvent:
    return AuditEvent(
        event_type=list(AuditEventType)[n % len(AuditEventType)],
        occurred_at=1_700_000_000_000 + n if occurred_at is None else occurred_at,
        instance_id="gw-1",
        user_id=f"user-{n % 3}",
        resource_id=f"patient:{n % 4}",
        connection_id=f"conn-{n}",
        details={"n": n, "size": 1.5, "nested": {"b": 1, "a": [1, 2]}},
    )


async def partitions(pg: PostgresTestDatabase) -> list[str]:
    rows = await pg.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'audit_log'::regclass ORDER BY 1"
    )
    return [row[0] for row in rows]


def month_name(moment: datetime, plus: int = 0) -> str:
    index = moment.year * 12 + moment.month - 1 + plus
    return f"audit_log_{index // 12:04d}_{index % 12 + 1:02d}"


# --- migrations ------------------------------------------------------------------------------------


def test_the_schema_head_constant_matches_the_migration_scripts() -> None:
    assert head_revision() == SCHEMA_HEAD


async def test_migrations_go_up_down_and_up_again() -> None:
    pg = PostgresTestDatabase()
    await pg.create(migrated=False)
    try:
        assert await current_revision(pg.url) is None
        assert await migrate(pg.url) == ["0001", "0002"]
        assert await migrate(pg.url) == []  # idempotent
        assert await current_revision(pg.url) == SCHEMA_HEAD

        assert await downgrade(pg.url, revision="0001") == ["0002"]
        tables = {row[0] for row in await pg.fetch("SELECT tablename FROM pg_tables")}
        assert "document_updates" in tables
        assert not tables & {"audit_log", "audit_head", "audit_retention"}

        assert await downgrade(pg.url, revision="base") == ["0001"]
        assert await current_revision(pg.url) is None
        tables = {row[0] for row in await pg.fetch("SELECT tablename FROM pg_tables")}
        assert not tables & {"document_updates", "document_snapshots"}

        assert await migrate(pg.url) == ["0001", "0002"]
        db = PostgresDatabase(pg.url, health_check_interval=None)
        await db.open()
        try:
            store = PostgresAuditStore(db)
            await store.append([event(1)])
            assert (await verify_store(store)).ok
        finally:
            await db.close()
    finally:
        await pg.drop()


async def test_a_downgrade_refuses_to_drop_stored_rows_unless_allowed(
    pg: PostgresTestDatabase, database: PostgresDatabase
) -> None:
    await PostgresAuditStore(database).append([event(1)])
    with pytest.raises(MigrationError, match="refusing to drop audit_log"):
        await downgrade(pg.url, revision="0001")
    assert await current_revision(pg.url) == SCHEMA_HEAD  # the failed run changed nothing
    assert await downgrade(pg.url, revision="0001", allow_data_loss=True) == ["0002"]


async def test_concurrent_migrations_take_turns() -> None:
    """Three deploys migrating at once, in three processes: one applies, the others find it done."""
    pg = PostgresTestDatabase()
    await pg.create(migrated=False)
    script = (
        "import asyncio, sys; from collabgate.storage.migrate import migrate;"
        " print(','.join(asyncio.run(migrate(sys.argv[1]))))"
    )
    try:
        processes = [
            await asyncio.create_subprocess_exec(
                sys.executable, "-c", script, pg.url, stdout=asyncio.subprocess.PIPE
            )
            for _ in range(3)
        ]
        outputs = [(await process.communicate())[0].decode().strip() for process in processes]
        assert [process.returncode for process in processes] == [0, 0, 0]
        assert sorted(outputs) == ["", "", "0001,0002"]
        assert await current_revision(pg.url) == SCHEMA_HEAD
        # In one process, runs take turns too (Alembic's context is process-global).
        assert await asyncio.gather(migrate(pg.url), migrate(pg.url)) == [[], []]
    finally:
        await pg.drop()


async def test_migrate_names_the_variable_when_the_server_is_unreachable() -> None:
    with pytest.raises(PostgresStartupError, match="COLLABGATE_DATABASE_URL: cannot reach"):
        await migrate("postgresql://postgres:s3cret@127.0.0.1:1/none")


# --- start-up checks -------------------------------------------------------------------------------


async def test_refused_credentials_stop_start_up_naming_the_variable_not_the_password(
    pg: PostgresTestDatabase,
) -> None:
    parts = urlsplit(pg.url)
    user = f"cg_nobody_{uuid.uuid4().hex[:8]}"
    bad = urlunsplit(parts._replace(netloc=f"{user}:wr0ng-s3cret@{parts.hostname}:{parts.port}"))
    with pytest.raises(PostgresStartupError) as caught:
        await PostgresDatabase(bad, health_check_interval=None).open()
    message = str(caught.value)
    assert message.startswith("COLLABGATE_DATABASE_URL: PostgreSQL at")
    assert "refused the credentials" in message
    assert f"{user}:***@" in message
    assert "wr0ng-s3cret" not in message


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://postgres:pw@127.0.0.1:1/postgres", "cannot reach PostgreSQL"),
        ("mysql://root@127.0.0.1/db", "expected a postgresql:// URL"),
        ("not a url", "expected a postgresql://"),
    ],
)
async def test_bad_urls_stop_start_up_with_a_message_naming_the_variable(
    url: str, message: str
) -> None:
    db = PostgresDatabase(url, connect_timeout=2, health_check_interval=None)
    with pytest.raises(SettingsError, match=f"COLLABGATE_DATABASE_URL: .*{message}") as caught:
        await db.open()
    assert "pw@" not in str(caught.value)


async def test_a_missing_database_is_named() -> None:
    url = with_database(TEST_DATABASE_URL, f"cgtest_absent_{uuid.uuid4().hex}")
    await connect_admin()  # skip without a server
    with pytest.raises(PostgresStartupError, match="does not exist"):
        await PostgresDatabase(url, health_check_interval=None).open()


async def test_an_unmigrated_database_asks_for_collabgate_migrate() -> None:
    pg = PostgresTestDatabase()
    await pg.create(migrated=False)
    try:
        with pytest.raises(PostgresSchemaError, match="run `collabgate migrate`"):
            await PostgresDatabase(pg.url, health_check_interval=None).open()
        await migrate(pg.url, revision="0001")
        with pytest.raises(PostgresSchemaError, match="has 0001; this build needs schema revision"):
            await PostgresDatabase(pg.url, health_check_interval=None).open()
    finally:
        await pg.drop()


# --- the schema ------------------------------------------------------------------------------------


async def test_the_audit_log_is_indexed_by_user_resource_type_and_time(
    pg: PostgresTestDatabase,
) -> None:
    rows = await pg.fetch(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'audit_log' ORDER BY 1"
    )
    definitions = {row[0]: row[1] for row in rows}
    assert "(user_id, occurred_at)" in definitions["audit_log_user_id"]
    assert "(resource_id, occurred_at)" in definitions["audit_log_resource_id"]
    assert "(event_type, occurred_at)" in definitions["audit_log_event_type"]
    assert "brin (occurred_at)" in definitions["audit_log_occurred_at"]
    # Partitions inherit every index.
    name = month_name(datetime.now(UTC))
    rows = await pg.fetch("SELECT indexdef FROM pg_indexes WHERE tablename = $1", name)
    assert len(rows) == len(definitions)


async def test_details_are_stored_as_json_text_so_the_canonical_bytes_round_trip(
    pg: PostgresTestDatabase, database: PostgresDatabase
) -> None:
    store = PostgresAuditStore(database)
    odd = AuditEvent(
        AuditEventType.DOCUMENT_UPDATED,
        1,
        "gw",
        details={"z": 1.0, "a": 10**18, "u": "é\u2028", "e": 1e-7, "n": None},
    )
    await store.append([odd])
    (record,) = await store.records()
    assert record.hash == link(GENESIS_HASH, 1, record.event)
    column_type = await pg.fetch(
        "SELECT data_type FROM information_schema.columns"
        " WHERE table_name = 'audit_log' AND column_name = 'details'"
    )
    assert column_type[0][0] == "text"


# --- partitions ------------------------------------------------------------------------------------


async def test_migrate_creates_this_month_and_the_next_two(pg: PostgresTestDatabase) -> None:
    now = datetime.now(UTC)
    assert {month_name(now, plus) for plus in range(3)} <= set(await partitions(pg))


async def test_a_missing_month_is_created_on_write(
    pg: PostgresTestDatabase, database: PostgresDatabase
) -> None:
    now = datetime.now(UTC)
    current = month_name(now)
    await pg.execute(f'DROP TABLE "{current}"')  # as if migrate ran months ago
    store = PostgresAuditStore(database)
    await store.append([event(1), event(2)])
    assert current in await partitions(pg)
    rows = await pg.fetch(f'SELECT count(*) FROM "{current}"')
    assert rows[0][0] == 2
    assert (await verify_store(store)).ok


async def test_a_partition_dropped_behind_the_stores_back_is_recreated_on_retry(
    pg: PostgresTestDatabase, database: PostgresDatabase
) -> None:
    store = PostgresAuditStore(database)
    await store.append([event(1)])  # the store now knows this month exists
    current = month_name(datetime.now(UTC))
    await pg.execute(f'DROP TABLE "{current}"')
    with pytest.raises(asyncpg.CheckViolationError, match="no partition"):
        await store.append([event(2)])  # the store finds its cached month gone...
    await store.append([event(2)])  # ...and creates it again on the next try (the trail retries)
    assert [record.event.details["n"] for record in await store.records()] == [2]


async def test_each_partition_refuses_update_delete_and_truncate(
    pg: PostgresTestDatabase, database: PostgresDatabase
) -> None:
    await PostgresAuditStore(database).append([event(1)])
    current = month_name(datetime.now(UTC))
    statements: list[tuple[str, tuple[Any, ...]]] = [
        (f'UPDATE "{current}" SET user_id = $1', ("mallory",)),
        (f'DELETE FROM "{current}" WHERE seq = $1', (1,)),
        ("TRUNCATE audit_log", ()),
        (f'TRUNCATE "{current}"', ()),
        ("DELETE FROM audit_head WHERE id = $1", (1,)),
        ("UPDATE audit_head SET seq = $1", (0,)),
        ("TRUNCATE audit_head", ()),
    ]
    for sql, params in statements:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await pg.execute(sql, *params)
    assert await PostgresAuditStore(database).head() != (0, GENESIS_HASH)


async def test_missing_or_disabled_guards_are_reported(
    pg: PostgresTestDatabase, database: PostgresDatabase
) -> None:
    store = PostgresAuditStore(database)
    await store.append([event(1)])
    assert await store.missing_guards() == []
    current = month_name(datetime.now(UTC))
    await pg.execute("DROP TRIGGER audit_log_no_delete ON audit_log")
    await pg.execute(f'ALTER TABLE "{current}" DISABLE TRIGGER audit_log_no_update')
    assert set(await store.missing_guards()) == {
        "audit_log_no_delete",
        *(f"audit_log_no_delete on {name}" for name in await partitions(pg)),
        f"audit_log_no_update on {current} (disabled)",
    }
    report = await verify_postgres(pg.url)
    assert not report.ok
    assert "append-only guard missing: audit_log_no_delete" in report.problems


# --- retention -------------------------------------------------------------------------------------


async def append_at(pg: PostgresTestDatabase, when: datetime, events: list[AuditEvent]) -> None:
    """Chain ``events`` onto the head as recorded at ``when``, exactly as the store would.

    PostgreSQL's clock can't be moved back, so rows "written years ago" are made here; call in
    increasing ``when`` order (the head's recorded time only moves forward).
    """
    connection = await asyncpg.connect(pg.url)
    try:
        async with connection.transaction():
            seq, prev = await connection.fetchrow(
                "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE"
            )
            await connection.execute("SELECT collabgate_audit_ensure_partitions($1, 0)", when)
            for item in events:
                seq += 1
                digest = link(prev, seq, item)
                await connection.execute(
                    "INSERT INTO audit_log (seq, recorded_at, occurred_at, event_type,"
                    " instance_id, user_id, resource_id, connection_id, details, prev_hash, hash)"
                    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                    seq,
                    when,
                    item.occurred_at,
                    str(item.event_type),
                    item.instance_id,
                    item.user_id,
                    item.resource_id,
                    item.connection_id,
                    orjson.dumps(item.details, option=orjson.OPT_SORT_KEYS).decode(),
                    prev,
                    digest,
                )
                prev = digest
            await connection.execute(
                "UPDATE audit_head SET seq = $1, hash = $2, recorded_at = $3", seq, prev, when
            )
    finally:
        await connection.close()


async def test_retention_drops_whole_expired_months_and_verification_starts_at_the_anchor(
    pg: PostgresTestDatabase, database: PostgresDatabase
) -> None:
    store = PostgresAuditStore(database)
    await append_at(pg, datetime(2014, 1, 10, tzinfo=UTC), [event(n) for n in range(0, 3)])
    await append_at(pg, datetime(2014, 2, 10, tzinfo=UTC), [event(n) for n in range(3, 5)])
    await append_at(pg, datetime(2015, 6, 10, tzinfo=UTC), [event(n) for n in range(5, 7)])
    await store.append([event(n) for n in range(7, 10)])  # now
    assert (await verify_store(store)).ok
    dropped_hash = (await store.records(4, 1))[0].hash

    preview = await store.drop_expired_partitions(
        10, now=datetime(2025, 3, 15, tzinfo=UTC), dry_run=True
    )
    assert (preview.dropped, preview.anchor) == (
        ["audit_log_2014_01", "audit_log_2014_02"],
        (5, dropped_hash),
    )
    assert "audit_log_2014_01" in await partitions(pg)
    assert await store.retention_anchor() is None

    result = await store.drop_expired_partitions(10, now=datetime(2025, 3, 15, tzinfo=UTC))

    assert result.dropped == ["audit_log_2014_01", "audit_log_2014_02"]
    assert result.anchor == (5, dropped_hash)
    assert await store.retention_anchor() == (5, dropped_hash)
    assert "audit_log_2015_06" in await partitions(pg)
    assert [record.seq for record in await store.records()] == [6, 7, 8, 9, 10]
    report = await verify_store(store)
    assert (report.ok, report.records_checked) == (True, 5), report.problems
    assert (await verify_postgres(pg.url)).ok

    # A second run with nothing expired changes nothing; appends go on, still verifiable.
    again = await store.drop_expired_partitions(10, now=datetime(2025, 3, 15, tzinfo=UTC))
    assert (again.dropped, again.anchor) == ([], (5, dropped_hash))
    await store.append([event(10)])
    assert (await verify_store(store)).ok


async def test_the_default_retention_is_ten_years_and_months_still_inside_it_stay(
    pg: PostgresTestDatabase, database: PostgresDatabase
) -> None:
    store = PostgresAuditStore(database)
    await append_at(pg, datetime(2015, 3, 31, 23, 59, tzinfo=UTC), [event(0)])
    await append_at(pg, datetime(2015, 4, 1, tzinfo=UTC), [event(1)])
    result = await store.drop_expired_partitions(now=datetime(2025, 4, 1, tzinfo=UTC))
    assert result.dropped == ["audit_log_2015_03"]  # April 2015 ends after the cutoff
    assert (await verify_store(store)).ok


async def test_after_retention_a_deleted_first_retained_record_is_still_detected(
    pg: PostgresTestDatabase, database: PostgresDatabase
) -> None:
    store = PostgresAuditStore(database)
    await append_at(pg, datetime(2010, 1, 10, tzinfo=UTC), [event(0), event(1)])
    await append_at(pg, datetime(2020, 1, 10, tzinfo=UTC), [event(2), event(3)])
    await store.drop_expired_partitions(10, now=datetime(2025, 1, 1, tzinfo=UTC))
    await pg.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_delete")
    await pg.execute("DELETE FROM audit_log WHERE seq = 3")
    report = await verify_store(store)
    assert not report.ok
    assert any("seq 3" in problem for problem in report.problems), report.problems


async def test_retention_refuses_when_the_expired_months_are_not_a_prefix_of_the_chain(
    pg: PostgresTestDatabase, database: PostgresDatabase
) -> None:
    store = PostgresAuditStore(database)
    await append_at(pg, datetime(2012, 1, 10, tzinfo=UTC), [event(0), event(1)])
    await append_at(pg, datetime(2020, 1, 10, tzinfo=UTC), [event(2)])
    # Someone with owner rights moves a kept row into an expired month.
    await pg.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update")
    await pg.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_delete")  # row movement
    await pg.execute("UPDATE audit_log SET recorded_at = '2012-01-11+00' WHERE seq = 3")
    await pg.execute("UPDATE audit_log SET recorded_at = '2020-01-11+00' WHERE seq = 1")
    with pytest.raises(AuditRetentionError, match="nothing was dropped"):
        await store.drop_expired_partitions(10, now=datetime(2025, 1, 1, tzinfo=UTC))
    assert "audit_log_2012_01" in await partitions(pg)
    assert await store.retention_anchor() is None


async def test_retention_rejects_a_retention_under_one_year(database: PostgresDatabase) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        await PostgresAuditStore(database).drop_expired_partitions(0)


# --- several instances, one chain ------------------------------------------------------------------


async def test_several_gateway_instances_write_one_valid_chain(pg: PostgresTestDatabase) -> None:
    instances = [PostgresDatabase(pg.url, health_check_interval=None) for _ in range(3)]
    for db in instances:
        await db.open()
    try:
        stores = [PostgresAuditStore(db) for db in instances]

        async def write(index: int, store: PostgresAuditStore) -> None:
            for batch in range(20):
                await store.append([event(1000 * index + 10 * batch + k) for k in range(5)])

        await asyncio.gather(*(write(index, store) for index, store in enumerate(stores)))
        records = await stores[0].records(0, 10_000)
        assert [record.seq for record in records] == list(range(1, 301))
        report = await verify_store(stores[1])
        assert (report.ok, report.records_checked) == (True, 300), report.problems
    finally:
        for db in instances:
            await db.close()


async def test_instances_numbering_the_same_revisions_at_once_store_every_update(
    pg: PostgresTestDatabase,
) -> None:
    """Three instances give their own edit of every room the same next revision, at the same
    time, in different orders (what each instance's copy of a busy room does). A fourth
    transaction holds the append lock until all three wait on it, so that they then run at once.
    Every update is stored, under its own revision, with its record; none is refused and no
    batch is aborted (key-order deadlocks once aborted both batches, docs/performance.md)."""
    instances = [PostgresDatabase(pg.url, health_check_interval=None) for _ in range(3)]
    for db in instances:
        await db.open()
    blocker = await asyncpg.connect(pg.url)
    rooms = [f"patient:{room}" for room in range(200)]
    try:
        audits = [PostgresAuditStore(db) for db in instances]
        stores = [
            PostgresDocumentStore(db, audit=a) for db, a in zip(instances, audits, strict=True)
        ]
        stored: list[tuple[str, int]] = []
        for revision in (1, 2, 3):
            orders = [list(rooms) for _ in stores]
            for seed, order in enumerate(orders):
                random.Random(seed + 10 * revision).shuffle(order)
            held = blocker.transaction()
            await held.start()
            await blocker.execute("SELECT pg_advisory_xact_lock($1)", APPEND_LOCK_KEY)
            batches = [
                asyncio.gather(
                    *(store.append(room, revision, b"x", record_of(room)) for room in order)
                )
                for store, order in zip(stores, orders, strict=True)
            ]
            with capture_logs() as logs:
                waiting = asyncio.gather(*batches)
                await wait_until_waiting_on_locks(pg, 3)
                await held.rollback()  # all three go on at once
                results = await waiting
            stored += [
                (room, rev)
                for order, revs in zip(orders, results, strict=True)
                for room, rev in zip(order, revs, strict=True)
            ]
            # A failed batch is run again one write at a time, and logged.
            assert [e for e in logs if e["event"] == "postgres_batch_isolating"] == []
        # Each round's three edits of a room took its next three revisions, in some order.
        assert sorted(stored) == sorted((room, rev) for room in rooms for rev in range(1, 10))
        records = await audits[0].records(0, 10_000)
        assert sorted((r.event.resource_id, r.event.details["revision"]) for r in records) == (
            sorted(stored)
        )
        report = await verify_store(audits[0])
        assert (report.ok, report.records_checked) == (True, 1800), report.problems
    finally:
        await blocker.close()
        for db in instances:
            await db.close()


def record_of(resource_id: str) -> UpdateRecord:
    """An update's record, built from the revision it is stored as (as the gateway does)."""

    def record(revision: int) -> AuditEvent:
        return AuditEvent(
            AuditEventType.DOCUMENT_UPDATED,
            1_700_000_000_000 + revision,
            "gw-1",
            user_id="dr-who",
            resource_id=resource_id,
            connection_id="c1",
            details={"revision": revision, "bytes": 1},
        )

    return record


async def wait_until_waiting_on_locks(pg: PostgresTestDatabase, count: int) -> None:
    """Until ``count`` backends of the test database wait for a lock (10 s at most)."""
    async with asyncio.timeout(10):
        while True:
            rows = await pg.fetch(
                "SELECT pid FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if len(rows) >= count:
                return
            await asyncio.sleep(0.01)


# --- records stored with a document update ---------------------------------------------------------


async def test_several_instances_chain_every_update_record_exactly_once(
    pg: PostgresTestDatabase,
) -> None:
    instances = [PostgresDatabase(pg.url, health_check_interval=None) for _ in range(3)]
    for db in instances:
        await db.open()
    try:
        audits = [PostgresAuditStore(db) for db in instances]
        documents = [
            PostgresDocumentStore(db, audit=a) for db, a in zip(instances, audits, strict=True)
        ]

        async def write(index: int) -> None:
            for n in range(1, 41):
                revision = 100 * index + n
                await asyncio.gather(
                    documents[index].append(
                        f"patient:{index}", revision, b"u", record_of(f"patient:{index}")
                    ),
                    audits[index].append([event(revision)]),
                )

        await asyncio.gather(*(write(index) for index in range(3)))
        store = PostgresAuditStore(instances[0])
        records = await store.records(0, 10_000)
        revisions = [r.event.details["revision"] for r in records if "revision" in r.event.details]
        assert sorted(revisions) == [100 * i + n for i in range(3) for n in range(1, 41)]
        report = await verify_store(store)
        assert (report.ok, report.records_checked) == (True, 240), report.problems
    finally:
        for db in instances:
            await db.close()


# --- group commit, lanes, health -------------------------------------------------------------------


async def test_documents_and_audit_commit_in_their_own_lanes(database: PostgresDatabase) -> None:
    documents = PostgresDocumentStore(database)
    audit = PostgresAuditStore(database)
    before = database.commits
    await asyncio.gather(
        *(documents.append(f"patient:{n % 5}", n, b"u") for n in range(1, 101)),
        *(audit.append([event(n)]) for n in range(100)),
    )
    used = database.commits - before
    assert 2 <= used <= 6, used
    assert (await verify_store(audit)).ok


async def test_a_failing_write_fails_alone_and_the_batch_still_commits(
    database: PostgresDatabase,
) -> None:
    async def bad(connection: Any) -> None:
        await connection.execute("SELECT 1/0")

    async def good(connection: Any) -> int:
        await connection.execute(
            "INSERT INTO document_snapshots VALUES ('patient:ok', 1, 'x'::bytea)"
        )
        return 7

    results = await asyncio.gather(
        database.write(good), database.write(bad), return_exceptions=True
    )
    assert results[0] == 7
    assert isinstance(results[1], asyncpg.DivisionByZeroError)
    store = PostgresDocumentStore(database)
    assert (await store.load("patient:ok")).snapshot_revision == 1


async def test_a_revision_taken_twice_in_one_batch_is_stored_as_the_next(
    database: PostgresDatabase,
) -> None:
    store = PostgresDocumentStore(database)
    results = await asyncio.gather(
        store.append("patient:1", 1, b"a"),
        store.append("patient:1", 1, b"b"),
        store.append("patient:1", 2, b"c"),
    )
    assert results == [1, 2, 3]
    assert (await store.load("patient:1")).updates == [b"a", b"b", b"c"]


def sample(metrics: Metrics, name: str) -> float:
    value = metrics.registry.get_sample_value(name, {"dependency": "postgres"})
    assert value is not None
    return value


async def test_each_committed_batch_is_timed(pg: PostgresTestDatabase) -> None:
    metrics = Metrics()
    db = PostgresDatabase(pg.url, health_check_interval=None, metrics=metrics)
    await db.open()
    try:
        store = PostgresDocumentStore(db)
        await asyncio.gather(*(store.append("patient:1", n, b"u") for n in range(1, 21)))
        timed = metrics.registry.get_sample_value("collabgate_storage_commit_seconds_count")
        assert timed == db.commits >= 1
        assert (metrics.registry.get_sample_value("collabgate_storage_commit_seconds_sum") or 0) > 0
    finally:
        await db.close()


async def test_an_outage_raises_connection_errors_updates_metrics_and_heals(
    pg: PostgresTestDatabase,
) -> None:
    metrics = Metrics()
    db = PostgresDatabase(pg.url, connect_timeout=2, health_check_interval=0.05, metrics=metrics)
    await db.open()
    try:
        store = PostgresDocumentStore(db)
        await store.append("patient:1", 1, b"before")
        assert db.healthy

        await pg.block_connections()
        with pytest.raises(ConnectionError) as caught:
            await store.append("patient:1", 2, b"during")
        assert isinstance(caught.value, PostgresUnavailableError)
        with pytest.raises(ConnectionError):
            await store.load("patient:1")
        assert not db.healthy
        assert sample(metrics, "collabgate_dependency_up") == 0
        assert sample(metrics, "collabgate_dependency_failures_total") >= 2

        await pg.allow_connections()
        async with asyncio.timeout(10):
            while not db.healthy:  # noqa: ASYNC110 - the health probe flips a flag
                await asyncio.sleep(0.02)
        assert sample(metrics, "collabgate_dependency_up") == 1
        await store.append("patient:1", 3, b"after")
        assert (await store.load("patient:1")).updates == [b"before", b"after"]
    finally:
        await pg.allow_connections()
        await db.close()


async def test_the_audit_trail_buffers_through_an_outage_and_drains_into_postgres(
    pg: PostgresTestDatabase, database: PostgresDatabase, tmp_path: Path
) -> None:
    store = PostgresAuditStore(database)
    trail = AuditTrail(store, max_queue=50, spool_path=tmp_path / "spool.ndjson", batch_size=20)
    await trail.start()
    await pg.block_connections()
    for n in range(200):
        trail.record(event(n))
    async with asyncio.timeout(10):
        while trail.store_failures < 2:  # noqa: ASYNC110 - a counter, not an event
            await asyncio.sleep(0.01)
    assert trail.spooled > 0
    await pg.allow_connections()
    await asyncio.wait_for(trail.flush(), 30)
    records = await store.records()
    assert [record.event.details["n"] for record in records] == list(range(200))
    assert (await verify_store(store)).ok
    await trail.close()
