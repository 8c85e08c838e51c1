"""Fixtures of the fault tests: private services that a test stops and starts, and two gateway
instances on them. Everything is torn down in ``finally`` blocks, also when a test fails."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.contract.test_postgres_specific import PostgresTestDatabase
from tests.e2e.conftest import REDIS_URL, delete_keys
from tests.support.gateway_process import GatewayProcess
from tests.support.requirements import require_service
from tests.support.services import PrivatePostgres, PrivateRabbitMQ, PrivateRedis

pytestmark = pytest.mark.e2e
SHARED_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


@dataclass
class Cluster:
    a: GatewayProcess
    b: GatewayProcess
    database_url: str

    @property
    def gateways(self) -> list[GatewayProcess]:
        return [self.a, self.b]


@contextlib.asynccontextmanager
async def two_gateways(
    tmp_path: Path, *, redis_url: str, amqp_url: str, database_url: str
) -> AsyncIterator[Cluster]:
    common = {
        "COLLABGATE_REDIS_URL": redis_url,
        "COLLABGATE_REDIS_KEY_PREFIX": f"cgfault:{uuid.uuid4().hex}:",
        "COLLABGATE_AMQP_URL": amqp_url,
        "COLLABGATE_AMQP_EXCHANGE": f"cgfault.{uuid.uuid4().hex}",
        "COLLABGATE_DATABASE_URL": database_url,
        "COLLABGATE_LOCK_HOLDER_GRACE_SECONDS": "1",
        "COLLABGATE_PRESENCE_TTL_SECONDS": "3",
    }
    keys = tmp_path / "shared"
    a = GatewayProcess(keys, env={**common, "COLLABGATE_INSTANCE_ID": "gw-a"})
    b = GatewayProcess(keys, env={**common, "COLLABGATE_INSTANCE_ID": "gw-b"})
    try:
        await asyncio.gather(asyncio.to_thread(a.start), asyncio.to_thread(b.start))
        yield Cluster(a, b, database_url)
    except BaseException:
        for process in (a, b):
            print(f"--- log of {process.env.get('COLLABGATE_INSTANCE_ID')} (last 60 lines)")
            print("\n".join(process.lines[-60:]))
        raise
    finally:
        for process in (a, b):
            if process.process is not None and process.process.poll() is None:
                try:
                    await asyncio.to_thread(process.terminate, 20)
                except Exception:
                    process.kill()
        if redis_url == REDIS_URL:
            delete_keys(common["COLLABGATE_REDIS_KEY_PREFIX"])


@pytest.fixture
async def shared_database() -> AsyncIterator[str]:
    database = PostgresTestDatabase()
    try:
        yield await database.create()
    finally:
        await database.drop()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    redis = PrivateRedis(tmp_path / "redis")
    try:
        yield redis.start()
    finally:
        redis.daemon.stop()


@pytest.fixture
def private_rabbitmq(tmp_path: Path) -> Iterator[PrivateRabbitMQ]:
    rabbit = PrivateRabbitMQ(tmp_path / "rabbitmq")
    try:
        yield rabbit.start()
    finally:
        rabbit.daemon.stop(timeout=30)


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    postgres = PrivatePostgres()
    try:
        yield postgres.start()
    finally:
        postgres.cleanup()


@pytest.fixture
def shared_redis() -> str:
    require_service("Redis", "127.0.0.1", 6379)
    return REDIS_URL


@pytest.fixture
def shared_rabbitmq() -> str:
    require_service("RabbitMQ", "127.0.0.1", 5672)
    return SHARED_AMQP_URL
