"""Durability and failure semantics of the SQLite writer (group commit).

An append the SQLite store has acknowledged survives ``kill -9`` of the process: a child process appends updates (16 concurrent at a time, so they are group-committed) and prints
each revision once ``append`` has returned. The test kills it with SIGKILL mid-stream, then checks
that every printed revision is in the database. Synchronisation is the child's stdout, no sleeps.
The child's store moves its staged updates into the large table every 64 appends, so the kills
also land around those moves. (Power loss is covered by ``synchronous=FULL``, which kill -9
alone cannot demonstrate.)
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from collabgate.documents import sqlite as documents_sqlite
from collabgate.documents.port import StoredDocument
from collabgate.documents.sqlite import SqliteDocumentStore
from collabgate.storage.sqlite import DatabaseClosedError, SqliteDatabase

CHILD = """
import asyncio, sys
from collabgate.documents.sqlite import SqliteDocumentStore
from collabgate.storage.sqlite import SqliteDatabase

async def main(path: str) -> None:
    database = SqliteDatabase(path)
    store = SqliteDocumentStore(database, fold_rows=64)  # folds often, so a kill can hit one
    await database.open()
    print("ready", flush=True)

    async def append(revision: int) -> None:
        await store.append("patient:1", revision, b"update-%d" % revision)
        sys.stdout.write(f"{revision}\\n")
        sys.stdout.flush()

    revision = 0
    while True:
        await asyncio.gather(*(append(revision + n) for n in range(1, 17)))
        revision += 16

asyncio.run(main(sys.argv[1]))
"""


def stored_revisions(path: Path) -> set[int]:
    """The revisions of ``patient:1`` the file holds, read as the gateway would after a restart."""

    async def load() -> StoredDocument:
        database = SqliteDatabase(path)
        store = SqliteDocumentStore(database)
        await database.open()
        try:
            return await store.load("patient:1")
        finally:
            await database.close()

    stored = asyncio.run(load())
    revisions = [int(update.removeprefix(b"update-")) for update in stored.updates]
    assert revisions == sorted(set(revisions)), "updates out of order or stored twice"
    return set(revisions)


@pytest.mark.parametrize("kill_after", [1, 97, 500])
def test_acknowledged_appends_survive_sigkill(tmp_path: Path, kill_after: int) -> None:
    path = tmp_path / "durable.sqlite3"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    try:
        assert child.stdout.readline().strip() == "ready"
        acknowledged = [int(child.stdout.readline()) for _ in range(kill_after)]
        child.send_signal(signal.SIGKILL)
        # Whatever the child printed before it died was acknowledged too.
        acknowledged += [int(line) for line in child.stdout.read().split()]
    finally:
        child.kill()
        child.wait(timeout=30)
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL

    stored = stored_revisions(path)
    missing = sorted(set(acknowledged) - stored)
    assert not missing, f"acknowledged but lost after kill -9: {missing[:20]}"
    assert len(acknowledged) >= kill_after


# --- batch failure semantics ----------------------------------------------------------------------

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS parent (id INTEGER PRIMARY KEY)",
    "CREATE TABLE IF NOT EXISTS child (id INTEGER PRIMARY KEY, parent_id INTEGER"
    " REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)",
)


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[SqliteDatabase]:
    database = SqliteDatabase(tmp_path / "writer.sqlite3")
    database.add_schema(SCHEMA)
    await database.open()
    yield database
    await database.close()


def insert_parent(parent_id: int) -> Callable[[sqlite3.Connection], sqlite3.Cursor]:
    return lambda connection: connection.execute("INSERT INTO parent VALUES (?)", (parent_id,))


def count_parents(connection: sqlite3.Connection) -> int:
    return int(connection.execute("SELECT count(*) FROM parent").fetchone()[0])


@dataclass(frozen=True)
class Append:
    """A store's append, made by :func:`in_one_batch` once the writer is held."""

    queue: Callable[[], Awaitable[Any]]


async def in_one_batch(database: SqliteDatabase, *writes: Any) -> list[Any]:
    """Queue ``writes`` while the writer is held, so that they are committed as one batch.

    A write is a function of the connection, ``(bulk_operation, item)`` for ``write_many``, or
    a store's append to make (:class:`Append`).
    """
    started, release = threading.Event(), threading.Event()

    def hold(_: sqlite3.Connection) -> None:
        started.set()
        release.wait()

    def queue(write: Any) -> Awaitable[Any]:
        if isinstance(write, Append):
            return write.queue()
        if isinstance(write, tuple):
            return database.write_many(*write)
        return database.write(write)

    held = asyncio.ensure_future(database.write(hold))
    await asyncio.to_thread(started.wait)
    pending = [queue(write) for write in writes]  # each queued behind the held batch
    release.set()
    await held
    return await asyncio.gather(*pending, return_exceptions=True)


async def test_a_failed_commit_fails_every_caller_of_the_batch(database: SqliteDatabase) -> None:
    def orphan(connection: sqlite3.Connection) -> None:  # violates a deferred FK at COMMIT
        connection.execute("INSERT INTO child VALUES (1, 99)")

    commits = database.commits
    results = await in_one_batch(database, insert_parent(1), orphan, insert_parent(2))
    assert all(isinstance(result, sqlite3.IntegrityError) for result in results), results
    assert database.commits == commits + 1  # only the held batch
    assert not database.healthy
    assert await database.read(count_parents) == 0  # rolled back: nothing half-stored

    await database.write(insert_parent(3))
    assert database.healthy
    assert await database.read(count_parents) == 1


async def test_a_transaction_sqlite_aborted_fails_the_whole_batch(database: SqliteDatabase) -> None:
    def aborting(connection: sqlite3.Connection) -> None:
        connection.execute("ROLLBACK")  # what SQLite does itself on some I/O errors

    results = await in_one_batch(database, insert_parent(1), aborting, insert_parent(2))
    assert all(isinstance(result, sqlite3.OperationalError) for result in results), results
    assert await database.read(count_parents) == 0


async def test_one_failing_write_fails_alone(database: SqliteDatabase) -> None:
    def broken(_: sqlite3.Connection) -> None:
        raise ValueError("bad input")

    results = await in_one_batch(database, insert_parent(1), broken, insert_parent(2))
    assert isinstance(results[1], ValueError)
    assert [type(result) for result in (results[0], results[2])] == [sqlite3.Cursor] * 2
    assert await database.read(count_parents) == 2
    assert database.healthy


async def test_close_commits_every_queued_write(tmp_path: Path) -> None:
    database = SqliteDatabase(tmp_path / "drain.sqlite3")
    database.add_schema(SCHEMA)
    await database.open()
    writes = [asyncio.ensure_future(database.write(insert_parent(n))) for n in range(500)]
    await asyncio.sleep(0)  # every write is queued (none awaited yet)
    await database.close()
    await asyncio.gather(*writes)
    with pytest.raises(DatabaseClosedError):
        await database.write(insert_parent(1000))

    await database.open()
    assert await database.read(count_parents) == 500
    await database.close()


# --- bulk writes ----------------------------------------------------------------------------------


def parents_in_insertion_order(connection: sqlite3.Connection) -> list[int]:
    return [int(row[0]) for row in connection.execute("SELECT id FROM parent ORDER BY rowid")]


class BulkInsert:
    """A bulk operation that records each call's items; an id of 0 fails alone."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []

    def __call__(self, connection: sqlite3.Connection, ids: list[int]) -> list[Exception | None]:
        self.calls.append(list(ids))
        outcomes: list[Exception | None] = []
        for parent_id in ids:
            if parent_id == 0:
                outcomes.append(ValueError("id 0 is refused"))
                continue
            connection.execute("INSERT INTO parent VALUES (?)", (parent_id,))
            outcomes.append(None)
        return outcomes


async def test_consecutive_bulk_writes_run_as_one_call_and_keep_the_queue_order(
    database: SqliteDatabase,
) -> None:
    bulk = BulkInsert()
    results = await in_one_batch(
        database, (bulk, 1), (bulk, 2), insert_parent(3), (bulk, 4), (bulk, 0), (bulk, 5)
    )
    assert bulk.calls == [[1, 2], [4, 0, 5]]  # one call per run, split by the plain write
    assert isinstance(results[4], ValueError)  # the refused item fails alone ...
    assert [results[n] for n in (0, 1, 3, 5)] == [None] * 4  # ... the others are stored
    assert await database.read(parents_in_insertion_order) == [1, 2, 3, 4, 5]


async def test_a_raising_bulk_operation_is_retried_item_by_item(database: SqliteDatabase) -> None:
    def strict(connection: sqlite3.Connection, ids: list[int]) -> list[None]:
        for parent_id in ids:  # a duplicate key raises, after the rows before it went in
            connection.execute("INSERT INTO parent VALUES (?)", (parent_id,))
        return [None] * len(ids)

    results = await in_one_batch(database, (strict, 1), (strict, 1), (strict, 2))
    assert [results[0], results[2]] == [None, None]
    assert isinstance(results[1], sqlite3.IntegrityError)
    assert await database.read(parents_in_insertion_order) == [1, 2]


# --- transaction listeners and the revisions kept in memory ----------------------------------------


def orphan(connection: sqlite3.Connection) -> None:
    """Violates a deferred foreign key: the batch fails at COMMIT and is rolled back."""
    connection.execute("INSERT INTO child VALUES (1, 99)")


async def test_listeners_learn_how_each_batch_transaction_ended(database: SqliteDatabase) -> None:
    told: list[bool] = []

    def failing_listener(committed: bool) -> None:
        raise RuntimeError("a listener's bug must not fail a write")

    database.add_transaction_listener(told.append)
    database.add_transaction_listener(failing_listener)
    await database.write(insert_parent(1))
    assert told == [True]

    await in_one_batch(database, insert_parent(2), orphan)
    assert told[-2:] == [True, False]  # the held batch committed, then this one rolled back

    def raising(connection: sqlite3.Connection) -> None:
        raise ValueError("fails alone")

    del told[:]
    await in_one_batch(database, insert_parent(3), raising)
    # The held batch; then the batch is rolled back and run again write by write, and commits.
    assert told == [True, False, True]
    assert await database.read(count_parents) == 2


async def test_revisions_appended_in_a_batch_that_failed_can_be_stored_again(
    database: SqliteDatabase,
) -> None:
    """The store keeps each resource's highest revision in memory: only a commit may raise it."""
    store = SqliteDocumentStore(database)
    await store.append("patient:1", 1, b"one")
    lost = Append(lambda: store.append("patient:1", 2, b"lost"))
    results = await in_one_batch(database, lost, orphan)
    assert all(isinstance(result, sqlite3.IntegrityError) for result in results), results

    assert await store.append("patient:1", 2, b"two") == 2
    assert (await store.load("patient:1")).updates == [b"one", b"two"]
    assert await store.append("patient:1", 2, b"again") == 3


async def test_a_revision_another_connection_stored_is_not_taken_again(tmp_path: Path) -> None:
    """Another process writing the same file (a second gateway started by mistake, a repair by
    hand) makes the store read the highest revisions from the file again."""
    path = tmp_path / "shared.sqlite3"
    database = SqliteDatabase(path)
    store = SqliteDocumentStore(database)
    await database.open()
    try:
        await store.append("patient:1", 1, b"one")
        with contextlib.closing(sqlite3.connect(path)) as other, other:
            other.execute("INSERT INTO document_updates VALUES ('patient:1', 2, x'00')")
        assert await store.append("patient:1", 2, b"two") == 3
        assert (await store.load("patient:1")).updates == [b"one", b"\x00", b"two"]
    finally:
        await database.close()


async def test_revisions_are_checked_after_the_store_forgets_them(
    database: SqliteDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(documents_sqlite, "HEADS_KEPT", 2)
    store = SqliteDocumentStore(database)
    for resource in ("a", "b", "c", "d"):  # more resources than it keeps
        await store.append(f"patient:{resource}", 1, b"one")
    for resource in ("a", "d"):
        assert await store.append(f"patient:{resource}", 1, b"again") == 2


# --- commit pacing --------------------------------------------------------------------------------


async def test_a_paced_writer_commits_a_lone_write_at_once_and_groups_what_follows(
    tmp_path: Path,
) -> None:
    """With a commit interval, the first write after a quiet spell does not wait, and writes
    that trickle in within the interval share the next commit (unpaced, the idle writer would
    commit each on its own as it arrives).

    The interval (1 s) is longer than every timeout here, so each fails only if the writer
    waited where it must not: before the first write, or past the close that ends the wait.
    The trickle (ten writes 20 ms apart) spaces the arrivals; nothing waits on it.
    """
    database = SqliteDatabase(tmp_path / "paced.sqlite3", commit_interval=1.0)
    database.add_schema(SCHEMA)
    await database.open()
    commits = database.commits
    await asyncio.wait_for(database.write(insert_parent(1)), timeout=0.9)
    assert database.commits == commits + 1

    followers = []
    for n in range(2, 12):
        followers.append(asyncio.ensure_future(database.write(insert_parent(n))))
        await asyncio.sleep(0.02)
    await asyncio.wait_for(database.close(), timeout=0.5)  # closing ends the wait
    await asyncio.gather(*followers)
    assert database.commits == commits + 2  # the lone write, then all ten followers together

    await database.open()
    assert await database.read(count_parents) == 11
    await database.close()


def test_a_commit_interval_beyond_a_second_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="commit_interval"):
        SqliteDatabase(tmp_path / "x.sqlite3", commit_interval=2.0)


async def test_each_committed_batch_is_timed_and_a_failed_one_is_not(tmp_path: Path) -> None:
    timed: list[float] = []
    database = SqliteDatabase(tmp_path / "timed.sqlite3", on_commit=timed.append)
    database.add_schema(SCHEMA)
    await database.open()
    try:
        await database.write(insert_parent(1))
        assert len(timed) == 1  # the schema's transaction at open is not a batch
        await in_one_batch(database, insert_parent(2), orphan)  # held batch commits, next fails
        assert len(timed) == 2
        assert all(0 < seconds < 60 for seconds in timed)
    finally:
        await database.close()
