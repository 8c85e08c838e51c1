"""Cluster benchmark: three gateway instances on Redis + RabbitMQ + PostgreSQL against one
embedded instance (bench/fanout.py's run), at the same user counts, in one invocation.

    .venv/bin/python bench/cluster.py --steps 600,1200 --step-seconds 15

Users sit in rooms of N (5 by default), each room's users spread round-robin over the instances
(so a room of 5 on 3 instances has users on every instance and most deliveries cross the bus),
each user editing once a second. Prints, per step and setup: updates/s, deliveries/s, fan-out
latency p50/p99 (sender's send to peer's receive, both in one load-generator process: for the
cluster this mixes same-instance and cross-instance deliveries, ~3/4 of them cross-instance with
rooms of 5 on 3 instances), Y_UPDATE_ACK p99, lock acquire p99 (Redis in the cluster) and audit
events written/s (the gateways' audit_logs_written_total), and over each step the updates
renumbered by the store (``revision_conflicts``), failed publishes, edits published again after
one (``republished_sent``) and lost room events repaired from PostgreSQL (``gaps_repaired``).
Uses the machine's Redis (6379), RabbitMQ (5672) and PostgreSQL (5432) with a unique key prefix,
exchange and database.
Reuses bench/fanout.py's load generator by import. Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench.host import describe_host  # noqa: E402
from tests.support.gateway_process import GatewayProcess  # noqa: E402

import fanout  # noqa: E402
from fanout import WorkerResult, percentile, run_step  # noqa: E402

REDIS_URL = "redis://127.0.0.1:6379/0"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


def routed_worker_main(args: tuple[dict[str, str], tuple[Any, ...]]) -> WorkerResult:
    """bench/fanout.py's worker, with every client sent to its user's instance.

    fanout.run_worker connects every client to one URL; here the URL is picked by the token
    (one key pair serves all instances, so a token is valid on each).
    """
    url_by_token, worker_args = args
    original = fanout.__dict__["CollabClient"]

    def routed(url: str, token: str, *a: Any, **kw: Any) -> Any:
        return original(url_by_token.get(token, url), token, *a, **kw)

    fanout.__dict__["CollabClient"] = routed
    return fanout.worker_main(worker_args)


def print_warnings(gateways: list[GatewayProcess]) -> None:
    """How often each instance logged each warning or error over the run: what a step that
    fell over ran into (a storage timeout, a broker reconnect) rather than only that it did."""
    for index, gateway in enumerate(gateways):
        counts: Counter[str] = Counter()
        example: dict[str, str] = {}
        for line in gateway.warnings():
            fields = json.loads(line) if line.startswith("{") else {"event": line[:80]}
            event = str(fields.get("event", "?"))
            counts[event] += 1
            cause = fields.get("error") or str(fields.get("exception", "")).strip().split("\n")[-1]
            example.setdefault(event, str(cause)[:160])
        for event, count in counts.most_common(8):
            print(f"instance {index}: {event} x{count} (first: {example[event]})", flush=True)


def scrape(gateways: list[GatewayProcess]) -> dict[str, float]:
    """The instances' audit_logs_written_total and lock_acquisition_duration_seconds buckets,
    summed over instances (bucket upper bound in seconds → cumulative count)."""
    totals: dict[str, float] = {}
    for gateway in gateways:
        text = httpx.get(f"{gateway.base_url}/metrics", timeout=5).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "audit_logs_written_total":
                    key = "audit"
                elif sample.name == "collabgate_document_revision_conflicts_total":
                    key = "revision_conflicts"
                elif sample.name == "rabbitmq_publish_total" and sample.labels["result"] != "ok":
                    key = "publish_failed"
                elif sample.name == "collabgate_bus_republished_total":
                    key = f"republished_{sample.labels['result']}"
                elif sample.name == "collabgate_bus_gaps_repaired_total":
                    key = "gaps_repaired"
                elif sample.name == "lock_acquisition_duration_seconds_bucket":
                    key = f"lock_le_{sample.labels['le']}"
                else:
                    continue
                totals[key] = totals.get(key, 0.0) + sample.value
    return totals


def lock_p99_bound_ms(before: dict[str, float], after: dict[str, float]) -> float | None:
    """The histogram bucket holding the p99 of the step's lock decisions (Redis round trips
    included, queueing behind other messages of the same socket not), as its upper bound."""
    buckets = sorted(
        (float(key.removeprefix("lock_le_")), after[key] - before.get(key, 0.0))
        for key in after
        if key.startswith("lock_le_")
    )
    total = buckets[-1][1] if buckets else 0.0
    for bound, count in buckets:
        if total and count >= 0.99 * total:
            return bound * 1000
    return None


def run_cluster_step(
    gateways: list[GatewayProcess],
    users: int,
    room_size: int,
    seconds: float,
    workers: int,
    lock_every: float,
    warmup: float = 3.0,
) -> dict[str, Any]:
    names = [f"u{i}" for i in range(users)]
    tokens = {name: gateways[0].token(name, "nurse", ttl=3600) for name in names}
    rooms = [names[i : i + room_size] for i in range(0, users, room_size)]
    url_by_token = {
        tokens[user]: gateways[position % len(gateways)].ws_url
        for room in rooms
        for position, user in enumerate(room)
    }
    shares = [rooms[w::workers] for w in range(workers)]
    metrics_before = scrape(gateways)
    started = time.monotonic()
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        results: list[WorkerResult] = pool.map(
            routed_worker_main,
            [
                (url_by_token, (gateways[0].ws_url, tokens, share, seconds, warmup, lock_every))
                for share in shares
            ],
        )
    elapsed = time.monotonic() - started
    metrics_after = scrape(gateways)
    merged = WorkerResult()
    for r in results:
        for key, value in asdict(r).items():
            setattr(merged, key, getattr(merged, key) + value)
    return {
        "setup": f"cluster x{len(gateways)}",
        "users": users,
        "connected": merged.connected,
        "connect_failures": merged.connect_failures,
        "errors": merged.errors,
        "updates_per_s": round(merged.updates_acked / seconds),
        "deliveries_per_s": round(merged.deliveries / seconds),
        "fanout_p50_ms": round(percentile(merged.fanout_ms, 50), 1),
        "fanout_p99_ms": round(percentile(merged.fanout_ms, 99), 1),
        "ack_p99_ms": round(percentile(merged.ack_ms, 99), 1),
        "lock_p99_ms": round(percentile(merged.lock_ms, 99), 1),
        "lock_decision_p99_le_ms": lock_p99_bound_ms(metrics_before, metrics_after),
        # Over the whole step (connect, warm-up, measuring, close): connects and joins are
        # audited too.
        "audit_events_per_s": round(
            (metrics_after.get("audit", 0.0) - metrics_before.get("audit", 0.0)) / elapsed
        ),
        # Whole step: updates stored under a later revision than their instance gave them
        # (another instance took theirs); publishes that failed (the broker away, or a confirm
        # later than the publish timeout), edits published again after one, and room events
        # that built on an edit lost on the bus (read back from PostgreSQL).
        **{
            key: round(metrics_after.get(key, 0.0) - metrics_before.get(key, 0.0))
            for key in (
                "revision_conflicts",
                "publish_failed",
                "republished_sent",
                "republished_dropped",
                "gaps_repaired",
            )
        },
    }


async def _create_database() -> tuple[Any, str]:
    from tests.contract.test_postgres_specific import PostgresTestDatabase

    database = PostgresTestDatabase()
    return database, await database.create()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", default="600,1200")
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument("--room-size", type=int, default=5)
    parser.add_argument("--step-seconds", type=float, default=15.0)
    parser.add_argument("--workers", type=int, default=1, help="load-generator processes")
    parser.add_argument("--lock-every", type=float, default=10.0)
    parser.add_argument("--no-single", action="store_true", help="skip the embedded run")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"machine: {describe_host()}")
    steps = [int(s) for s in args.steps.split(",")]
    rows: list[dict[str, Any]] = []
    env = {"COLLABGATE_MAX_CONNECTIONS": "50000", "COLLABGATE_HEARTBEAT_TIMEOUT_SECONDS": "120"}

    database, database_url = asyncio.run(_create_database())
    prefix = f"cgbench:{uuid.uuid4().hex}:"
    try:
        with tempfile.TemporaryDirectory(prefix="collabgate-cluster-") as data_dir:
            common = {
                **env,
                "COLLABGATE_REDIS_URL": REDIS_URL,
                "COLLABGATE_REDIS_KEY_PREFIX": prefix,
                "COLLABGATE_AMQP_URL": AMQP_URL,
                "COLLABGATE_AMQP_EXCHANGE": f"cgbench.{uuid.uuid4().hex}",
                "COLLABGATE_DATABASE_URL": database_url,
            }
            gateways = [
                GatewayProcess(
                    Path(data_dir) / "shared",
                    env={**common, "COLLABGATE_INSTANCE_ID": f"bench-{i}"},
                )
                for i in range(args.instances)
            ]
            try:
                for gateway in gateways:
                    gateway.start()
                for users in steps:
                    row = run_cluster_step(
                        gateways,
                        users,
                        args.room_size,
                        args.step_seconds,
                        args.workers,
                        args.lock_every,
                    )
                    rows.append(row)
                    print(json.dumps(row), flush=True)
            finally:
                for gateway in gateways:
                    if gateway.process is not None and gateway.process.poll() is None:
                        gateway.terminate()
                print_warnings(gateways)
    finally:
        asyncio.run(database.drop())
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter(f"{prefix}*"):
            client.delete(key)

    if not args.no_single:
        with tempfile.TemporaryDirectory(prefix="collabgate-bench-") as data_dir:
            gateway = GatewayProcess(Path(data_dir), env=env).start()
            try:
                for users in steps:
                    row = run_step(
                        gateway,
                        users,
                        args.room_size,
                        args.step_seconds,
                        args.workers,
                        args.lock_every,
                    )
                    row = {"setup": "single embedded", **row}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
            finally:
                gateway.terminate()

    if args.json:
        args.json.write_text(json.dumps({"machine": describe_host(), "rows": rows}, indent=2))
    header = [
        "setup", "users", "connected", "errors", "updates_per_s", "deliveries_per_s",
        "fanout_p50_ms", "fanout_p99_ms", "ack_p99_ms", "lock_p99_ms", "lock_decision_p99_le_ms",
        "audit_events_per_s", "revision_conflicts", "publish_failed", "republished_sent",
        "gaps_repaired",
    ]  # fmt: skip
    print("\n| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in sorted(rows, key=lambda r: (r["users"], r["setup"])):
        print("| " + " | ".join(str(row.get(h, "-")) for h in header) + " |")


if __name__ == "__main__":
    main()
