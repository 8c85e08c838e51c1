"""Fixtures that start real gateway processes and talk to them over real sockets."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from collabgate.client import CollabClient
from tests.support.gateway_process import GatewayProcess

#: Settings of the shared gateway: small enough limits that every error code can be reached.
SHARED_ENV = {
    "COLLABGATE_ROOM_MAX_USERS": "3",
    "COLLABGATE_RESOURCE_TYPES": "patient,surgery,chart",
    "COLLABGATE_MAX_FRAME_BYTES": "65536",
    "COLLABGATE_MAX_CONNECTIONS_PER_USER": "4",
    "COLLABGATE_LOCK_HOLDER_GRACE_SECONDS": "0.5",
}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    process = GatewayProcess(tmp_path_factory.mktemp("gateway"), env=SHARED_ENV).start()
    yield process
    process.terminate()


@pytest.fixture
async def connect(gateway: GatewayProcess) -> AsyncIterator[Any]:
    """`await connect("alice", role="nurse")` → a connected CollabClient, closed at teardown."""
    clients: list[CollabClient] = []

    async def _connect(sub: str, role: str = "nurse", **options: Any) -> CollabClient:
        client = CollabClient(gateway.ws_url, gateway.token(sub, role), reconnect=False, **options)
        await client.connect()
        clients.append(client)
        return client

    yield _connect
    for client in clients:
        await client.close()


async def raw_socket(url: str, token: str | None = None, **options: Any) -> ClientConnection:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return await websockets.connect(url, additional_headers=headers, **options)


async def next_frame(ws: ClientConnection) -> dict[str, Any]:
    frame: dict[str, Any] = orjson.loads(await ws.recv())
    return frame


def audit_rows(data_dir: Path, event_type: str) -> list[sqlite3.Row]:
    connection = sqlite3.connect(data_dir / "collabgate.sqlite3")
    connection.row_factory = sqlite3.Row
    try:
        return connection.execute(
            "SELECT * FROM audit_log WHERE event_type = ? ORDER BY seq", (event_type,)
        ).fetchall()
    finally:
        connection.close()
