"""Fan-out benchmark: rooms of N users, each user editing once a second, growing the user count.

    .venv/bin/python bench/fanout.py                       # starts its own gateway (embedded adapters)
    .venv/bin/python bench/fanout.py --steps 500,1000 --step-seconds 10

For every step it prints connections held, updates/s in, deliveries/s out, fan-out latency
p50/p95/p99 (sender's send to peer's receive, both clocks in one load-generator process),
Y_UPDATE_ACK p99, lock acquire p99 and the gateway's resident memory per connection. It stops
after the first step whose fan-out p99 passes the limit (100 ms by default). Not a test: it prints
figures, with the machine and the command that produced them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import random
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil
from pycrdt import Doc, Text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.host import describe_host  # noqa: E402
from tests.support.gateway_process import GatewayProcess  # noqa: E402

from collabgate.client import CollabClient, LockGrant  # noqa: E402


@dataclass
class WorkerResult:
    connected: int = 0
    connect_failures: int = 0
    updates_acked: int = 0
    deliveries: int = 0
    errors: int = 0
    fanout_ms: list[float] = field(default_factory=list)
    ack_ms: list[float] = field(default_factory=list)
    lock_ms: list[float] = field(default_factory=list)


class Editor:
    """One simulated clinician: a local document and a connection."""

    def __init__(self, user: str, resource_id: str) -> None:
        self.user = user
        self.resource_id = resource_id
        self.doc: Doc[Any] = Doc()
        self.text = self.doc.get("content", type=Text)
        self.client: CollabClient | None = None

    def next_update(self) -> bytes:
        before = self.doc.get_state()
        self.text += random.choice("abcdefghij")
        return self.doc.get_update(before)


async def run_worker(
    url: str,
    tokens: dict[str, str],
    rooms: list[list[str]],
    seconds: float,
    warmup: float,
    lock_every: float,
) -> WorkerResult:
    result = WorkerResult()
    sent_at: dict[bytes, float] = {}
    measuring = False

    def on_update(_: str, update: bytes, __: dict[str, Any]) -> None:
        sent = sent_at.get(update)
        if sent is not None and measuring:
            result.deliveries += 1
            result.fanout_ms.append((time.perf_counter() - sent) * 1000)

    editors = [Editor(user, f"bench:room-{r}") for r, users in enumerate(rooms) for user in users]

    async def connect(editor: Editor) -> None:
        client = CollabClient(
            url,
            tokens[editor.user],
            reconnect=False,
            on_update=on_update,
            max_queued_events=0,
            history_size=1,
            ping_interval=None,
        )
        try:
            await client.connect()
            await client.join(editor.resource_id)
            editor.client = client
            result.connected += 1
        except Exception:
            result.connect_failures += 1

    for chunk in range(0, len(editors), 200):
        await asyncio.gather(*(connect(e) for e in editors[chunk : chunk + 200]))

    async def edit_loop(editor: Editor, stop_at: float) -> None:
        client = editor.client
        if client is None:
            return
        # Each editor sends once a second at its own phase: the next send is due a second after
        # the previous one was due, not after it ran, or a stall would put every editor it
        # delayed in the same phase for the rest of the run (bursts instead of a steady rate).
        due = time.perf_counter() + random.random()
        await asyncio.sleep(due - time.perf_counter())
        next_lock = time.perf_counter() + random.random() * lock_every
        while time.perf_counter() < stop_at:
            update = editor.next_update()
            started = time.perf_counter()
            sent_at[update] = started
            try:
                await client.update(editor.resource_id, update)
                if measuring:
                    result.updates_acked += 1
                    result.ack_ms.append((time.perf_counter() - started) * 1000)
                if started >= next_lock:
                    next_lock = started + lock_every
                    await measure_lock(client, editor)
            except Exception:
                result.errors += 1
            due += 1.0
            await asyncio.sleep(max(0.0, due - time.perf_counter()))

    async def measure_lock(client: CollabClient, editor: Editor) -> None:
        started = time.perf_counter()
        reply = await client.acquire_lock(
            editor.resource_id, target=f"field-{editor.user}", ttl_ms=5000
        )
        if measuring:
            result.lock_ms.append((time.perf_counter() - started) * 1000)
        if isinstance(reply, LockGrant):
            await client.release_lock(editor.resource_id, target=f"field-{editor.user}")

    stop_at = time.perf_counter() + warmup + seconds
    loops = asyncio.gather(*(edit_loop(e, stop_at) for e in editors))
    await asyncio.sleep(warmup)
    measuring = True
    await asyncio.sleep(seconds)
    measuring = False
    await loops
    await asyncio.gather(*(e.client.close() for e in editors if e.client), return_exceptions=True)
    return result


def worker_main(
    args: tuple[str, dict[str, str], list[list[str]], float, float, float],
) -> WorkerResult:
    import uvloop

    return uvloop.run(run_worker(*args))


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def run_step(
    gateway: GatewayProcess,
    users: int,
    room_size: int,
    seconds: float,
    workers: int,
    lock_every: float,
) -> dict[str, Any]:
    names = [f"u{i}" for i in range(users)]
    tokens = {name: gateway.token(name, "nurse", ttl=3600) for name in names}
    rooms = [names[i : i + room_size] for i in range(0, users, room_size)]
    shares = [rooms[w::workers] for w in range(workers)]
    gw = psutil.Process(gateway.process.pid)  # type: ignore[union-attr]
    rss_before = gw.memory_info().rss
    cpu_before = gw.cpu_times()
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        async_result = pool.map_async(
            worker_main,
            [(gateway.ws_url, tokens, share, seconds, 3.0, lock_every) for share in shares],
        )
        rss_peak = rss_before
        while not async_result.ready():
            async_result.wait(1.0)
            rss_peak = max(rss_peak, gw.memory_info().rss)
        results: list[WorkerResult] = async_result.get()
    cpu_after = gw.cpu_times()
    merged = WorkerResult()
    for r in results:
        for key, value in asdict(r).items():
            setattr(merged, key, getattr(merged, key) + value)
    cpu_seconds = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
    return {
        "users": users,
        "connected": merged.connected,
        "connect_failures": merged.connect_failures,
        "errors": merged.errors,
        "updates_per_s": round(merged.updates_acked / seconds),
        "deliveries_per_s": round(merged.deliveries / seconds),
        "fanout_p50_ms": round(percentile(merged.fanout_ms, 50), 1),
        "fanout_p95_ms": round(percentile(merged.fanout_ms, 95), 1),
        "fanout_p99_ms": round(percentile(merged.fanout_ms, 99), 1),
        "ack_p99_ms": round(percentile(merged.ack_ms, 99), 1),
        "lock_p99_ms": round(percentile(merged.lock_ms, 99), 1),
        "gateway_rss_mb": round(rss_peak / 2**20),
        "rss_per_connection_kb": round(
            (rss_peak - rss_before) / max(1, merged.connected) / 1024, 1
        ),
        "gateway_cpu_pct": round(100 * cpu_seconds / (seconds + 3.0 + users / 1000), 0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", default="500,1000,2000,3000,4000,5000,6000")
    parser.add_argument("--room-size", type=int, default=5)
    parser.add_argument("--step-seconds", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=1, help="load-generator processes")
    parser.add_argument(
        "--lock-every", type=float, default=30.0, help="seconds between lock acquires per user"
    )
    parser.add_argument("--p99-limit-ms", type=float, default=100.0)
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args()
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"machine: {describe_host()}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="collabgate-bench-") as data_dir:
        gateway = GatewayProcess(
            Path(data_dir),
            env={
                "COLLABGATE_MAX_CONNECTIONS": "50000",
                "COLLABGATE_HEARTBEAT_TIMEOUT_SECONDS": "120",
            },
        ).start()
        try:
            for users in [int(s) for s in args.steps.split(",")]:
                row = run_step(
                    gateway, users, args.room_size, args.step_seconds, args.workers, args.lock_every
                )
                rows.append(row)
                print(json.dumps(row), flush=True)
                if row["fanout_p99_ms"] > args.p99_limit_ms or row["connect_failures"]:
                    break
        finally:
            gateway.terminate()
    if args.json:
        args.json.write_text(json.dumps({"machine": describe_host(), "rows": rows}, indent=2))
    header = list(rows[0]) if rows else []
    print("\n| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(str(row[h]) for h in header) + " |")


if __name__ == "__main__":
    main()
