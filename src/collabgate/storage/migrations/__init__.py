"""Alembic migrations for the PostgreSQL schema, shipped inside the package.

``collabgate migrate`` (:func:`collabgate.storage.migrate.migrate`) builds the Alembic
configuration in code and points it here, so no ``alembic.ini`` is needed next to an installed
gateway. This module imports nothing heavy: the gateway reads :data:`SCHEMA_HEAD` at start-up to
refuse a database that is not migrated, without loading Alembic or SQLAlchemy.
"""

from __future__ import annotations

from typing import Final

#: The newest revision in ``versions/``; a test checks that Alembic agrees.
SCHEMA_HEAD: Final = "0002"
