"""Alembic environment for collabgate's PostgreSQL schema.

``collabgate migrate`` (:mod:`collabgate.storage.migrate`) opens the connection itself and passes
it in ``config.attributes["connection"]``; run from the ``alembic`` command line instead, this
file connects to ``sqlalchemy.url`` (or ``-x url=...``) on its own. Either way every migration of
one run shares one transaction (PostgreSQL has transactional DDL: a failed run changes nothing),
and an advisory lock makes concurrent runs (two instances deploying at once) take turns.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping
from typing import Any

from alembic import context
from alembic.runtime.migration import MigrationContext, MigrationInfo
from sqlalchemy import text
from sqlalchemy.engine import Connection

from collabgate.storage.migrate import create_engine

#: Advisory lock key held for the length of a migration run ("cgmg").
MIGRATION_LOCK_KEY = 0x63676D67


def _record_step(
    ctx: MigrationContext, step: MigrationInfo, heads: Collection[Any], run_args: Mapping[str, Any]
) -> None:
    """Collect the revisions applied (or reverted), for migrate() to report."""
    context.config.attributes.setdefault("applied", []).append(str(step.up_revision_id))


def run_on(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=None,
        on_version_apply=_record_step,
        transactional_ddl=True,
    )
    with context.begin_transaction():
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        context.run_migrations()


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url")
    return url or context.config.get_main_option("sqlalchemy.url") or ""


async def _run_standalone(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(run_on)
    finally:
        await engine.dispose()


def main() -> None:
    if context.is_offline_mode():  # `alembic upgrade --sql`: print the SQL for a DBA to review
        context.configure(url=_url() or "postgresql://", literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    connection = context.config.attributes.get("connection")
    if connection is not None:
        run_on(connection)
    else:
        asyncio.run(_run_standalone(_url()))


main()
