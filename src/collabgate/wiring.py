"""Composition root: picks an adapter for every port from the settings and starts them.

This is the one module that imports adapters. The core (``collabgate.session``) sees only ports.
With no URLs set, everything is embedded (memory, in-process bus, SQLite); ``COLLABGATE_REDIS_URL``
switches sessions, presence and locks to Redis, ``COLLABGATE_AMQP_URL`` the room bus to RabbitMQ and
``COLLABGATE_DATABASE_URL`` documents and the audit trail to PostgreSQL.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Any

import structlog
from redis import asyncio as aioredis

from collabgate.audit.port import AuditStore
from collabgate.audit.postgres import PostgresAuditStore
from collabgate.audit.sqlite import SqliteAuditStore
from collabgate.audit.trail import AuditTrail
from collabgate.auth.verifier import TokenVerifier
from collabgate.bus.memory import InProcessBus
from collabgate.bus.port import RoomBus
from collabgate.bus.rabbitmq import RabbitMqBus
from collabgate.documents.port import DocumentStore
from collabgate.documents.postgres import PostgresDocumentStore
from collabgate.documents.service import DocumentService
from collabgate.documents.sqlite import SqliteDocumentStore
from collabgate.locks.memory import MemoryLockStore
from collabgate.locks.port import LockStore
from collabgate.locks.redis import RedisLockStore
from collabgate.ops.gc_policy import GcPolicy
from collabgate.ops.loop_load import LagProbe
from collabgate.ops.metrics import Metrics
from collabgate.ops.redis_support import RedisGuard, create_redis, redis_breaker
from collabgate.presence.memory import MemoryPresenceStore
from collabgate.presence.port import PresenceStore
from collabgate.presence.redis import RedisPresenceStore
from collabgate.session.gateway import Gateway, Ports
from collabgate.sessions.memory import MemorySessionStore
from collabgate.sessions.port import SessionStore
from collabgate.sessions.redis import RedisSessionStore
from collabgate.settings import Settings
from collabgate.storage.lockfile import DatabaseLock
from collabgate.storage.postgres import PostgresDatabase
from collabgate.storage.sqlite import SqliteDatabase

log = structlog.get_logger(__name__)


class Runtime:
    """Everything one gateway instance runs, started and stopped together."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.gc_policy = GcPolicy(
            self.metrics.gc_pause,
            warn_seconds=settings.gc_pause_warn_seconds,
            freeze=settings.gc_freeze,
            full_interval=settings.gc_full_collection_interval_seconds,
            young_threshold=settings.gc_young_threshold,
        )
        self._gc_task: asyncio.Task[None] | None = None
        self.lag_probe = LagProbe(
            self.metrics.event_loop_lag.observe, interval=settings.event_loop_lag_probe_seconds
        )
        self._lag_task: asyncio.Task[None] | None = None
        self.verifier = TokenVerifier.from_settings(settings)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.adapters: dict[str, str] = {}
        self.database, document_store, audit_store = self._storage()
        #: Held while serving an embedded database (see storage.lockfile).
        self.database_lock = (
            DatabaseLock(settings.database_file) if settings.database_url is None else None
        )
        self.audit = AuditTrail(
            audit_store,
            max_queue=settings.audit_queue_max,
            spool_path=settings.data_dir / "audit-spool.ndjson",
            on_written=self.metrics.audit_logs_written.inc,
        )
        self.documents = DocumentService(
            document_store,
            compaction_threshold=settings.compaction_threshold,
            on_revision_conflict=self.metrics.revision_conflicts.inc,
            shared_store=settings.database_url is not None,
        )
        self.redis: aioredis.Redis | None = None
        self.rabbit_bus: RabbitMqBus | None = None
        self.redis_guard: RedisGuard | None = None
        self._gateway: Gateway | None = None
        #: The database's commit and write counts already added to their counters.
        self._storage_counted = (0, 0)

    @property
    def gateway(self) -> Gateway:
        if self._gateway is None:
            raise RuntimeError("the runtime has not started")
        return self._gateway

    async def start(self) -> None:
        self.gc_policy.install()
        self.metrics.event_loop_cpu.watch_current_thread()
        self._lag_task = asyncio.create_task(self.lag_probe.run())
        if self.settings.gc_freeze:
            self._gc_task = asyncio.create_task(self.gc_policy.run())
        sessions, presence, locks = await self._state_adapters()
        if self.database_lock is not None:
            self.database_lock.acquire()  # before the file is opened: one gateway per file
        await self.database.open()
        await self.verifier.warm_up()
        await self.audit.start()
        self._gateway = Gateway(
            self.settings,
            Ports(
                presence=presence,
                locks=locks,
                documents=self.documents,
                audit=self.audit,
                bus=self._bus(),
                sessions=sessions,
            ),
            self.metrics,
        )
        await self._gateway.start()
        self.gc_policy.freeze_startup_heap()
        log.info(
            "gateway_started",
            instance=self.settings.instance_name,
            adapters=self.adapters,
            database=self._database_name(),
        )

    def _database_name(self) -> str:
        if isinstance(self.database, PostgresDatabase):
            return self.database.url
        return str(self.settings.database_file)

    def _storage(self) -> tuple[SqliteDatabase | PostgresDatabase, DocumentStore, AuditStore]:
        settings = self.settings
        if settings.database_url is None:
            self.adapters.update(documents="sqlite", audit="sqlite")
            sqlite = SqliteDatabase(
                settings.database_file,
                max_batch=settings.group_commit_max_batch,
                commit_interval=settings.sqlite_commit_interval_ms / 1000,
                writer_nice=settings.sqlite_writer_nice,
                on_commit=self.metrics.storage_commit_duration.observe,
            )
            sqlite_audit = SqliteAuditStore(sqlite)
            return sqlite, SqliteDocumentStore(sqlite, audit=sqlite_audit), sqlite_audit
        self.adapters.update(documents="postgres", audit="postgres")
        postgres = PostgresDatabase(
            settings.database_url.get_secret_value(),
            min_size=settings.database_pool_min_size,
            max_size=settings.database_pool_max_size,
            max_batch=settings.group_commit_max_batch,
            connect_timeout=settings.database_connect_timeout_seconds,
            command_timeout=settings.database_command_timeout_seconds,
            metrics=self.metrics,
            application_name=f"collabgate:{settings.instance_name}",
        )
        postgres_audit = PostgresAuditStore(postgres)
        return postgres, PostgresDocumentStore(postgres, audit=postgres_audit), postgres_audit

    async def _state_adapters(self) -> tuple[SessionStore, PresenceStore, LockStore]:
        settings = self.settings
        if settings.redis_url is None:
            self.adapters.update(sessions="memory", presence="memory", locks="memory")
            return MemorySessionStore(), MemoryPresenceStore(), MemoryLockStore()
        self.redis = await create_redis(
            settings.redis_url.get_secret_value(),
            socket_timeout=settings.redis_socket_timeout_seconds,
            max_connections=settings.redis_max_connections,
            pool_timeout=settings.redis_pool_timeout_seconds,
            client_name=f"collabgate:{settings.instance_name}",
        )
        guard = self.redis_guard = RedisGuard(self.metrics, redis_breaker())
        prefix = settings.redis_key_prefix
        self.metrics.set_dependency("redis", True)
        self.adapters.update(sessions="redis", presence="redis", locks="redis")
        return (
            RedisSessionStore(self.redis, prefix=prefix, guard=guard),
            RedisPresenceStore(
                self.redis,
                prefix=prefix,
                instance_id=settings.instance_name,
                member_ttl_seconds=settings.presence_ttl_seconds,
                guard=guard,
            ),
            RedisLockStore(self.redis, prefix=prefix, guard=guard),
        )

    def _bus(self) -> RoomBus:
        settings = self.settings
        if settings.amqp_url is None:
            self.adapters["bus"] = "in-process"
            return InProcessBus()
        self.adapters["bus"] = "rabbitmq"
        self.rabbit_bus = RabbitMqBus(
            settings.amqp_url.get_secret_value(),
            metrics=self.metrics,
            exchange=settings.amqp_exchange,
            shards=settings.amqp_shards,
            confirm=settings.amqp_confirm,
            prefetch=settings.amqp_prefetch,
            publish_timeout=settings.amqp_publish_timeout_seconds,
        )
        return self.rabbit_bus

    async def drain(self) -> None:
        await self.gateway.drain()

    async def stop(self) -> None:
        """Flush everything pending (documents, audit), then release the adapters.

        Releasing a connection to Redis, RabbitMQ or the JWKS endpoint may not hang the exit:
        each such step gets ``shutdown_timeout_seconds`` and is logged if it needs it. The
        durable flushes (documents, audit, database) run to the end, bounded by their own
        database timeouts: what they hold must reach the database or the audit spill file.
        """
        if self._gateway is not None:
            gateway = self._gateway
            await self._release("gateway", gateway.stop())
            await self._release("presence", gateway.presence.close())
            await self._release("locks", gateway.locks.close())
            await self._release("sessions", gateway.sessions.close())
        await self.documents.close()
        await self.audit.close()
        await self.database.close()
        if self.database_lock is not None:
            self.database_lock.release()
        if self.redis is not None:
            await self._release("redis", self.redis.aclose())
        await self._release("jwks", self.verifier.aclose())
        for task in (self._gc_task, self._lag_task):
            if task is not None:
                task.cancel()
        self.gc_policy.remove()
        log.info("gateway_stopped", instance=self.settings.instance_name)

    async def _release(self, step: str, closing: Awaitable[None]) -> None:
        limit = self.settings.shutdown_timeout_seconds
        started = time.monotonic()
        try:
            await asyncio.wait_for(closing, limit)
        except TimeoutError:
            log.error("shutdown_step_timed_out", step=step, seconds=limit)
            return
        elapsed = time.monotonic() - started
        if elapsed > 1.0:
            log.warning("shutdown_step_slow", step=step, seconds=round(elapsed, 2))

    def refresh_gauges(self) -> None:
        """Gauges read at scrape time, so every scrape has them (not only /ready's callers)."""
        self.metrics.audit_buffer.set(self.audit.pending)
        self.metrics.documents_loaded.set(self.documents.loaded)
        if self._gateway is not None:
            self._gateway.update_room_gauges()
        self.metrics.set_dependency(self.adapters["documents"], self.database.healthy)
        self._count_storage()
        if self.settings.jwt_jwks_url:
            self.metrics.set_dependency("jwks", self.verifier.jwks_healthy)

    def _count_storage(self) -> None:
        """Carry the database's own commit and write counts over to their counters.

        The writer counts as it commits (the SQLite one in its own thread); the counters move
        at scrape time, so the write path pays nothing for them.
        """
        commits, writes = self.database.commits, self.database.writes
        counted_commits, counted_writes = self._storage_counted
        self.metrics.storage_commits.inc(max(0, commits - counted_commits))
        self.metrics.storage_writes.inc(max(0, writes - counted_writes))
        self._storage_counted = (max(commits, counted_commits), max(writes, counted_writes))

    async def readiness(self) -> dict[str, Any]:
        store = self.adapters["documents"]
        dependencies: dict[str, dict[str, Any]] = {
            "documents": {"up": self.database.healthy, "adapter": store},
            "audit": {"up": self.database.healthy, "adapter": store, "pending": self.audit.pending},
            "auth": {"up": self.verifier.jwks_healthy, "adapter": "jwt"},
        }
        if self.redis is not None:
            dependencies["redis"] = {"up": await self._redis_answers(), "adapter": "redis"}
        if self.rabbit_bus is not None:
            dependencies["rabbitmq"] = {"up": self.rabbit_bus.healthy, "adapter": "rabbitmq"}
        self.refresh_gauges()
        if self._gateway is not None and self._gateway.draining:
            overall = "draining"
        elif all(status["up"] for status in dependencies.values()):
            overall = "ready"
        else:
            overall = "degraded"
        return {
            "status": overall,
            "instance": self.settings.instance_name,
            "adapters": self.adapters,
            "dependencies": dependencies,
        }

    async def _redis_answers(self) -> bool:
        assert self.redis is not None
        try:
            up = bool(await self.redis.ping())
        except (ConnectionError, OSError, aioredis.RedisError):
            up = False
        breaker = self.redis_guard.breaker if self.redis_guard is not None else None
        if up and breaker is not None:
            # Redis answers: let requests through now rather than after the breaker's backoff,
            # so /ready never says "up" while every call still fails fast.
            breaker.record_success()
        self.metrics.set_dependency("redis", up)
        return up
