"""Schema migrations for PostgreSQL, as ``collabgate migrate`` runs them from an installed package.

The Alembic configuration is built here in code (no ``alembic.ini``), pointing at the revision
scripts shipped in :mod:`collabgate.storage.migrations`. Migrations talk to PostgreSQL through
SQLAlchemy's asyncpg dialect, with connections made by asyncpg from the very URL the gateway uses,
so ``sslmode`` and every other URL option mean the same in both. The gateway's hot path never
imports this module.

Developers can still use the alembic command line, e.g. to print the SQL for review::

    alembic -c /dev/null -x url=postgresql://... upgrade head --sql   # (script_location set below)
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Final, Literal

import asyncpg
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from collabgate.storage.migrations._support import ALLOW_DATA_LOSS, DataLossRefusedError
from collabgate.storage.postgres import asyncpg_dsn, redact, startup_error

SCRIPT_LOCATION: Final = str(Path(__file__).with_name("migrations"))
#: Months of audit partitions kept ready after the current one.
PARTITIONS_AHEAD: Final = 2

_Direction = Literal["upgrade", "downgrade"]

#: Alembic keeps its ``context`` and ``op`` in module globals, so one process runs one migration at
#: a time (other processes are kept in turn by the advisory lock in env.py).
_ALEMBIC_LOCK = threading.Lock()


class MigrationError(RuntimeError):
    """A migration failed; nothing of the run was applied (one transaction)."""


def alembic_config() -> Config:
    """The Alembic configuration for the shipped scripts (what ``alembic.ini`` would hold)."""
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.set_main_option("path_separator", "os")
    return config


def head_revision() -> str:
    """The newest revision among the shipped scripts."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise MigrationError("no migration scripts found")
    return head


def create_engine(url: str, *, connect_timeout: float = 10.0) -> AsyncEngine:
    """An engine whose connections asyncpg makes from ``url`` (validated like the gateway's)."""
    dsn = asyncpg_dsn(url)
    return create_async_engine(
        "postgresql+asyncpg://",
        async_creator=partial(asyncpg.connect, dsn, timeout=connect_timeout),
        poolclass=NullPool,
    )


async def migrate(database_url: str, *, revision: str = "head") -> list[str]:
    """Upgrade the schema to ``revision`` and make sure the next audit partitions exist.

    Returns the revisions applied, oldest first (empty when already there). Safe to run from
    several instances at once. Raises :class:`~collabgate.storage.postgres.PostgresStartupError`
    (naming COLLABGATE_DATABASE_URL) when the database cannot be reached, and
    :class:`MigrationError` when a migration fails (then nothing was changed).
    """
    return await _run(database_url, "upgrade", revision, allow_data_loss=False)


async def downgrade(
    database_url: str, *, revision: str, allow_data_loss: bool = False
) -> list[str]:
    """Downgrade to ``revision`` (``"base"`` for nothing); returns the revisions reverted.

    Refuses to drop tables holding documents or audit events unless ``allow_data_loss``.
    """
    return await _run(database_url, "downgrade", revision, allow_data_loss=allow_data_loss)


async def current_revision(database_url: str) -> str | None:
    """The revision the database is at (None when it was never migrated)."""
    await _check_reachable(database_url)
    engine = create_engine(database_url)
    try:
        async with _alembic_turn(), engine.connect() as connection:
            return await connection.run_sync(_current)
    finally:
        await engine.dispose()


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def _run(
    url: str, direction: _Direction, revision: str, *, allow_data_loss: bool
) -> list[str]:
    await _check_reachable(url)
    config = alembic_config()
    config.attributes[ALLOW_DATA_LOSS] = allow_data_loss
    engine = create_engine(url)
    try:
        async with _alembic_turn(), engine.begin() as connection:
            await connection.run_sync(_command, config, direction, revision)
            if direction == "upgrade" and await connection.scalar(_HAS_PARTITION_FUNCTION):
                await connection.execute(_ENSURE_PARTITIONS, {"ahead": PARTITIONS_AHEAD})
    except DataLossRefusedError as exc:
        raise MigrationError(str(exc)) from exc
    except DBAPIError as exc:
        raise MigrationError(f"migration of {redact(url)} failed: {exc.orig or exc}") from exc
    finally:
        await engine.dispose()
    applied: list[str] = config.attributes.get("applied", [])
    return list(applied)


@contextlib.asynccontextmanager
async def _alembic_turn() -> AsyncIterator[None]:
    """Hold the process-wide Alembic lock without blocking the event loop (polls; cancellable)."""
    # A threading.Lock (shared by every loop and thread of the process) has no awaitable form.
    while not _ALEMBIC_LOCK.acquire(blocking=False):  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    try:
        yield
    finally:
        _ALEMBIC_LOCK.release()


def _command(connection: Connection, config: Config, direction: _Direction, revision: str) -> None:
    config.attributes["connection"] = connection
    if direction == "upgrade":
        command.upgrade(config, revision)
    else:
        command.downgrade(config, revision)


#: Partitions are also created on write when missing; creating them ahead keeps that DDL (and its
#: brief lock on audit_log) off the first appends of a month.
_ENSURE_PARTITIONS = text("SELECT count(*) FROM collabgate_audit_ensure_partitions(now(), :ahead)")
_HAS_PARTITION_FUNCTION = text(
    "SELECT to_regprocedure('collabgate_audit_ensure_partitions(timestamptz,integer)') IS NOT NULL"
)


async def _check_reachable(url: str) -> None:
    """Fail with the gateway's start-up message (naming the variable) before Alembic starts."""
    dsn = asyncpg_dsn(url)
    try:
        connection = await asyncpg.connect(dsn, timeout=10.0)
    except Exception as exc:
        raise startup_error(url, exc) from None
    await connection.close()
