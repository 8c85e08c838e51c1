"""What one document update costs the embedded SQLite file, against the previous layout.

    .venv/bin/python bench/sqlite_writes.py
    .venv/bin/python bench/sqlite_writes.py --updates 72000 --per-commit 4,20,180 --resources 200

The SQLite writer thread of an embedded gateway stores every update as one document row and one
``DOCUMENT_UPDATED`` audit record, in group commits. This replays that write pattern without a
gateway: ``--updates`` updates in transactions of ``--per-commit`` updates each (one table per
batch size), from ``--users`` users spread over ``--resources`` documents (10 users per
document, as in bench/yjs_relay), through the stores' own bulk operations (``_append_many``, the
audit chain's ``_append``) on a connection opened as the writer opens it (WAL, ``synchronous =
FULL``). The writer commits whatever waits whenever it is free, so the batch size follows the
load and the disk's fsync time: in bench/yjs_relay it committed 10-20 updates at a time at 1,000
clients on a slow VM, about 180 at 2,000 clients on a faster one, and 4-8 at 1,500 clients on
a fast machine whose fsync takes well under a millisecond. Variants, in alternating rounds:

* ``as shipped``: document updates appended to a small staging log and moved to
  ``document_updates`` in bulk; audit records indexed by user and resource in bulk
  (documents/sqlite.py, audit/sqlite.py); each resource's highest revision, which the revision
  check needs, kept in memory by the writer;
* ``revision check from the tables``: as shipped, but every batch reads those highest revisions
  from the tables (a scan of the staging table), as before 2026-12-03, 18:15 UTC;
* ``previous layout`` (the reference): each update straight into ``document_updates`` and each
  record into ``audit_log`` with secondary indexes on user and resource, as before 2026-12-03;
* ``staging clustered by key``: the staging table as on 2026-12-03, clustered on (resource_id,
  revision) like ``document_updates``, so a commit's updates dirty a page each there too;
* ``documents only`` and ``audit only``: one of the two writes per update, as shipped.

It prints CPU (process time: SQLite's page work, and the WAL writes and fsyncs the kernel does
for the thread) and wall time per update, and the bytes the process wrote to storage per update
(``/proc/self/io``). Rows whose keys are spread over a large B-tree (a document's updates among
all documents', an index entry among all users') each dirty a page of their own, and a commit
writes every dirtied page to the WAL whole: the cost per update is set by pages, not by the
bytes of the rows. The files go to a temporary folder; ``BENCH_DIR=/dev/shm`` takes the disk
out of the figures. Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

from collabgate.audit import sqlite as audit_sqlite
from collabgate.audit.chain import PreparedEvent, prepare_event
from collabgate.audit.port import AuditEvent, AuditEventType
from collabgate.documents import sqlite as documents_sqlite
from collabgate.storage.sqlite import _prepare_writer


@dataclass(frozen=True)
class Variant:
    name: str
    documents: bool = True
    audit: bool = True
    #: Every row straight into its clustered table and secondary indexes (the reference).
    previous_layout: bool = False
    #: Documents staged in a table clustered by key, as on 2026-12-03 (the audit as shipped).
    keyed_staging: bool = False
    #: The revision check reads every batch's highest revisions from the tables, as before the
    #: writer kept them in memory (documents/sqlite.RevisionHeads).
    heads_from_tables: bool = False


VARIANTS = (
    Variant("as shipped"),
    Variant("previous layout (reference)", previous_layout=True),
    Variant("staging clustered by key (2026-12-03)", keyed_staging=True),
    Variant("revision check from the tables", heads_from_tables=True),
    Variant("as shipped, documents only", audit=False),
    Variant("as shipped, audit only", documents=False),
)

#: The staging table of 2026-12-03: clustered by key, so a commit's rows land all over it.
KEYED_STAGING_TABLE = (
    "DROP TABLE document_updates_staged",
    "CREATE TABLE document_updates_staged (resource_id TEXT NOT NULL, revision INTEGER NOT NULL,"
    " data BLOB NOT NULL, PRIMARY KEY (resource_id, revision)) WITHOUT ROWID",
)

#: The audit indexes the previous layout kept on ``audit_log`` itself.
PREVIOUS_AUDIT_INDEXES = (
    "CREATE INDEX audit_log_user_id ON audit_log (user_id)",
    "CREATE INDEX audit_log_resource_id ON audit_log (resource_id)",
)


@dataclass(frozen=True)
class Workload:
    commits: int
    per_commit: int
    resources: int
    users: int


@dataclass(frozen=True)
class Cost:
    cpu_us: float
    wall_us: float
    disk_kb: float


#: One commit's writes: document appends and prepared audit events.
Commit = tuple[list[tuple[str, int, bytes]], list[PreparedEvent]]


def written_bytes() -> int:
    return int(psutil.Process().io_counters().write_bytes)


def open_database(path: Path, variant: Variant) -> sqlite3.Connection:
    connection = _prepare_writer(path, busy_timeout_ms=5000)
    connection.execute("BEGIN IMMEDIATE")
    for statement in documents_sqlite.SCHEMA + audit_sqlite.SCHEMA:
        connection.execute(statement)
    if variant.keyed_staging:
        for statement in KEYED_STAGING_TABLE:
            connection.execute(statement)
    if variant.previous_layout:
        for statement in PREVIOUS_AUDIT_INDEXES:
            connection.execute(statement)
    connection.execute("COMMIT")
    return connection


def next_commit(workload: Workload, rng: random.Random, revisions: dict[str, int]) -> Commit:
    """The writes of one group commit, as the event loop hands them to the writer thread."""
    appends: list[tuple[str, int, bytes]] = []
    events = []
    users_per_resource = max(1, workload.users // workload.resources)
    for _ in range(workload.per_commit):
        room = rng.randrange(workload.resources)
        user = f"u{room}-{rng.randrange(users_per_resource)}"
        resource_id = f"bench:room-{room}"
        revision = revisions[resource_id] = revisions.get(resource_id, 0) + 1
        appends.append((resource_id, revision, rng.randbytes(40)))
        events.append(
            AuditEvent(
                AuditEventType.DOCUMENT_UPDATED,
                occurred_at=int(time.time() * 1000),
                instance_id="bench",
                user_id=user,
                resource_id=resource_id,
                connection_id=f"c-{user}",
                details={"revision": revision, "bytes": 40},
            )
        )
    return appends, [prepare_event(event) for event in events]


def store(
    connection: sqlite3.Connection,
    variant: Variant,
    commit: Commit,
    heads: documents_sqlite.RevisionHeads,
) -> None:
    """What the writer thread does with one batch: one transaction, one fsync."""
    appends, prepared = commit
    connection.execute("BEGIN IMMEDIATE")
    if variant.documents and variant.previous_layout:
        insert_checked(connection, "document_updates", appends)
    elif variant.documents and variant.keyed_staging:
        insert_checked(connection, "document_updates_staged", appends)
        (staged,) = connection.execute("SELECT count(*) FROM document_updates_staged").fetchone()
        if staged >= documents_sqlite.FOLD_ROWS:
            documents_sqlite._fold(connection)
    elif variant.documents:
        documents_sqlite._append_many(
            connection,
            [(append, None, None) for append in appends],
            heads=None if variant.heads_from_tables else heads,
        )
    if variant.audit:
        index_rows = sys.maxsize if variant.previous_layout else audit_sqlite.INDEX_ROWS
        audit_sqlite._append(prepared, connection, index_rows=index_rows)
    connection.execute("COMMIT")
    heads.transaction_ended(committed=True)


def insert_checked(
    connection: sqlite3.Connection, table: str, appends: list[tuple[str, int, bytes]]
) -> None:
    """An earlier ``_append_many``: the same revision check, the rows into ``table``."""
    top = documents_sqlite._highest_revisions(connection, list({r for r, _, _ in appends}))
    accepted = [item for item in appends if item[1] > top.get(item[0], 0)]
    documents_sqlite.insert_updates(connection, table, accepted)


def measure(variant: Variant, workload: Workload, folder: Path, seed: int) -> Cost:
    path = folder / f"{seed}.sqlite3"
    connection = open_database(path, variant)
    rng, revisions = random.Random(seed), dict[str, int]()
    heads = documents_sqlite.RevisionHeads()
    cpu = wall = 0.0
    disk = 0
    try:
        for _ in range(workload.commits):
            commit = next_commit(workload, rng, revisions)
            cpu_before, wall_before, disk_before = (
                time.process_time(),
                time.monotonic(),
                written_bytes(),
            )
            store(connection, variant, commit, heads)
            cpu += time.process_time() - cpu_before
            wall += time.monotonic() - wall_before
            disk += written_bytes() - disk_before
    finally:
        connection.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    updates = workload.commits * workload.per_commit
    return Cost(1e6 * cpu / updates, 1e6 * wall / updates, disk / updates / 1024)


def run_rounds(workload: Workload, repeat: int) -> dict[str, list[Cost]]:
    costs: dict[str, list[Cost]] = {variant.name: [] for variant in VARIANTS}
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as folder:
        for round_ in range(repeat):
            for variant in VARIANTS:
                costs[variant.name].append(measure(variant, workload, Path(folder), round_))
    return costs


def median(costs: list[Cost], field: Callable[[Cost], float]) -> float:
    return statistics.median(field(cost) for cost in costs)


def print_costs(costs: dict[str, list[Cost]]) -> None:
    print(f"  {'variant':<40}{'cpu µs/update':>16}{'wall µs/update':>16}{'disk KB/update':>16}")
    for name, runs in costs.items():
        print(
            f"  {name:<40}{median(runs, lambda c: c.cpu_us):>16.1f}"
            f"{median(runs, lambda c: c.wall_us):>16.1f}{median(runs, lambda c: c.disk_kb):>16.1f}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--updates", type=int, default=36_000, help="per variant and round")
    parser.add_argument("--per-commit", default="20,180", help="batch sizes, one table each")
    parser.add_argument("--resources", type=int, default=200)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3, help="rounds; medians are reported")
    args = parser.parse_args()
    print(
        f"machine: {platform.node()} · {psutil.cpu_count()} CPUs · "
        f"Python {platform.python_version()} · SQLite {sqlite3.sqlite_version}"
    )
    print(f"command: {' '.join(sys.argv)}")
    for per_commit in (int(size) for size in args.per_commit.split(",")):
        commits = max(1, args.updates // per_commit)
        workload = Workload(commits, per_commit, args.resources, args.users)
        print(
            f"\n{workload.commits} commits of {workload.per_commit} updates, {workload.users} users"
            f" over {workload.resources} documents, {args.repeat} rounds (medians)\n"
        )
        print_costs(run_rounds(workload, max(1, args.repeat)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
