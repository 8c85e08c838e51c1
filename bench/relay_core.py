"""The relay core's CPU per update, in process: no sockets, no load generator, no other guests.

    .venv/bin/python bench/relay_core.py
    .venv/bin/python bench/relay_core.py --rooms 150 --room-size 10 --updates 30000 --repeat 3

The end-to-end benchmarks (bench/yjs_relay, bench/fanout.py) measure what a client sees, which
on a shared VM moves with the load generator and the hypervisor as much as with the gateway.
This one measures the gateway's own work per update, with the operating system and the network
left out: y-websocket updates go straight into :meth:`Gateway.receive_yjs` for ``/yjs``
connections whose outboxes have no socket (their frames are taken and dropped), spread round-robin
over ``--rooms`` rooms of ``--room-size`` connections. CPU time is thread time, which the
hypervisor's steal does not inflate. Two gateways, in the same run, in alternating rounds:

* ``embedded``: the gateway of ``collabgate serve`` on its embedded adapters (``Runtime``): each
  update applied, relayed, stored durably in SQLite and audited (``DOCUMENT_UPDATED``);
* ``relay only`` (the reference): the same gateway with an in-memory document store and an audit
  sink that drops events, i.e. the relay alone.

For each it prints µs of CPU per update on the event loop's thread and in all threads (the SQLite
writer included), and the deliveries made. The difference is what durability and the audit trail
cost per update. Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import psutil
import uvloop
from pycrdt import Doc, Text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from bench.host import describe_host  # noqa: E402

from collabgate.audit.port import AuditEvent  # noqa: E402
from collabgate.audit.trail import AuditTrail  # noqa: E402
from collabgate.auth.principal import Principal, Role  # noqa: E402
from collabgate.bus.memory import InProcessBus  # noqa: E402
from collabgate.documents.memory import MemoryDocumentStore  # noqa: E402
from collabgate.documents.service import DocumentService  # noqa: E402
from collabgate.locks.memory import MemoryLockStore  # noqa: E402
from collabgate.ops.logging import configure_logging  # noqa: E402
from collabgate.ops.metrics import Metrics  # noqa: E402
from collabgate.presence.memory import MemoryPresenceStore  # noqa: E402
from collabgate.protocol import yjs  # noqa: E402
from collabgate.session.connection import Connection  # noqa: E402
from collabgate.session.gateway import Gateway, Ports  # noqa: E402
from collabgate.sessions.memory import MemorySessionStore  # noqa: E402
from collabgate.settings import Settings  # noqa: E402
from collabgate.wiring import Runtime  # noqa: E402

#: Updates handed to the gateway between two turns of the event loop.
UPDATES_PER_TURN = 50
#: Turns between two takings of the frames queued for every connection.
TURNS_PER_DRAIN = 20


class DroppingAuditSink:
    """An audit port that keeps nothing: the reference gateway's audit trail."""

    def record(self, event: AuditEvent) -> None:
        pass


def settings_for(data_dir: Path, connections: int, room_size: int) -> Settings:
    return Settings(
        data_dir=data_dir,
        dev_keys=True,
        max_connections=connections + 10,
        max_connections_per_user=1,
        room_max_users=room_size,
        rate_limit_per_second=1000,
        rate_limit_burst=1000,
        log_level="warning",
    )


@asynccontextmanager
async def embedded_gateway(settings: Settings) -> AsyncIterator[Gateway]:
    runtime = Runtime(settings)
    await runtime.start()
    try:
        yield runtime.gateway
    finally:
        await runtime.stop()


@asynccontextmanager
async def relay_only_gateway(settings: Settings) -> AsyncIterator[Gateway]:
    audit = DroppingAuditSink()
    gateway = Gateway(
        settings,
        Ports(
            presence=MemoryPresenceStore(),
            locks=MemoryLockStore(),
            documents=DocumentService(
                MemoryDocumentStore(audit), compaction_threshold=settings.compaction_threshold
            ),
            audit=audit,
            bus=InProcessBus(),
            sessions=MemorySessionStore(),
        ),
        Metrics(),
    )
    await gateway.start()
    try:
        yield gateway
    finally:
        await gateway.stop()


GATEWAYS: dict[str, Callable[[Settings], Any]] = {
    "embedded": embedded_gateway,
    "relay only": relay_only_gateway,
}


def make_updates(connections: int, updates: int) -> list[bytes]:
    """One y-websocket Update message per update, each a small insert by its connection's doc."""
    docs = [Doc() for _ in range(connections)]
    messages = []
    for index in range(updates):
        doc = docs[index % connections]
        before = doc.get_state()
        text = doc.get("content", type=Text)
        text.insert(len(text), f"[{index}]")  # appended, as loadgen.mjs does
        messages.append(yjs.sync_update(doc.get_update(before)))
    return messages


async def run_once(
    name: str, rooms: int, room_size: int, messages: list[bytes]
) -> dict[str, float]:
    connections_total = rooms * room_size
    with tempfile.TemporaryDirectory() as data:
        settings = settings_for(Path(data), connections_total, room_size)
        async with GATEWAYS[name](settings) as gateway:
            connections = [
                await gateway.open_yjs(
                    Principal(f"u{room}-{seat}", Role.NURSE), f"bench:room-{room}"
                )
                for seat in range(room_size)
                for room in range(rooms)
            ]
            drain(connections)
            await settle(gateway)
            process = psutil.Process()
            cpu_before, main_before = _process_cpu(process), time.thread_time()
            started = time.perf_counter()
            delivered, drain_cpu = 0, 0.0
            senders = itertools.cycle(connections)
            for turn, start in enumerate(range(0, len(messages), UPDATES_PER_TURN)):
                for message in messages[start : start + UPDATES_PER_TURN]:
                    await gateway.receive_yjs(next(senders), message)
                await asyncio.sleep(0)  # a turn: the per-room flush runs
                if turn % TURNS_PER_DRAIN == 0:
                    drained, spent = timed_drain(connections)
                    delivered, drain_cpu = delivered + drained, drain_cpu + spent
            await settle(gateway)
            drained, spent = timed_drain(connections)
            delivered, drain_cpu = delivered + drained, drain_cpu + spent
            # The benchmark's own frame taking is not the gateway's work.
            main_cpu = time.thread_time() - main_before - drain_cpu
            all_cpu = _process_cpu(process) - cpu_before - drain_cpu
            wall = time.perf_counter() - started
    count = len(messages)
    return {
        "mainUsPerUpdate": 1e6 * main_cpu / count,
        "allUsPerUpdate": 1e6 * all_cpu / count,
        "updatesPerSecond": count / wall,
        "deliveries": delivered,
    }


async def settle(gateway: Gateway) -> None:
    """Wait until every update is stored, its audit event too, and the flushes have run."""
    await gateway.wait_stored()
    if isinstance(gateway.audit, AuditTrail):  # the embedded gateway's; the sink keeps nothing
        await gateway.audit.flush()
    await asyncio.sleep(0)


def timed_drain(connections: list[Connection]) -> tuple[int, float]:
    """:func:`drain`, and the thread time it took."""
    started = time.thread_time()
    delivered = drain(connections)
    return delivered, time.thread_time() - started


def drain(connections: list[Connection]) -> int:
    """Take every frame the gateway queued; count the Update messages among them."""
    delivered = 0
    for connection in connections:
        for frame in connection.outbox.take_all():
            if isinstance(frame, bytes) and frame[:2] == b"\x00\x02":
                delivered += 1
    return delivered


def _process_cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rooms", type=int, default=150)
    parser.add_argument("--room-size", type=int, default=10)
    parser.add_argument("--updates", type=int, default=30_000)
    parser.add_argument("--repeat", type=int, default=3, help="alternating rounds; medians")
    parser.add_argument("--gateways", default=",".join(GATEWAYS), help="which of them to run")
    args = parser.parse_args()
    configure_logging("error")
    print(f"machine: {describe_host()}\ncommand: {' '.join(sys.argv)}")
    messages = make_updates(args.rooms * args.room_size, args.updates)
    chosen = [name for name in GATEWAYS if name in args.gateways.split(",")]
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in chosen}
    for round_ in range(max(1, args.repeat)):
        order = chosen if round_ % 2 == 0 else chosen[::-1]
        for name in order:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:  # as `serve` runs
                result = runner.run(run_once(name, args.rooms, args.room_size, messages))
            runs[name].append(result)
            print(
                f"  round {round_ + 1} {name:<12} main {result['mainUsPerUpdate']:6.1f} µs/update"
                f"  all {result['allUsPerUpdate']:6.1f}"
            )
    print(
        f"\n{args.updates} updates over {args.rooms} rooms of {args.room_size}, "
        f"{max(1, args.repeat)} rounds, medians"
    )
    print(
        f"  {'gateway':<12}{'main µs/update':>16}{'all µs/update':>15}{'updates/s':>11}"
        f"{'deliveries':>12}"
    )
    for name, results in runs.items():
        med = {key: statistics.median(r[key] for r in results) for key in results[0]}
        print(
            f"  {name:<12}{med['mainUsPerUpdate']:>16.1f}{med['allUsPerUpdate']:>15.1f}"
            f"{med['updatesPerSecond']:>11.0f}{med['deliveries']:>12.0f}"
            f"{min(r['mainUsPerUpdate'] for r in results):>9.1f}-"
            f"{max(r['mainUsPerUpdate'] for r in results):.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
