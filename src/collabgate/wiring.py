"""Composition root: picks an adapter for every port from the settings and starts them.

This is the one module that imports adapters. The core (``collabgate.session``) sees only ports.
"""

from __future__ import annotations

from typing import Any

import structlog

from collabgate.audit.sqlite import SqliteAuditStore
from collabgate.audit.trail import AuditTrail
from collabgate.auth.verifier import TokenVerifier
from collabgate.bus.memory import InProcessBus
from collabgate.documents.service import DocumentService
from collabgate.documents.sqlite import SqliteDocumentStore
from collabgate.locks.memory import MemoryLockStore
from collabgate.ops.metrics import Metrics
from collabgate.presence.memory import MemoryPresenceStore
from collabgate.session.gateway import Gateway, Ports
from collabgate.settings import Settings
from collabgate.storage.sqlite import SqliteDatabase

log = structlog.get_logger(__name__)


class Runtime:
    """Everything one gateway instance runs, started and stopped together."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.verifier = TokenVerifier.from_settings(settings)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.database = SqliteDatabase(
            settings.database_file, max_batch=settings.group_commit_max_batch
        )
        self.audit = AuditTrail(
            SqliteAuditStore(self.database),
            max_queue=settings.audit_queue_max,
            spool_path=settings.data_dir / "audit-spool.ndjson",
            on_written=self.metrics.audit_logs_written.inc,
        )
        self.documents = DocumentService(
            SqliteDocumentStore(self.database), compaction_threshold=settings.compaction_threshold
        )
        self.gateway = Gateway(
            settings,
            Ports(
                presence=MemoryPresenceStore(),
                locks=MemoryLockStore(),
                documents=self.documents,
                audit=self.audit,
                bus=InProcessBus(),
            ),
            self.metrics,
        )

    async def start(self) -> None:
        await self.database.open()
        await self.verifier.warm_up()
        await self.audit.start()
        await self.gateway.start()
        log.info(
            "gateway_started",
            instance=self.settings.instance_name,
            adapters={
                "presence": "memory",
                "locks": "memory",
                "bus": "in-process",
                "store": "sqlite",
            },
            database=str(self.settings.database_file),
        )

    async def drain(self) -> None:
        await self.gateway.drain()

    async def stop(self) -> None:
        """Flush everything pending (documents, audit), then release the adapters."""
        await self.gateway.stop()
        await self.documents.close()
        await self.audit.close()
        await self.database.close()
        await self.verifier.aclose()
        log.info("gateway_stopped", instance=self.settings.instance_name)

    def refresh_gauges(self) -> None:
        self.metrics.audit_buffer.set(self.audit.pending)
        self.metrics.documents_loaded.set(self.documents.loaded)

    async def readiness(self) -> dict[str, Any]:
        dependencies = {
            "documents": {"up": self.database.healthy, "adapter": "sqlite"},
            "audit": {
                "up": self.database.healthy,
                "adapter": "sqlite",
                "pending": self.audit.pending,
            },
            "locks": {"up": True, "adapter": "memory"},
            "presence": {"up": True, "adapter": "memory"},
            "bus": {"up": True, "adapter": "in-process"},
            "auth": {"up": self.verifier.jwks_healthy, "adapter": "jwt"},
        }
        self.metrics.set_dependency("sqlite", self.database.healthy)
        if self.settings.jwt_jwks_url:
            self.metrics.set_dependency("jwks", self.verifier.jwks_healthy)
        if self.gateway.draining:
            overall = "draining"
        elif all(status["up"] for status in dependencies.values()):
            overall = "ready"
        else:
            overall = "degraded"
        return {
            "status": overall,
            "instance": self.settings.instance_name,
            "dependencies": dependencies,
        }
