"""Pieces the fault tests share: a cluster of gateway processes, continuous editors, probes of
/ready and /metrics, and the checks against PostgreSQL and `collabgate audit verify`."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
from pycrdt import Doc, Text

from collabgate.client import CollabClient
from collabgate.client.errors import ProtocolError
from tests.support.gateway_process import GatewayProcess

RESOURCE = "patient:faults-1"
OUTAGE_SECONDS = float(os.environ.get("COLLABGATE_FAULT_OUTAGE_SECONDS", "10"))


async def poll(
    check: Callable[[], Awaitable[bool]],
    timeout: float,  # noqa: ASYNC109 - a polling deadline
    what: str,
    interval: float = 0.2,
) -> None:
    """Await ``check()`` until it is true; raise after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            if await check():
                return
        except Exception as exc:
            last = exc
        await asyncio.sleep(interval)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what} (last error: {last!r})")


async def ready(gateway: GatewayProcess) -> tuple[int, dict[str, Any]]:
    async with httpx.AsyncClient(timeout=5) as http:
        response = await http.get(f"{gateway.base_url}/ready")
    return response.status_code, response.json()


def dependency_flag(report: dict[str, Any], name: str) -> bool | None:
    """The ``up`` flag of dependency ``name`` in a /ready report, whatever its layout."""
    deps = report.get("dependencies", report.get("checks", {}))
    if isinstance(deps, dict):
        entry = deps.get(name)
        if isinstance(entry, dict):
            return bool(entry.get("up"))
        if isinstance(entry, bool):
            return entry
    if isinstance(deps, list):
        for entry in deps:
            if isinstance(entry, dict) and entry.get("name") == name:
                return bool(entry.get("up"))
    return None


async def metric(gateway: GatewayProcess, name: str, **labels: str) -> float | None:
    """The value of one sample on /metrics (None when absent)."""
    async with httpx.AsyncClient(timeout=5) as http:
        text = (await http.get(f"{gateway.base_url}/metrics")).text
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        match = re.match(rf"^{re.escape(name)}(\{{[^}}]*\}})?\s+(\S+)", line)
        if not match:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(match.group(2))
    return None


@dataclass
class Editor:
    """One client editing ``RESOURCE`` continuously: each edit appends a unique marker. An edit
    refused with ERROR (e.g. WS_5002 while a dependency is down) is resent until acknowledged,
    so the document never holds an update the server lacks for long."""

    name: str
    client: CollabClient
    interval: float = 0.05
    acknowledged: list[str] = field(default_factory=list)
    refusals: dict[str, int] = field(default_factory=dict)
    refused_at: list[float] = field(default_factory=list)
    connection_errors: int = 0
    last_ack: float = 0.0
    acks_at: list[float] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await asyncio.wait_for(self._task, 30)

    async def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            marker = f"<{self.name}:{n}>"
            n += 1
            doc = self.client.document(RESOURCE)
            before = doc.get_state()
            with doc.transaction():
                text = doc.get("content", type=Text)
                text.insert(len(text), marker)
            update = doc.get_update(before)
            while True:
                try:
                    await self.client.update(RESOURCE, update)
                    break
                except ProtocolError as exc:
                    self.refusals[exc.code] = self.refusals.get(exc.code, 0) + 1
                    self.refused_at.append(time.monotonic())
                    await asyncio.sleep(0.2)
            self.acknowledged.append(marker)
            self.last_ack = time.monotonic()
            self.acks_at.append(self.last_ack)
            await asyncio.sleep(self.interval)


async def start_editors(
    gateways: list[GatewayProcess], per_instance: int = 2, interval: float = 0.05
) -> list[Editor]:
    editors: list[Editor] = []
    for i, gateway in enumerate(gateways):
        for j in range(per_instance):
            name = f"u{i}{j}"
            client = CollabClient(gateway.ws_url, gateway.token(name, "nurse"), reconnect=False)
            await client.connect()
            await client.join(RESOURCE)
            editors.append(Editor(name, client, interval))
    for editor in editors:
        editor.start()
    return editors


async def stop_editors(editors: list[Editor]) -> None:
    await asyncio.gather(*(e.stop() for e in editors))


def missing(acknowledged: list[str], text: str) -> list[str]:
    return [m for m in acknowledged if m not in text]


async def stored_text(database_url: str) -> str:
    """The document as PostgreSQL has it: every document_updates row (plus any snapshot) merged."""
    connection = await asyncpg.connect(database_url)
    try:
        # One snapshot of the database: a compaction committing between the two reads would
        # otherwise hide the updates it folded into the new snapshot.
        transaction = connection.transaction(isolation="repeatable_read", readonly=True)
        await transaction.start()
        snapshot = await connection.fetchval(
            "SELECT snapshot FROM document_snapshots WHERE resource_id = $1", RESOURCE
        )
        rows = await connection.fetch(
            "SELECT data FROM document_updates WHERE resource_id = $1 ORDER BY revision", RESOURCE
        )
        await transaction.rollback()
    finally:
        await connection.close()
    doc: Doc[Any] = Doc()
    if snapshot:
        doc.apply_update(bytes(snapshot))
    for row in rows:
        doc.apply_update(bytes(row["data"]))
    return str(doc.get("content", type=Text))


def audit_verify(database_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "collabgate", "audit", "verify"],
        env={**os.environ, "COLLABGATE_DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=60,
    )
