"""Audit trail: append-only, hash-chained, partitioned by month of recording.

Revision ID: 0002
Revises: 0001

Layout and why:

* ``audit_log`` is partitioned by RANGE on ``recorded_at``, the time PostgreSQL stored the row,
  one partition per UTC month (``audit_log_2026_11``). ``recorded_at`` is assigned under the
  ``audit_head`` row lock and never goes backwards, so seq order and partition order agree: the
  oldest partitions always hold a *prefix* of the chain, and retention can drop whole months while
  verification starts from one anchor. (Partitioning by the event's own ``occurred_at`` would put
  a late or wrongly-clocked event's high seq into an old or far-future partition, so dropping old
  months would either punch holes in the chain or be blocked for good.)
* ``occurred_at`` stays the event's epoch milliseconds as ``bigint``: it is hashed, and an integer
  column returns exactly the integer that was hashed, with no time-zone or precision conversions
  on the hot path.
* ``details`` is JSON *text*, not ``jsonb``: jsonb re-orders keys and rewrites numbers, and the
  canonical bytes must come back unchanged (see ``collabgate.audit.chain``).
* Indexes: (user_id, occurred_at), (resource_id, occurred_at), (event_type, occurred_at) answer
  "what did X do / what happened to Y / all Z events" in time order; BRIN on occurred_at answers
  time ranges (rows arrive in time order, so a BRIN index is tiny and almost free to maintain at
  tens of thousands of inserts a second). The primary key (seq, recorded_at) serves chain reads.
* Triggers refuse UPDATE, DELETE and TRUNCATE on audit_log (each partition too), audit_head and
  audit_retention. Dropping whole expired partitions is the one deletion allowed; each drop leaves a
  row in ``audit_retention`` (the *retention anchor*) from which verification starts.

Privileges (a deployment with separate owner and application roles): the migration role owns
everything; grant the application role only
``GRANT SELECT, INSERT ON audit_log TO app; GRANT SELECT, UPDATE ON audit_head TO app;
GRANT SELECT ON audit_retention TO app; REVOKE UPDATE, DELETE, TRUNCATE ON audit_log,
audit_retention FROM app;`` and EXECUTE on ``collabgate_audit_ensure_partitions`` (SECURITY
DEFINER: it creates partitions with the owner's rights). Retention (dropping partitions) then runs
with the owner's credentials.
"""

from __future__ import annotations

from alembic import op

from collabgate.storage.migrations._support import refuse_to_drop_rows

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

GENESIS_HASH = "0" * 64

UPGRADE = (
    """
    CREATE FUNCTION collabgate_audit_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '% is append-only: % refused', TG_ARGV[0], TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END
    $$
    """,
    """
    CREATE TABLE audit_log (
        seq bigint NOT NULL,
        recorded_at timestamptz NOT NULL,
        occurred_at bigint NOT NULL,
        event_type text NOT NULL,
        instance_id text NOT NULL,
        user_id text,
        resource_id text,
        connection_id text,
        details text NOT NULL,
        prev_hash text NOT NULL,
        hash text NOT NULL,
        PRIMARY KEY (seq, recorded_at)
    ) PARTITION BY RANGE (recorded_at)
    """,
    "CREATE INDEX audit_log_user_id ON audit_log (user_id, occurred_at)",
    "CREATE INDEX audit_log_resource_id ON audit_log (resource_id, occurred_at)",
    "CREATE INDEX audit_log_event_type ON audit_log (event_type, occurred_at)",
    "CREATE INDEX audit_log_occurred_at ON audit_log USING brin (occurred_at)",
    """
    CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
        FOR EACH ROW EXECUTE FUNCTION collabgate_audit_refuse('audit_log')
    """,
    """
    CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
        FOR EACH ROW EXECUTE FUNCTION collabgate_audit_refuse('audit_log')
    """,
    """
    CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
        FOR EACH STATEMENT EXECUTE FUNCTION collabgate_audit_refuse('audit_log')
    """,
    # One row: the last (seq, hash) written and the recording time it was written at. Appends lock
    # it FOR UPDATE, which orders every gateway instance's appends into one chain.
    """
    CREATE TABLE audit_head (
        id smallint PRIMARY KEY CHECK (id = 1),
        seq bigint NOT NULL,
        hash text NOT NULL,
        recorded_at timestamptz NOT NULL
    )
    """,
    f"INSERT INTO audit_head (id, seq, hash, recorded_at) VALUES (1, 0, '{GENESIS_HASH}', '-infinity')",
    """
    CREATE FUNCTION collabgate_audit_head_forward() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.id IS DISTINCT FROM OLD.id
           OR NEW.seq < OLD.seq
           OR NEW.recorded_at < OLD.recorded_at
           OR NOT EXISTS (
               SELECT 1 FROM audit_log l
               WHERE l.seq = NEW.seq AND l.hash = NEW.hash AND l.recorded_at = NEW.recorded_at
           ) THEN
            RAISE EXCEPTION 'audit_head may only move forward onto a stored record'
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        RETURN NEW;
    END
    $$
    """,
    """
    CREATE TRIGGER audit_head_forward_only BEFORE UPDATE ON audit_head
        FOR EACH ROW EXECUTE FUNCTION collabgate_audit_head_forward()
    """,
    """
    CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head
        FOR EACH ROW EXECUTE FUNCTION collabgate_audit_refuse('audit_head')
    """,
    """
    CREATE TRIGGER audit_head_no_truncate BEFORE TRUNCATE ON audit_head
        FOR EACH STATEMENT EXECUTE FUNCTION collabgate_audit_refuse('audit_head')
    """,
    # One row per retention run: which partitions were dropped, and the last dropped record
    # (anchor_seq, anchor_hash), from which verification of what remains starts.
    """
    CREATE TABLE audit_retention (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        dropped_at timestamptz NOT NULL DEFAULT now(),
        retention_years integer NOT NULL,
        cutoff timestamptz NOT NULL,
        partitions text[] NOT NULL,
        anchor_seq bigint NOT NULL,
        anchor_hash text NOT NULL,
        head_seq bigint NOT NULL,
        head_hash text NOT NULL
    )
    """,
    """
    CREATE TRIGGER audit_retention_no_update BEFORE UPDATE ON audit_retention
        FOR EACH ROW EXECUTE FUNCTION collabgate_audit_refuse('audit_retention')
    """,
    """
    CREATE TRIGGER audit_retention_no_delete BEFORE DELETE ON audit_retention
        FOR EACH ROW EXECUTE FUNCTION collabgate_audit_refuse('audit_retention')
    """,
    """
    CREATE TRIGGER audit_retention_no_truncate BEFORE TRUNCATE ON audit_retention
        FOR EACH STATEMENT EXECUTE FUNCTION collabgate_audit_refuse('audit_retention')
    """,
    # Creates the month holding p_at and the p_ahead months after it, when missing. Idempotent and
    # safe to race: the advisory lock lets one caller create a month while the others wait and
    # then find it. SECURITY DEFINER so an application role without DDL rights can call it.
    """
    CREATE FUNCTION collabgate_audit_ensure_partitions(p_at timestamptz, p_ahead integer DEFAULT 2)
    RETURNS SETOF text
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path FROM CURRENT
    SET timezone = 'UTC'
    SET datestyle = 'ISO, YMD'
    AS $$
    DECLARE
        v_start timestamp;
        v_name text;
    BEGIN
        FOR i IN 0..greatest(p_ahead, 0) LOOP
            v_start := date_trunc('month', p_at AT TIME ZONE 'UTC') + make_interval(months => i);
            v_name := 'audit_log_' || to_char(v_start, 'YYYY_MM');
            CONTINUE WHEN to_regclass(v_name) IS NOT NULL;
            PERFORM pg_advisory_xact_lock(hashtext('collabgate_audit_partitions'));
            CONTINUE WHEN to_regclass(v_name) IS NOT NULL;
            EXECUTE format(
                'CREATE TABLE %I PARTITION OF audit_log FOR VALUES FROM (%L) TO (%L)',
                v_name, v_start AT TIME ZONE 'UTC', (v_start + interval '1 month') AT TIME ZONE 'UTC'
            );
            -- Row triggers are cloned onto partitions; statement (TRUNCATE) triggers are not.
            EXECUTE format(
                'CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON %I'
                ' FOR EACH STATEMENT EXECUTE FUNCTION collabgate_audit_refuse(%L)',
                v_name, 'audit_log'
            );
            RETURN NEXT v_name;
        END LOOP;
    END
    $$
    """,
    "SELECT collabgate_audit_ensure_partitions(now(), 2)",
    "COMMENT ON TABLE audit_log IS 'collabgate audit trail: append-only, hash-chained"
    " (see collabgate.audit.chain); monthly partitions by recorded_at'",
    "COMMENT ON TABLE audit_retention IS 'collabgate audit retention runs; verification of the"
    " remaining trail starts at the newest anchor'",
)

DOWNGRADE = (
    "DROP TABLE audit_log",
    "DROP TABLE audit_head",
    "DROP TABLE audit_retention",
    "DROP FUNCTION collabgate_audit_ensure_partitions(timestamptz, integer)",
    "DROP FUNCTION collabgate_audit_head_forward()",
    "DROP FUNCTION collabgate_audit_refuse()",
)


def upgrade() -> None:
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    refuse_to_drop_rows("audit_log", "audit_retention")
    for statement in DOWNGRADE:
        op.execute(statement)
