"""Fixtures that start real gateway processes and talk to them over real sockets."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
import uvloop
import websockets
from websockets.asyncio.client import ClientConnection

from collabgate.client import CollabClient
from tests.contract.test_postgres_specific import PostgresTestDatabase
from tests.support.gateway_process import GatewayProcess
from tests.support.requirements import require_service


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> Any:
    """Tests marked ``uvloop`` run on uvloop, the loop the gateway itself runs on; the others
    on asyncio's own, as they would without this hook."""
    if item.get_closest_marker("uvloop") is not None:
        return {"uvloop": uvloop.new_event_loop}
    return {"asyncio": asyncio.new_event_loop}


#: Settings of the shared gateway: small enough limits that every error code can be reached.
SHARED_ENV = {
    "COLLABGATE_ROOM_MAX_USERS": "3",
    "COLLABGATE_RESOURCE_TYPES": "patient,surgery,chart",
    "COLLABGATE_MAX_FRAME_BYTES": "65536",
    "COLLABGATE_MAX_CONNECTIONS_PER_USER": "4",
    "COLLABGATE_LOCK_HOLDER_GRACE_SECONDS": "0.5",
}


REDIS_URL = os.environ.get("COLLABGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


@dataclass
class Cluster:
    """Gateway instances sharing Redis, RabbitMQ and one fresh PostgreSQL database."""

    gateways: list[GatewayProcess]
    database_url: str


@contextlib.asynccontextmanager
async def gateway_cluster(
    tmp_path: Path, count: int = 2, env: Mapping[str, str] | None = None
) -> AsyncIterator[Cluster]:
    """Start ``count`` instances (gw-a, gw-b, ...) on the machine's Redis and RabbitMQ, with a
    unique key prefix and exchange, and a database of their own; stop and drop it all after."""
    require_service("Redis", "127.0.0.1", 6379)
    require_service("RabbitMQ", "127.0.0.1", 5672)
    database = PostgresTestDatabase()
    url = await database.create()
    prefix = f"cgtest:{uuid.uuid4().hex}:"
    common = {
        "COLLABGATE_REDIS_URL": REDIS_URL,
        "COLLABGATE_REDIS_KEY_PREFIX": prefix,
        "COLLABGATE_AMQP_URL": AMQP_URL,
        "COLLABGATE_AMQP_EXCHANGE": f"cgtest.{uuid.uuid4().hex}",
        "COLLABGATE_DATABASE_URL": url,
        "COLLABGATE_LOCK_HOLDER_GRACE_SECONDS": "1",
        "COLLABGATE_PRESENCE_TTL_SECONDS": "3",
        **(env or {}),
    }
    keys = tmp_path / "shared"  # one key pair: a token works on every instance
    gateways = [
        GatewayProcess(keys, env={**common, "COLLABGATE_INSTANCE_ID": f"gw-{chr(ord('a') + i)}"})
        for i in range(count)
    ]
    try:
        # Every start finishes (return_exceptions) before the clean-up below looks at them.
        started = await asyncio.gather(
            *(asyncio.to_thread(g.start) for g in gateways), return_exceptions=True
        )
        for result in started:
            if isinstance(result, BaseException):
                raise result
        yield Cluster(gateways, url)
    finally:
        for process in gateways:
            if process.process is not None and process.process.poll() is None:
                try:
                    await asyncio.to_thread(process.terminate)
                except Exception:
                    process.kill()
        delete_keys(prefix)
        await database.drop()


@pytest.fixture(scope="module", params=["embedded", "redis"])
def gateway(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    """The shared gateway, once on embedded adapters and once with Redis for state."""
    env = dict(SHARED_ENV)
    if request.param == "redis":
        require_service("Redis", "127.0.0.1", 6379)
        env["COLLABGATE_REDIS_URL"] = REDIS_URL
        env["COLLABGATE_REDIS_KEY_PREFIX"] = f"cgtest:{uuid.uuid4().hex}:"
    process = GatewayProcess(tmp_path_factory.mktemp("gateway"), env=env).start()
    yield process
    process.terminate()
    if request.param == "redis":
        delete_keys(env["COLLABGATE_REDIS_KEY_PREFIX"])


def delete_keys(prefix: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


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


async def poll_audit(
    gateway: GatewayProcess, event_type: str, contains: str = "", *, user_id: str | None = None
) -> list[Any]:
    """Audit rows of a type whose details contain ``contains`` (and of ``user_id``, when
    given), waiting (bounded) for the asynchronous audit writer."""
    deadline = time.monotonic() + 10
    while True:
        rows = [
            r
            for r in audit_rows(gateway.data_dir, event_type)
            if contains in (r["details"] or "") and user_id in (None, r["user_id"])
        ]
        if rows or time.monotonic() > deadline:
            return rows
        await asyncio.sleep(0.05)
