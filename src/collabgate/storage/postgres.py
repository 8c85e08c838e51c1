"""PostgreSQL for the production adapters: one asyncpg pool, group-commit writers, health.

Why this shape (the server-side counterpart of :mod:`collabgate.storage.sqlite`):

* **Group commit.** Every commit costs the server a WAL flush (an fsync: milliseconds). Each *lane*
  has ONE writer task: whenever it is free it takes every write queued on its lane (up to
  ``max_batch``), runs them in ONE transaction on one pooled connection, commits once, and only
  then resolves the callers' futures. A lone write starts at once: there is no timer to wait for.
* **Lanes** keep unrelated writes from waiting on each other. The audit lane holds the
  cross-instance ``audit_head`` row lock for the length of its transaction; document appends, which
  a user is waiting on, never queue behind it.
* **Bulk operations.** Consecutive writes of one kind in a batch are handed to their operation
  together, so 200 concurrent appends become ONE ``INSERT ... SELECT FROM unnest(...)``, not 200
  round trips. An operation may fail single items (a duplicate revision) by returning an exception
  for them, without failing the rest of the batch.
* **Optimistic batch, isolation only on failure.** If an operation raises, the batch is rolled back
  and run again with a SAVEPOINT around each write, so the failing write fails alone and the others
  still commit together.
* **One exception for "PostgreSQL is away".** Refused or reset connections, terminated backends,
  timeouts, "database not accepting connections", a read-only server after a failover: all become
  :class:`PostgresUnavailableError`, a :class:`ConnectionError`, which the core answers with WS_5002
  and the audit trail answers by buffering and retrying. The connection it happened on is
  terminated, so the pool opens a fresh one next time: reconnecting needs nothing else. A batch
  that failed before its COMMIT was sent is retried once on a fresh connection (a pooled connection
  may be dead without knowing it); one that failed with its COMMIT in flight is not (its outcome is
  unknown: :class:`CommitOutcomeUnknownError`).

Start-up (:meth:`PostgresDatabase.open`) raises :class:`PostgresStartupError`, a
:class:`~collabgate.settings.SettingsError` naming ``COLLABGATE_DATABASE_URL`` (password redacted),
for a malformed URL, refused credentials, a missing database or an unreachable server, and
:class:`PostgresSchemaError` when the schema is not at this build's migration head.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeAlias, TypeVar, cast
from urllib.parse import unquote, urlsplit

import asyncpg
import asyncpg.exceptions as pg_errors
import structlog
from asyncpg.pool import PoolConnectionProxy

from collabgate.ops.metrics import Metrics
from collabgate.ops.redis_support import redact_url
from collabgate.settings import SettingsError
from collabgate.storage.batching import consecutive_runs
from collabgate.storage.migrations import SCHEMA_HEAD

log = structlog.get_logger(__name__)

DATABASE_URL_VARIABLE: Final = "COLLABGATE_DATABASE_URL"
#: The ``dependency`` label of ``collabgate_dependency_up`` / ``_failures_total``.
DEPENDENCY: Final = "postgres"
DEFAULT_LANE: Final = "default"

#: What operations receive: a connection borrowed from the pool.
if TYPE_CHECKING:
    Connection: TypeAlias = PoolConnectionProxy[asyncpg.Record]
else:  # the class is generic only in the type stubs
    Connection = PoolConnectionProxy

T = TypeVar("T")
P = TypeVar("P")
R = TypeVar("R")

#: Runs the items of consecutive writes of one kind, in order, inside the batch transaction.
#: Returns one outcome per item: a value, or an :class:`Exception` instance for an item that
#: failed alone and changed nothing. Raising fails the whole run (then each write is retried in
#: its own savepoint).
BulkOperation = Callable[[Connection, list[P]], Awaitable[Sequence[R | Exception]]]


# --- errors ----------------------------------------------------------------------------------------


class PostgresUnavailableError(ConnectionError):
    """PostgreSQL cannot be reached or cannot serve now; nothing of the failed call was stored."""


class CommitOutcomeUnknownError(PostgresUnavailableError):
    """The connection failed while COMMIT was in flight: the writes may or may not be stored."""


class PostgresClosedError(RuntimeError):
    """The database object is not open (never opened, closing or closed)."""


class PostgresStartupError(SettingsError):
    """PostgreSQL cannot be used at start-up; the message names COLLABGATE_DATABASE_URL.

    A :class:`SettingsError`, so the CLI reports it like any other bad configuration (exit 2).
    """


class PostgresSchemaError(PostgresStartupError):
    """The database is reachable but its schema is not the one this build needs."""


#: Failures that mean "PostgreSQL is not there for us now", as opposed to a bad statement.
_UNAVAILABLE: Final[tuple[type[BaseException], ...]] = (
    OSError,  # refused, reset, unreachable, DNS
    TimeoutError,  # connect or command timeout (asyncio.TimeoutError is TimeoutError)
    pg_errors.PostgresConnectionError,  # SQLSTATE class 08
    pg_errors.OperatorInterventionError,  # 57: terminated, shutting down, starting up, cancelled
    pg_errors.InsufficientResourcesError,  # 53: too many connections, disk full, out of memory
    pg_errors.ReadOnlySQLTransactionError,  # 25006: we are talking to a standby after a failover
    pg_errors.InterfaceError,  # "connection is closed" and other client-side connection states
    # A connection cut while a query was in flight can leave asyncpg's protocol mid-operation
    # ("cannot switch to state …"): that connection is unusable, the database may be fine.
    pg_errors.InternalClientError,
)


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means the database is away (retry later) rather than a bad request."""
    if isinstance(exc, pg_errors.ClientConfigurationError):
        return False
    return isinstance(exc, _UNAVAILABLE)


# --- URLs and start-up errors ----------------------------------------------------------------------


def redact(url: str) -> str:
    """``url`` without password or query (which may hold one), for messages and logs."""
    return redact_url(url)


def asyncpg_dsn(url: str) -> str:
    """The URL asyncpg understands; accepts SQLAlchemy's ``postgresql+asyncpg://`` spelling.

    Raises :class:`PostgresStartupError` for anything that is not a PostgreSQL URL.
    """
    scheme, separator, rest = url.partition("://")
    if not separator:
        raise PostgresStartupError(
            f"{DATABASE_URL_VARIABLE}: expected a postgresql://user:password@host:port/database"
            f" URL (got {redact(url)})"
        )
    base = scheme.split("+", 1)[0].lower()
    if base not in ("postgresql", "postgres"):
        raise PostgresStartupError(
            f"{DATABASE_URL_VARIABLE}: expected a postgresql:// URL, not {scheme}://"
            f" (got {redact(url)})"
        )
    return f"postgresql://{rest}"


def _scrub(text: str, url: str) -> str:
    """Remove the URL's password from a driver message, in case it echoed it back."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return text
    for secret in {password, unquote(password)} if password else set():
        text = text.replace(secret, "***")
    return text


def startup_error(url: str, exc: BaseException) -> PostgresStartupError:
    """The start-up error for a failed first connection, naming the variable, never the password."""
    shown = redact(url)
    detail = _scrub(str(exc) or type(exc).__name__, url)
    if isinstance(exc, pg_errors.InvalidAuthorizationSpecificationError):
        what = f"PostgreSQL at {shown} refused the credentials"
    elif isinstance(exc, pg_errors.InvalidCatalogNameError):
        what = f"the database named in {shown} does not exist"
    elif isinstance(exc, ValueError):
        what = f"invalid PostgreSQL URL {shown}"
    elif is_unavailable(exc):
        what = f"cannot reach PostgreSQL at {shown}"
    else:
        what = f"PostgreSQL at {shown} refused the connection"
    return PostgresStartupError(f"{DATABASE_URL_VARIABLE}: {what}: {detail}")


# --- the writer ------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Write:
    operation: BulkOperation[Any, Any]
    item: Any
    future: asyncio.Future[Any]


@dataclass(slots=True)
class _Attempt:
    """How far one try at a batch got: once COMMIT is sent, its outcome may be unknown."""

    commit_sent: bool = False
    committed: bool = False


async def _call_each(
    connection: Connection, operations: list[Callable[[Connection], Awaitable[Any]]]
) -> list[Any]:
    """The bulk form of plain writes: run them one after the other."""
    return [await operation(connection) for operation in operations]


async def _run_together(connection: Connection, batch: list[_Write]) -> list[object]:
    outcomes: list[object] = []
    for run in consecutive_runs(batch, lambda write: write.operation):
        operation = run[0].operation
        results = await operation(connection, [write.item for write in run])
        if len(results) != len(run):
            raise RuntimeError(f"{operation!r} returned {len(results)} outcomes for {len(run)}")
        outcomes.extend(results)
    return outcomes


async def _run_isolated(connection: Connection, batch: list[_Write]) -> list[object]:
    """Each write in its own savepoint: a failing write is undone and fails alone."""
    outcomes: list[object] = []
    for write in batch:
        await connection.execute("SAVEPOINT collabgate_write")
        try:
            (outcome,) = await write.operation(connection, [write.item])
        except Exception as exc:
            if is_unavailable(exc):
                raise
            await connection.execute("ROLLBACK TO SAVEPOINT collabgate_write")
            outcome = exc
        await connection.execute("RELEASE SAVEPOINT collabgate_write")
        outcomes.append(outcome)
    return outcomes


async def _transaction(
    connection: Connection, batch: list[_Write], attempt: _Attempt
) -> list[object]:
    """Run ``batch`` in one transaction: all together first, one savepoint each on failure."""
    await connection.execute("BEGIN")
    try:
        try:
            outcomes = await _run_together(connection, batch)
        except Exception as exc:
            if is_unavailable(exc):
                raise
            await connection.execute("ROLLBACK")
            if len(batch) == 1:
                return [exc]  # nothing else to save: the write fails alone
            log.info("postgres_batch_isolating", writes=len(batch), error=repr(exc))
            await connection.execute("BEGIN")
            outcomes = await _run_isolated(connection, batch)
        attempt.commit_sent = True
        await connection.execute("COMMIT")
        attempt.committed = True
    except BaseException:
        if connection.is_in_transaction() and not connection.is_closed():
            with contextlib.suppress(Exception):
                await connection.execute("ROLLBACK")
        raise
    return outcomes


def _settle(batch: list[_Write], outcomes: Sequence[object]) -> None:
    for write, outcome in zip(batch, outcomes, strict=True):
        if write.future.done():  # the caller was cancelled; the write happened (or not) anyway
            continue
        if isinstance(outcome, BaseException):
            write.future.set_exception(outcome)
        else:
            write.future.set_result(outcome)


class _LaneWriter:
    """One lane's single writer task: takes everything pending, commits it as one transaction."""

    def __init__(self, database: PostgresDatabase, lane: str, max_batch: int) -> None:
        self._database = database
        self._max_batch = max_batch
        self._queue: deque[_Write] = deque()
        self._wake = asyncio.Event()
        self._stopping = False
        self.commits = 0
        #: Writes that committed (one that failed alone inside a committed batch is not one).
        self.writes = 0
        self.task = asyncio.get_running_loop().create_task(
            self._serve(), name=f"postgres-writer-{lane}"
        )

    def submit(self, operation: BulkOperation[Any, Any], item: Any) -> asyncio.Future[Any]:
        """Queue a write synchronously, so writes commit in the order their callers started."""
        if self._stopping:
            raise PostgresClosedError("the PostgreSQL database is closing")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append(_Write(operation, item, future))
        self._wake.set()
        return future

    async def stop(self) -> None:
        """Commit everything queued so far, then end the task."""
        self._stopping = True
        self._wake.set()
        await asyncio.shield(self.task)

    async def _serve(self) -> None:
        try:
            while True:
                if not self._queue:
                    if self._stopping:
                        return
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                count = min(len(self._queue), self._max_batch)
                await self._run_batch([self._queue.popleft() for _ in range(count)])
        finally:
            leftovers = list(self._queue)
            self._queue.clear()
            _settle(leftovers, [PostgresClosedError("PostgreSQL writer stopped")] * len(leftovers))

    async def _run_batch(self, batch: list[_Write]) -> None:
        started = time.perf_counter()
        try:
            outcomes, committed = await self._database._commit_batch(batch)
        except asyncio.CancelledError:
            _settle(batch, [PostgresClosedError("PostgreSQL writer cancelled")] * len(batch))
            raise
        except Exception as exc:  # nothing of this batch is durable: tell every caller
            if not isinstance(exc, PostgresUnavailableError):
                log.error("postgres_batch_failed", writes=len(batch), error=repr(exc))
            outcomes = [exc] * len(batch)
        else:
            self.commits += committed
            self.writes += sum(1 for outcome in outcomes if not isinstance(outcome, Exception))
            if committed:
                self._database.observe_commit(time.perf_counter() - started)
        _settle(batch, outcomes)


# --- the database ----------------------------------------------------------------------------------


class PostgresDatabase:
    """The PostgreSQL database shared by the document and audit stores of one gateway instance.

    :meth:`write` / :meth:`write_many` queue a write on a lane's group-commit writer and return
    once it is committed; :meth:`read` runs a function on a pooled connection. Operations must not
    COMMIT or ROLLBACK themselves. Cancelling a caller does not withdraw a write it has queued. The
    object can be opened again after :meth:`close`.

    Operations must leave no session state behind (no ``SET``, ``LISTEN``, session-level advisory
    locks or open cursors): a connection goes back to the pool without asyncpg's reset query,
    which would cost a round trip on every batch and every read.
    """

    def __init__(
        self,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        max_batch: int = 2048,
        connect_timeout: float = 5.0,
        command_timeout: float = 30.0,
        health_check_interval: float | None = 5.0,
        metrics: Metrics | None = None,
        require_schema: bool = True,
        application_name: str = "collabgate",
    ) -> None:
        if max_batch < 1 or max_size < 1 or min_size < 0 or min_size > max_size:
            raise ValueError("need max_batch >= 1 and 0 <= min_size <= max_size >= 1")
        self._url = url
        self._min_size, self._max_size = min_size, max_size
        self._max_batch = max_batch
        self._connect_timeout = connect_timeout
        self._command_timeout = command_timeout
        self._health_interval = health_check_interval
        self._require_schema = require_schema
        self._application_name = application_name
        self._pool: asyncpg.Pool[asyncpg.Record] | None = None
        self._writers: dict[str, _LaneWriter] = {}
        self._watcher: asyncio.Task[None] | None = None
        self._closing = False
        self._healthy = False
        self._last_ok = 0.0
        self._commits_before = 0
        self._writes_before = 0
        self._up = metrics.dependency_up.labels(DEPENDENCY) if metrics else None
        self._failures = metrics.dependency_failures.labels(DEPENDENCY) if metrics else None
        self._commit_duration = metrics.storage_commit_duration if metrics else None

    # --- state -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The URL with its password redacted."""
        return redact(self._url)

    @property
    def is_open(self) -> bool:
        return self._pool is not None and not self._closing

    @property
    def healthy(self) -> bool:
        """Open, and the last call to PostgreSQL (or the periodic probe) succeeded."""
        return self.is_open and self._healthy

    @property
    def commits(self) -> int:
        """Batches committed by the writers since this object was created."""
        return self._commits_before + sum(writer.commits for writer in self._writers.values())

    @property
    def writes(self) -> int:
        """Writes committed since this object was created: ``writes / commits`` is the batching."""
        return self._writes_before + sum(writer.writes for writer in self._writers.values())

    def observe_commit(self, seconds: float) -> None:
        """Count one committed batch's time in ``collabgate_storage_commit_seconds``."""
        if self._commit_duration is not None:
            self._commit_duration.observe(seconds)

    # --- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect, check the schema, and start the health probe.

        Raises :class:`PostgresStartupError` (wrong URL, credentials, database, unreachable) or
        :class:`PostgresSchemaError` (not migrated: run ``collabgate migrate``).
        """
        if self._pool is not None:
            if self._closing:
                raise PostgresClosedError("the PostgreSQL database is still closing")
            return
        pool = await self._create_pool()
        try:
            await self._check_startup(pool)
        except BaseException:
            pool.terminate()
            raise
        self._pool, self._closing = pool, False
        self._succeeded()
        if self._health_interval:
            self._watcher = asyncio.get_running_loop().create_task(
                self._watch(self._health_interval), name="postgres-health"
            )

    async def close(self, grace_seconds: float = 10.0) -> None:
        """Commit every write queued so far, then close the pool (terminated after the grace)."""
        pool = self._pool
        if pool is None or self._closing:
            return
        self._closing = True
        try:
            for writer in list(self._writers.values()):
                await writer.stop()
            if self._watcher is not None:
                self._watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._watcher
            try:
                await asyncio.wait_for(pool.close(), grace_seconds)
            except TimeoutError:
                pool.terminate()
        finally:
            self._commits_before, self._writes_before = self.commits, self.writes
            self._writers.clear()
            self._watcher = None
            self._pool = None
            self._closing = False
            self._healthy = False

    async def _create_pool(self) -> asyncpg.Pool[asyncpg.Record]:
        dsn = asyncpg_dsn(self._url)
        try:
            return await asyncpg.create_pool(
                dsn,
                min_size=self._min_size,
                max_size=self._max_size,
                timeout=self._connect_timeout,
                command_timeout=self._command_timeout,
                # Recycle idle connections, so a pool never holds many that a restart killed.
                max_inactive_connection_lifetime=60.0,
                server_settings={"application_name": self._application_name},
                reset=_reset,
            )
        except Exception as exc:
            raise startup_error(self._url, exc) from None

    async def _check_startup(self, pool: asyncpg.Pool[asyncpg.Record]) -> None:
        try:
            async with pool.acquire(timeout=self._connect_timeout) as connection:
                versions = await _schema_versions(connection)
        except Exception as exc:
            raise startup_error(self._url, exc) from None
        if self._require_schema and versions != [SCHEMA_HEAD]:
            found = ", ".join(versions) if versions else "no collabgate schema"
            raise PostgresSchemaError(
                f"{DATABASE_URL_VARIABLE}: the database at {self.url} has {found}; this build"
                f" needs schema revision {SCHEMA_HEAD}: run `collabgate migrate`"
            )

    # --- operations --------------------------------------------------------------------------

    async def read(self, operation: Callable[[Connection], Awaitable[T]]) -> T:
        """Run ``operation`` on a pooled connection (autocommit: one statement, one snapshot).

        A failure on a connection that turned out dead is retried once on a fresh one.
        """
        for retry in (False, True):
            connection = await self._acquire()
            try:
                result = await operation(connection)
            except Exception as exc:
                if not is_unavailable(exc):
                    raise
                connection.terminate()
                if not retry:
                    continue
                self._failed(exc)
                raise PostgresUnavailableError(f"PostgreSQL unavailable: {exc!r}") from exc
            finally:
                await self._release(connection)
            self._succeeded()
            return result
        raise AssertionError("unreachable")

    def write(
        self, operation: Callable[[Connection], Awaitable[T]], *, lane: str = DEFAULT_LANE
    ) -> asyncio.Future[T]:
        """Queue ``operation`` for ``lane``'s next batch transaction; the future gives its
        result once committed. Queued when called, so writes commit in the order of the calls."""
        return cast("asyncio.Future[T]", self._writer(lane).submit(_call_each, operation))

    def write_many(
        self, operation: BulkOperation[P, R], item: P, *, lane: str
    ) -> asyncio.Future[R]:
        """Queue ``item`` for ``operation``; it runs with the other items queued for it, in bulk.

        ``operation`` must be the same object (or an equal bound method) for writes to be grouped.
        Queued when called; the future is done once the batch holding the item is committed (a
        future, not a coroutine, as for SQLite: no task per write on the edit path).
        """
        return cast("asyncio.Future[R]", self._writer(lane).submit(operation, item))

    async def ping(self) -> bool:
        """Whether PostgreSQL answers now (updates :attr:`healthy` and the metrics)."""
        try:
            await self.read(_select_one)
        except (PostgresUnavailableError, PostgresClosedError):
            return False
        return True

    # --- internals ---------------------------------------------------------------------------

    def _writer(self, lane: str) -> _LaneWriter:
        if not self.is_open:
            raise PostgresClosedError("the PostgreSQL database is not open")
        writer = self._writers.get(lane)
        if writer is None:
            writer = self._writers[lane] = _LaneWriter(self, lane, self._max_batch)
        return writer

    def _require_pool(self) -> asyncpg.Pool[asyncpg.Record]:
        if self._pool is None:
            raise PostgresClosedError("the PostgreSQL database is not open")
        return self._pool

    async def _acquire(self) -> Connection:
        """A pooled connection; any failure to get one means the database is away for us."""
        pool = self._require_pool()
        try:
            return await pool.acquire(timeout=self._connect_timeout)
        except Exception as exc:
            self._failed(exc)
            raise PostgresUnavailableError(
                f"cannot connect to PostgreSQL at {self.url}: {_scrub(repr(exc), self._url)}"
            ) from exc

    async def _release(self, connection: Connection) -> None:
        pool = self._pool
        if pool is None:
            connection.terminate()
            return
        try:
            await pool.release(connection, timeout=self._connect_timeout)
        except Exception as exc:  # the reset failed: the pool has dropped that connection
            log.info("postgres_release_failed", error=repr(exc))

    async def _commit_batch(self, batch: list[_Write]) -> tuple[list[object], bool]:
        """Commit ``batch`` once; retry once when a stale connection failed before COMMIT.

        Returns every write's outcome and whether a transaction was committed.
        """
        for retry in (False, True):
            connection = await self._acquire()
            attempt = _Attempt()
            try:
                outcomes = await _transaction(connection, batch, attempt)
            except Exception as exc:
                if not is_unavailable(exc):
                    raise
                connection.terminate()
                if not retry and not attempt.commit_sent:
                    continue
                self._failed(exc)
                error = (
                    CommitOutcomeUnknownError if attempt.commit_sent else PostgresUnavailableError
                )
                raise error(f"PostgreSQL unavailable: {exc!r}") from exc
            finally:
                await self._release(connection)
            self._succeeded()
            return outcomes, attempt.committed
        raise AssertionError("unreachable")

    def _succeeded(self) -> None:
        self._last_ok = time.monotonic()
        if not self._healthy:
            self._healthy = True
            if self._up is not None:
                self._up.set(1)
            log.info("postgres_available", url=self.url)

    def _failed(self, exc: BaseException) -> None:
        if self._failures is not None:
            self._failures.inc()
        if self._healthy or self._last_ok == 0.0:
            log.warning("postgres_unavailable", url=self.url, error=_scrub(repr(exc), self._url))
        self._healthy = False
        if self._up is not None:
            self._up.set(0)

    async def _watch(self, interval: float) -> None:
        """Probe when idle or down, so health (and the gauge) follows the server without traffic."""
        while True:
            await asyncio.sleep(interval)
            if not self._healthy or time.monotonic() - self._last_ok >= interval:
                await self.ping()


async def _reset(connection: asyncpg.Connection[asyncpg.Record]) -> None:
    """What the pool runs on release: only end a transaction left open (a bug), nothing else."""
    if connection.is_in_transaction():
        await connection.execute("ROLLBACK")


async def _select_one(connection: Connection) -> object:
    return await connection.fetchval("SELECT 1")


async def _schema_versions(connection: Connection) -> list[str]:
    """The Alembic revisions recorded in the database (none when it was never migrated)."""
    exists = await connection.fetchval("SELECT to_regclass('alembic_version') IS NOT NULL")
    if not exists:
        return []
    rows = await connection.fetch("SELECT version_num FROM alembic_version ORDER BY version_num")
    return [str(row[0]) for row in rows]
