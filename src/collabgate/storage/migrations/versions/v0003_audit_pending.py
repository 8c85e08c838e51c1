"""Audit records written with a document update, waiting to be chained.

Revision ID: 0003
Revises: 0002

A document update and its ``DOCUMENT_UPDATED`` record must be durable together: a gateway killed
between two transactions would otherwise leave a stored, relayed edit the trail does not show.
Chaining the record in the update's own transaction makes every document commit take the
cross-instance ``audit_head`` row lock. Measured with three instances (bench/cluster.py, two
rounds each, docs/performance.md): cheaper while the cluster keeps up, but past its capacity the
document commits queue on that lock and throughput collapses (900 users: 50 and 132 updates/s of
~800, ACK p99 9 to 11 s) where this layout, like the build before it, still stores ~800 a second.
So the update's transaction inserts the record here, with no lock beyond its own row, and the
audit lane moves these rows into ``audit_log`` under the head lock (``DELETE … RETURNING`` and
the chained insert in one transaction, so a record is chained exactly once, by whichever instance
gets there first).

``canonical`` holds the bytes the chain hashes, computed when the record was made, so chaining
needs no re-encoding. Rows are deleted when chained, so DELETE is allowed; UPDATE and TRUNCATE
are refused. An application role needs ``SELECT, INSERT, DELETE`` here and ``USAGE`` on the
sequence.
"""

from __future__ import annotations

from alembic import op

from collabgate.storage.migrations._support import refuse_to_drop_rows

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

UPGRADE = (
    """
    CREATE TABLE audit_pending (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        occurred_at bigint NOT NULL,
        event_type text NOT NULL,
        instance_id text NOT NULL,
        user_id text,
        resource_id text,
        connection_id text,
        details text NOT NULL,
        canonical bytea NOT NULL
    )
    """,
    """
    CREATE TRIGGER audit_pending_no_update BEFORE UPDATE ON audit_pending
    FOR EACH ROW EXECUTE FUNCTION collabgate_audit_refuse('audit_pending')
    """,
    """
    CREATE TRIGGER audit_pending_no_truncate BEFORE TRUNCATE ON audit_pending
    FOR EACH STATEMENT EXECUTE FUNCTION collabgate_audit_refuse('audit_pending')
    """,
    "COMMENT ON TABLE audit_pending IS 'collabgate audit records stored with a document update,"
    " waiting to be chained into audit_log'",
)


def upgrade() -> None:
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    refuse_to_drop_rows("audit_pending")
    op.execute("DROP TABLE audit_pending")
