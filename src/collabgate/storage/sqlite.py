"""One SQLite file for the embedded adapters: a single writer thread with group commit.

Why this shape:

* SQLite admits one writer at a time. Rather than letting connections fight over the write lock,
  ONE connection owned by ONE thread performs every write. Callers queue an operation (a plain
  function of a connection) and get a future.
* Group commit. With ``synchronous=FULL`` every commit costs an fsync (milliseconds). Whenever the
  writer is free it takes everything queued (up to ``max_batch``), runs it in ONE transaction,
  commits once and only then resolves every caller's future. N concurrent writes share one fsync
  and a lone write starts at once: there is no timer to wait for.
* Paced under load (``commit_interval``, off by default). After a quiet spell a write commits at
  once; while writes keep coming, a batch starts at most once per interval, and the writes that
  arrive meanwhile share its transaction. Each commit costs WAL page writes and an fsync whatever
  its size, so fewer, larger commits cost far less CPU and I/O for the same writes. The price:
  a caller waits up to one interval longer for its write to be durable, and a larger batch's
  callers all resume in one event-loop turn, which lengthens the latency tail under load.
* Few statements per batch. The writer thread must take the GIL back after every SQLite call
  (each releases it), and while the event loop is busy that takes up to the interpreter's switch
  interval (5 ms): a writer that runs one statement per write falls hopelessly behind exactly
  under load (2,000 single-row inserts: 5 ms idle, 3.3 s beside a busy loop). So writes of one
  kind queued back to back reach their :data:`BulkOperation` together (:meth:`write_many`),
  which stores them with a handful of set-based statements whatever their number.
* A write that fails alone (a duplicate revision) fails that caller only: a bulk operation
  reports it as an outcome, and when an operation raises the batch is run again with one
  SAVEPOINT per write. When BEGIN or COMMIT fails, or SQLite aborts the transaction, every
  caller of the batch gets the exception: nothing is reported durable that is not.
* Optionally a lower CPU priority (``writer_nice``, Linux, off by default). When the machine's
  CPUs are all busy, the event loop then wins the contest with the writer: the writer's commits
  wait a little longer, the loop's deliveries less.
* WAL with ``synchronous=FULL``: the WAL is fsynced at each commit, so a write whose future has
  resolved survives ``kill -9`` and power loss.
* Reads use a second, ``query_only`` connection on its own thread. In WAL mode it sees the last
  commit without blocking the writer, so loading a large document or scanning the audit trail never
  delays an acknowledgement. Read-your-writes holds because a write resolves after its commit. Each
  read runs in one read transaction, so a multi-statement read sees a single consistent snapshot.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import math
import os
import queue
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal, TypeVar

import structlog

from collabgate.ops.event_loop import running_loop
from collabgate.ops.files import fsync_directory
from collabgate.storage.batching import consecutive_runs

T = TypeVar("T")
P = TypeVar("P")
R = TypeVar("R")

#: Runs the items of consecutive writes of one kind, in order, inside the batch transaction.
#: Returns one outcome per item: a value, or an :class:`Exception` instance for an item that
#: failed alone and changed nothing. Raising fails the whole run (then each write is retried in
#: its own savepoint).
BulkOperation = Callable[[sqlite3.Connection, list[P]], Sequence[R | Exception]]

#: Told on the writer thread how each batch transaction ended: True once it committed, False
#: once it was rolled back. Lets an adapter keep, in memory, what its writes made durable.
TransactionListener = Callable[[bool], None]
#: Told on the writer thread, after each commit, the seconds the batch took from its start to
#: durable (the wait for the file's write lock, the writes, the fsync). Must be quick.
CommitObserver = Callable[[float], None]

log = structlog.get_logger(__name__)

_State = Literal["new", "open", "closing", "closed"]
#: ``(True, value)`` or ``(False, exception)`` for one queued write.
_Outcome = tuple[bool, Any]


class DatabaseClosedError(RuntimeError):
    """The database is not open: never opened, closing, or closed."""


class DatabaseOpenError(RuntimeError):
    """The database file could not be opened or prepared; the message names the file."""


class TransactionAbortedError(sqlite3.OperationalError):
    """SQLite rolled the whole batch back on its own (I/O error, disk full, busy)."""


@dataclass(slots=True)
class _Write:
    operation: BulkOperation[Any, Any]
    item: Any
    future: asyncio.Future[Any]


def _call_each(
    connection: sqlite3.Connection, operations: list[Callable[[sqlite3.Connection], Any]]
) -> list[Any]:
    """The bulk form of plain writes: run them one after the other.

    A write that ends the transaction (SQLite rolls back by itself on some errors) stops the
    run at once: the writes after it would otherwise run, and commit, outside any transaction.
    """
    results = []
    for operation in operations:
        results.append(operation(connection))
        if not connection.in_transaction:
            raise TransactionAbortedError("a write operation ended the batch transaction")
    return results


def run_in_savepoint(
    connection: sqlite3.Connection, name: str, work: Callable[[sqlite3.Connection], Any]
) -> _Outcome:
    """Run ``work`` inside the batch transaction so that its failure undoes it alone.

    ``(True, what work returned)``, or ``(False, the exception)`` with everything ``work`` did
    undone and the rest of the transaction kept: the writer isolates each write of a failed
    batch this way, and upkeep that rides along with a write (moving rows between tables) runs
    this way so that the write still commits. When SQLite has aborted the whole transaction
    there is nothing left to keep, and the error is raised.
    """
    connection.execute(f"SAVEPOINT {name}")
    try:
        result = work(connection)
    except Exception as exc:
        if not connection.in_transaction:
            raise TransactionAbortedError(f"transaction aborted: {exc}") from exc
        connection.execute(f"ROLLBACK TO {name}")
        connection.execute(f"RELEASE {name}")
        return (False, exc)
    connection.execute(f"RELEASE {name}")
    return (True, result)


def fold_when_due(
    connection: sqlite3.Connection,
    savepoint: str,
    fold: Callable[[sqlite3.Connection], Any],
    *,
    waiting: int,
    added: int,
    every: int,
    failed_event: str,
    **log_fields: int,
) -> None:
    """Run ``fold`` (upkeep that moves rows between tables) once ``added`` rows have brought the
    rows ``waiting`` for it (``added`` included) to another multiple of ``every``.

    It runs in :func:`run_in_savepoint`: a fold that fails is undone alone and logged as
    ``failed_event`` with ``log_fields``, and the writes of the transaction still commit.
    Normally the first fold succeeds and ``waiting`` starts again from zero; one that keeps
    failing (something outside the gateway refuses the rows) is retried, and logged, once per
    ``every`` new rows instead of on every commit.
    """
    if waiting // every <= (waiting - added) // every:
        return
    folded, error = run_in_savepoint(connection, savepoint, fold)
    if not folded:
        log.error(failed_event, **log_fields, error=repr(error))


def _one_write(write: _Write, connection: sqlite3.Connection) -> Any:
    """A queued write on its own; an item its bulk operation refused raises."""
    (result,) = write.operation(connection, [write.item])
    if isinstance(result, Exception):
        raise result
    return result


def _outcome(result: object) -> _Outcome:
    return (False, result) if isinstance(result, Exception) else (True, result)


def _connect(path: Path, busy_timeout_ms: int) -> sqlite3.Connection:
    # isolation_level=None: no implicit transactions; the writer issues BEGIN/COMMIT itself.
    connection = sqlite3.connect(path, isolation_level=None, cached_statements=256)
    connection.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    return connection


def lower_thread_priority(nice: int) -> None:
    """Add ``nice`` to the calling thread's niceness, up to 19 (Linux; elsewhere a logged no-op).

    On Linux a thread has its own niceness, set through its thread id; elsewhere
    ``setpriority`` would lower the whole process, event loop included, so it is left alone.
    Relative, so a process already started under ``nice`` is never asked for a higher priority
    (which would need a privilege).
    """
    if nice == 0:
        return
    if not sys.platform.startswith("linux"):
        log.warning("thread_priority_unsupported", nice=nice, platform=sys.platform)
        return
    thread = threading.get_native_id()
    current = os.getpriority(os.PRIO_PROCESS, thread)
    os.setpriority(os.PRIO_PROCESS, thread, min(current + nice, 19))


def _prepare_writer(path: Path, busy_timeout_ms: int) -> sqlite3.Connection:
    connection = _connect(path, busy_timeout_ms)
    try:
        mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise DatabaseOpenError(f"SQLite database {path} cannot use WAL (mode {mode!r})")
        connection.execute("PRAGMA synchronous = FULL")
        connection.execute("PRAGMA foreign_keys = ON")
    except BaseException:
        connection.close()
        raise
    return connection


def _apply_schemas(connection: sqlite3.Connection, schemas: Sequence[Sequence[str]]) -> None:
    """Create every registered table, index and trigger in one transaction (idempotent DDL)."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        for statements in schemas:
            for statement in statements:
                connection.execute(statement)
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise


def _settle_futures(items: list[tuple[asyncio.Future[Any], _Outcome]]) -> None:
    """Runs on the event loop: hand every caller of a batch its result or exception."""
    for future, (ok, value) in items:
        if future.done():  # the caller was cancelled; the write still happened (or not)
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


class _WriterThread(threading.Thread):
    """Owns the write connection; runs queued writes in batches, one transaction per batch."""

    def __init__(
        self,
        path: Path,
        max_batch: int,
        busy_timeout_ms: int,
        commit_interval: float,
        nice: int = 0,
        on_commit: CommitObserver | None = None,
    ) -> None:
        super().__init__(name="collabgate-sqlite-writer", daemon=True)
        self.path = path
        self.max_batch = max_batch
        self.busy_timeout_ms = busy_timeout_ms
        self.commit_interval = commit_interval
        self.nice = nice
        self.on_commit = on_commit
        self.queue: queue.SimpleQueue[_Write | None] = queue.SimpleQueue()
        #: Set by :meth:`SqliteDatabase.close`: a batch waiting for company starts at once.
        self.stopping = threading.Event()
        self._batch_started = -math.inf
        self.ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self.schemas: list[tuple[str, ...]] = []
        self.listeners: list[TransactionListener] = []
        self.commits = 0
        #: Writes that committed (a write that failed alone inside a committed batch is not one).
        self.writes = 0
        self.failed_batches = 0
        self.healthy = True
        self._connection: sqlite3.Connection | None = None

    # --- thread body -----------------------------------------------------------------------

    def run(self) -> None:
        try:
            lower_thread_priority(self.nice)
            self._connection = _prepare_writer(self.path, self.busy_timeout_ms)
            _apply_schemas(self._connection, self.schemas)
            self.commits += 1
            fsync_directory(self.path.parent)
        except BaseException as exc:
            if self._connection is not None:
                self._connection.close()
            self.ready.set_exception(exc)
            return
        self.ready.set_result(None)
        try:
            self._serve()
        finally:
            self.healthy = False
            self._connection.close()
            self._fail_leftovers()

    def _fail_leftovers(self) -> None:
        """Should the thread ever stop early, queued callers get an error instead of hanging."""
        leftovers: list[_Write] = []
        while True:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                leftovers.append(item)
        if leftovers:
            error = DatabaseClosedError(f"SQLite writer for {self.path} stopped")
            self._settle(leftovers, [(False, error)] * len(leftovers))

    def _serve(self) -> None:
        while True:
            batch, stop = self._take_batch()
            if batch:
                self._run_batch(batch)
            if stop:
                return

    def _take_batch(self) -> tuple[list[_Write], bool]:
        """Block for the first write, then take whatever else is already queued."""
        first = self.queue.get()
        if first is None:
            return [], True
        self._wait_for_company()
        batch = [first]
        while len(batch) < self.max_batch:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                return batch, True
            batch.append(item)
        return batch, False

    def _wait_for_company(self) -> None:
        """Start a batch no sooner than ``commit_interval`` after the previous one started.

        A write after a quiet spell does not wait at all; a write that follows the previous
        batch closely waits (without the GIL) for the rest of the interval, and whatever is
        queued by then joins it. Closing the database cuts the wait short.
        """
        if not self.commit_interval:  # unpaced (the default): nothing to time
            return
        wait = self._batch_started + self.commit_interval - time.monotonic()
        if wait > 0:
            self.stopping.wait(wait)
        self._batch_started = time.monotonic()

    def _run_batch(self, batch: list[_Write]) -> None:
        started = time.perf_counter()
        try:
            outcomes = self._transaction(batch)
        except Exception as exc:  # nothing of this batch is durable: tell every caller
            self._rollback()
            self.failed_batches += 1
            self.healthy = False
            log.error("sqlite_batch_failed", writes=len(batch), error=repr(exc))
            outcomes = [(False, exc)] * len(batch)
        else:
            self._transaction_ended(committed=True)
            self.commits += 1
            self.writes += sum(1 for ok, _ in outcomes if ok)
            self.healthy = True
            if self.on_commit is not None:
                self.on_commit(time.perf_counter() - started)
        self._settle(batch, outcomes)

    def _transaction(self, batch: list[_Write]) -> list[_Outcome]:
        """Run the batch in one transaction; isolate writes only when one of them fails.

        Almost every batch succeeds whole, so the fast path hands each run of same-kind writes to
        its bulk operation. When one raises, the batch is rolled back and run again with a
        savepoint around each write, so the failing write fails alone and the others still
        commit together.
        """
        connection = self._require_connection()
        connection.execute("BEGIN IMMEDIATE")
        outcomes: list[_Outcome] = []
        for run in consecutive_runs(batch, lambda write: write.operation):
            operation = run[0].operation
            try:
                results = operation(connection, [write.item for write in run])
            except Exception:
                if not connection.in_transaction:
                    raise
                self._rollback()
                return self._isolated_transaction(batch)
            if not connection.in_transaction:
                raise TransactionAbortedError("a write operation ended the batch transaction")
            if len(results) != len(run):
                raise RuntimeError(f"{operation!r} returned {len(results)} outcomes for {len(run)}")
            outcomes.extend(_outcome(result) for result in results)
        connection.execute("COMMIT")
        return outcomes

    def _isolated_transaction(self, batch: list[_Write]) -> list[_Outcome]:
        connection = self._require_connection()
        connection.execute("BEGIN IMMEDIATE")
        outcomes = [self._run_one(connection, write) for write in batch]
        connection.execute("COMMIT")
        return outcomes

    @staticmethod
    def _run_one(connection: sqlite3.Connection, write: _Write) -> _Outcome:
        """One write inside a savepoint: its failure undoes it alone, unless SQLite aborted all."""
        outcome = run_in_savepoint(connection, "write_op", partial(_one_write, write))
        if outcome[0] and not connection.in_transaction:
            raise TransactionAbortedError("a write operation ended the batch transaction")
        return outcome

    def _rollback(self) -> None:
        connection = self._require_connection()
        try:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
        except sqlite3.Error as exc:
            log.error("sqlite_rollback_failed", error=repr(exc))
        self._transaction_ended(committed=False)

    def _transaction_ended(self, *, committed: bool) -> None:
        """Tell the listeners; one that fails is logged, never taken for a failed commit."""
        for listener in self.listeners:
            try:
                listener(committed)
            except Exception as exc:
                log.error("sqlite_listener_failed", listener=repr(listener), error=repr(exc))

    def _settle(self, batch: list[_Write], outcomes: list[_Outcome]) -> None:
        """Resolve the futures with one wake-up per event loop, not one per write."""
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], _Outcome]]] = {}
        for write, outcome in zip(batch, outcomes, strict=True):
            by_loop.setdefault(write.future.get_loop(), []).append((write.future, outcome))
        for loop, items in by_loop.items():
            # RuntimeError: that loop is closed, so nobody is waiting any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle_futures, items)

    def _require_connection(self) -> sqlite3.Connection:
        if self._connection is None:
            raise DatabaseClosedError(f"SQLite database {self.path} is not open")
        return self._connection


class SqliteDatabase:
    """The SQLite file shared by :class:`SqliteDocumentStore` and :class:`SqliteAuditStore`.

    Adapters register their DDL with :meth:`add_schema` (normally before :meth:`open`, which
    creates everything in one transaction). :meth:`write` queues a function of the connection
    for the writer thread, group-committed with whatever else is queued; its future is done once
    that is durable. :meth:`write_many` queues one item for a :data:`BulkOperation`, which stores
    it with the other items queued for it. :meth:`read` runs a function on the read connection in
    one read transaction.

    Operations must not COMMIT or ROLLBACK themselves. Cancelling a caller does not withdraw a
    write it has queued. The database can be opened again after :meth:`close`.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        max_batch: int = 2048,
        busy_timeout_ms: int = 5000,
        commit_interval: float = 0.0,
        writer_nice: int = 0,
        on_commit: CommitObserver | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        if not 0 <= commit_interval <= 1:
            raise ValueError("commit_interval must be between 0 and 1 second")
        if not 0 <= writer_nice <= 19:
            raise ValueError("writer_nice must be between 0 and 19")
        self._path = Path(path)
        self._max_batch = max_batch
        self._commit_interval = commit_interval
        self._writer_nice = writer_nice
        self._on_commit = on_commit
        self._busy_timeout_ms = busy_timeout_ms
        self._schemas: list[tuple[str, ...]] = []
        self._listeners: list[TransactionListener] = []
        self._state: _State = "new"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writer: _WriterThread | None = None
        self._reader: concurrent.futures.ThreadPoolExecutor | None = None
        self._reader_connection: sqlite3.Connection | None = None
        self._commits_before = 0  # commits of earlier open/close cycles
        self._writes_before = 0

    # --- state -------------------------------------------------------------------------------

    @property
    def path(self) -> Path:
        return self._path

    @property
    def commit_interval(self) -> float:
        """Seconds a batch waits after the previous one began, under load (0: no pacing)."""
        return self._commit_interval

    @property
    def writer_nice(self) -> int:
        """Added to the writer thread's niceness (Linux): the event loop wins a busy CPU."""
        return self._writer_nice

    @property
    def is_open(self) -> bool:
        return self._state == "open"

    @property
    def healthy(self) -> bool:
        """Open, and the last batch committed (a failed commit marks it down until one works)."""
        return self._state == "open" and self._writer is not None and self._writer.healthy

    @property
    def commits(self) -> int:
        """Transactions committed by the writer since this object was created (incl. schema)."""
        current = self._writer.commits if self._writer is not None else 0
        return self._commits_before + current

    @property
    def writes(self) -> int:
        """Writes committed since this object was created: ``writes / commits`` is the batching."""
        current = self._writer.writes if self._writer is not None else 0
        return self._writes_before + current

    # --- schema ------------------------------------------------------------------------------

    def add_schema(self, statements: Sequence[str]) -> None:
        """Register idempotent DDL (``CREATE ... IF NOT EXISTS``), one statement per item.

        Applied by :meth:`open`. When the database is already open it is queued as a write, so
        it runs before any write the registering adapter makes afterwards.
        """
        schema = tuple(statements)
        self._schemas.append(schema)
        if self._state == "open" and self._loop is not None:
            future = self._enqueue(_call_each, partial(_apply_ddl, schema), self._loop)
            future.add_done_callback(_log_schema_failure)

    def add_transaction_listener(self, listener: TransactionListener) -> None:
        """Call ``listener(committed)`` on the writer thread whenever a batch transaction ends.

        The writer calls it after every COMMIT (True) and every ROLLBACK of a batch (False; a
        batch that is retried write by write is rolled back first), and never lets it fail a
        write: it must be quick and must not raise. Registered while open, it is told from the
        next transaction on.
        """
        self._listeners.append(listener)
        if self._writer is not None:
            self._writer.listeners.append(listener)

    # --- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        """Open both connections, switch to WAL and create the registered schema."""
        if self._state == "open":
            return
        if self._state == "closing":
            raise DatabaseClosedError(f"SQLite database {self._path} is still closing")
        self._loop = asyncio.get_running_loop()
        writer = _WriterThread(
            self._path,
            self._max_batch,
            self._busy_timeout_ms,
            self._commit_interval,
            self._writer_nice,
            self._on_commit,
        )
        writer.schemas = list(self._schemas)
        writer.listeners = list(self._listeners)
        writer.start()
        try:
            await asyncio.wrap_future(writer.ready)
        except (sqlite3.Error, OSError) as exc:
            raise DatabaseOpenError(f"cannot open SQLite database {self._path}: {exc}") from exc
        reader = concurrent.futures.ThreadPoolExecutor(1, "collabgate-sqlite-reader")
        try:
            self._reader_connection = await self._loop.run_in_executor(
                reader, _connect_reader, self._path, self._busy_timeout_ms
            )
        except BaseException:
            writer.queue.put(None)
            await asyncio.to_thread(writer.join)
            reader.shutdown(wait=False)
            raise
        self._writer, self._reader, self._state = writer, reader, "open"

    async def close(self) -> None:
        """Commit every write queued so far, then close both connections."""
        if self._state != "open":
            return
        writer, reader = self._require_open()
        self._state = "closing"
        writer.stopping.set()
        writer.queue.put(None)  # after every queued write: the writer drains, then stops
        await asyncio.to_thread(writer.join)
        connection = self._reader_connection
        if connection is not None:
            await asyncio.get_running_loop().run_in_executor(reader, connection.close)
        await asyncio.to_thread(reader.shutdown)
        self._commits_before += writer.commits
        self._writes_before += writer.writes
        self._writer, self._reader, self._reader_connection = None, None, None
        self._state = "closed"

    # --- operations --------------------------------------------------------------------------

    def write(self, operation: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        """Queue ``operation`` for the writer thread; the future gives its result once committed.

        Queued when called, so writes are committed in the order of the calls. A future, not a
        coroutine: a caller on the hot path (an edit) adds callbacks to it and needs no task of
        its own per write.
        """
        return self._enqueue(_call_each, operation, running_loop())

    def write_many(self, operation: BulkOperation[P, R], item: P) -> asyncio.Future[R]:
        """Queue ``item`` for ``operation``; it runs with the other items queued for it, in bulk.

        ``operation`` must be the same object for writes to be grouped. Queued when called, like
        :meth:`write`; the future is done once the transaction holding the item is committed.
        """
        return self._enqueue(operation, item, running_loop())

    async def read(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``operation`` on the read connection inside one read transaction."""
        reader = self._require_open()[1]
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(reader, self._read_in_snapshot, operation)

    def _enqueue(
        self, operation: BulkOperation[Any, Any], item: Any, loop: asyncio.AbstractEventLoop
    ) -> asyncio.Future[Any]:
        writer = self._require_open()[0]
        future: asyncio.Future[Any] = loop.create_future()
        writer.queue.put(_Write(operation, item, future))
        return future

    def _read_in_snapshot(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        connection = self._reader_connection
        if connection is None:
            raise DatabaseClosedError(f"SQLite database {self._path} is not open")
        connection.execute("BEGIN")
        try:
            return operation(connection)
        finally:
            if connection.in_transaction:
                connection.execute("ROLLBACK")

    def _require_open(self) -> tuple[_WriterThread, concurrent.futures.ThreadPoolExecutor]:
        if self._state != "open" or self._writer is None or self._reader is None:
            raise DatabaseClosedError(f"SQLite database {self._path} is not open")
        return self._writer, self._reader


def _connect_reader(path: Path, busy_timeout_ms: int) -> sqlite3.Connection:
    connection = _connect(path, busy_timeout_ms)
    connection.execute("PRAGMA query_only = ON")
    return connection


def _apply_ddl(statements: Sequence[str], connection: sqlite3.Connection) -> None:
    for statement in statements:
        connection.execute(statement)


def _log_schema_failure(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("sqlite_schema_failed", error=repr(future.exception()))
