"""Documents: one compacted snapshot per resource plus the Y.js updates after it.

Revision ID: 0001
Revises: (none)
"""

from __future__ import annotations

from alembic import op

from collabgate.storage.migrations._support import refuse_to_drop_rows

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE document_snapshots (
            resource_id text PRIMARY KEY,
            revision bigint NOT NULL CHECK (revision >= 0),
            snapshot bytea NOT NULL
        )
        """
    )
    # Clustered by its primary key in practice: a load is one index range scan, an append one
    # b-tree insert, a compaction one range delete.
    op.execute(
        """
        CREATE TABLE document_updates (
            resource_id text NOT NULL,
            revision bigint NOT NULL CHECK (revision >= 1),
            data bytea NOT NULL,
            PRIMARY KEY (resource_id, revision)
        )
        """
    )


def downgrade() -> None:
    refuse_to_drop_rows("document_updates", "document_snapshots")
    op.execute("DROP TABLE document_updates")
    op.execute("DROP TABLE document_snapshots")
