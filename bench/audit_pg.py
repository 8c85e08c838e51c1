"""PostgreSQL storage benchmark: audit events written per second, document appends per second.

    .venv/bin/python bench/audit_pg.py
    .venv/bin/python bench/audit_pg.py --events 200000 --batch-sizes 512,4096 --writers 200 --seconds 10

It creates its own database (``cgbench_<uuid>``) on ``COLLABGATE_BENCH_DATABASE_URL`` (default: the
test server, postgresql://postgres@127.0.0.1:5432/postgres), migrates it, and drops it at the end.

Measured, each through the real adapters (PostgresDatabase group commit, synchronous_commit as the
server has it):

* audit, drain: ``--events`` events are queued in an AuditTrail in front of a PostgresAuditStore,
  then the trail is started and timed until every event is committed (written/s of the store path:
  chaining, hashing, one INSERT per batch, one commit per batch).
* audit, end to end: a producer records events as fast as it can on the same event loop while the
  trail writes them; written/s counts events committed per second of wall time.
* documents: ``--writers`` concurrent writers, each appending to its own resource in a loop for
  ``--seconds``; appends/s and per-append latency (call to durable return) p50/p99.

Not a test: it prints figures, with the machine and the command that produced them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from bench.host import cpu_model  # noqa: E402

from collabgate.audit.port import AuditEvent, AuditEventType  # noqa: E402
from collabgate.audit.postgres import PostgresAuditStore  # noqa: E402
from collabgate.audit.trail import AuditTrail  # noqa: E402
from collabgate.audit.verify import verify_store  # noqa: E402
from collabgate.documents.postgres import PostgresDocumentStore  # noqa: E402
from collabgate.storage.migrate import migrate  # noqa: E402
from collabgate.storage.postgres import PostgresDatabase, redact  # noqa: E402

SERVER_URL = os.environ.get(
    "COLLABGATE_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
TYPES = list(AuditEventType)


def audit_event(n: int) -> AuditEvent:
    return AuditEvent(
        event_type=TYPES[n % len(TYPES)],
        occurred_at=1_760_000_000_000 + n,
        instance_id="bench-1",
        user_id=f"user-{n % 500}",
        resource_id=f"patient:{n % 2000}",
        connection_id=f"conn-{n % 5000}",
        details={"revision": n, "bytes": 120 + n % 40},
    )


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def machine(url: str) -> list[str]:
    connection = await asyncpg.connect(url)
    try:
        version = await connection.fetchval("SHOW server_version")
        settings = {
            name: await connection.fetchval(f"SHOW {name}")
            for name in ("synchronous_commit", "fsync", "wal_sync_method", "shared_buffers")
        }
    finally:
        await connection.close()
    cpu = cpu_model()
    return [
        f"machine: {platform.node()} {platform.system()} {platform.release()}, {cpu},"
        f" {os.cpu_count()} CPUs",
        f"python {platform.python_version()}, asyncpg {asyncpg.__version__},"
        f" PostgreSQL {version} on the same host",
        "server: " + ", ".join(f"{key}={value}" for key, value in settings.items()),
        f"command: {' '.join([Path(sys.executable).name, *sys.argv])}",
    ]


async def audit_drain(url: str, events: int, batch_size: int) -> tuple[float, int]:
    """Events queued first, then the trail started and timed until all are committed."""
    database = PostgresDatabase(url, health_check_interval=None)
    await database.open()
    store = PostgresAuditStore(database)
    with tempfile.TemporaryDirectory() as spool_dir:
        trail = AuditTrail(
            store,
            max_queue=events + 1,
            spool_path=Path(spool_dir) / "spool.ndjson",
            batch_size=batch_size,
        )
        for n in range(events):
            trail.record(audit_event(n))
        commits_before = database.commits
        started = time.perf_counter()
        await trail.start()
        await trail.flush()
        elapsed = time.perf_counter() - started
        commits = database.commits - commits_before
        await trail.close()
    await database.close()
    return events / elapsed, commits


async def audit_end_to_end(url: str, events: int, batch_size: int) -> tuple[float, int]:
    """A producer records on the same loop while the trail writes: the gateway's situation."""
    database = PostgresDatabase(url, health_check_interval=None)
    await database.open()
    store = PostgresAuditStore(database)
    with tempfile.TemporaryDirectory() as spool_dir:
        trail = AuditTrail(
            store,
            max_queue=100_000,
            spool_path=Path(spool_dir) / "spool.ndjson",
            batch_size=batch_size,
        )
        await trail.start()
        started = time.perf_counter()
        for start in range(0, events, 1000):
            for n in range(start, min(events, start + 1000)):
                trail.record(audit_event(n))
            await asyncio.sleep(0)  # let the writer run between chunks, as request handling does
        await trail.flush()
        elapsed = time.perf_counter() - started
        written = trail.written_total
        await trail.close()
    await database.close()
    return written / elapsed, 0


async def documents(url: str, writers: int, seconds: float) -> dict[str, float]:
    database = PostgresDatabase(url, max_size=4, health_check_interval=None)
    await database.open()
    store = PostgresDocumentStore(database)
    latencies: list[float] = []
    update = os.urandom(96)
    run = uuid.uuid4().hex[:8]  # fresh resources on every run
    deadline = time.perf_counter() + seconds

    async def writer(index: int) -> None:
        revision = 0
        while time.perf_counter() < deadline:
            revision += 1
            started = time.perf_counter()
            await store.append(f"patient:{run}:{index}", revision, update)
            latencies.append(time.perf_counter() - started)

    commits_before = database.commits
    started = time.perf_counter()
    await asyncio.gather(*(writer(index) for index in range(writers)))
    elapsed = time.perf_counter() - started
    commits = database.commits - commits_before
    await database.close()
    return {
        "appends_per_s": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "appends_per_commit": len(latencies) / max(commits, 1),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch-sizes", default="512,4096", help="AuditTrail batch sizes to try")
    parser.add_argument("--writers", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()

    name = f"cgbench_{uuid.uuid4().hex}"
    url = urlunsplit(urlsplit(SERVER_URL)._replace(path=f"/{name}"))
    admin = await asyncpg.connect(SERVER_URL)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        await migrate(url)
        for line in await machine(url):
            print(line)
        print(f"database: {redact(url)}")
        for batch_size in (int(size) for size in args.batch_sizes.split(",")):
            rate, commits = await audit_drain(url, args.events, batch_size)
            print(
                f"audit drain      batch_size={batch_size:5d}: {rate:9,.0f} events/s written"
                f" ({args.events:,} events, {commits} commits)"
            )
            rate, _ = await audit_end_to_end(url, args.events, batch_size)
            print(
                f"audit end-to-end batch_size={batch_size:5d}: {rate:9,.0f} events/s recorded"
                " and written (producer on the same loop)"
            )
        database = PostgresDatabase(url, health_check_interval=None)
        await database.open()
        report = await verify_store(PostgresAuditStore(database))
        await database.close()
        print(f"audit chain verified: ok={report.ok}, {report.records_checked:,} records")
        result = await documents(url, args.writers, args.seconds)
        print(
            f"documents {args.writers} concurrent writers, {args.seconds:g}s:"
            f" {result['appends_per_s']:,.0f} appends/s, p50 {result['p50_ms']:.2f} ms,"
            f" p99 {result['p99_ms']:.2f} ms, {result['appends_per_commit']:.0f} appends/commit"
        )
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
