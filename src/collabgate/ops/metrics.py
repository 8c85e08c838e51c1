"""Prometheus metrics. Label values come from small fixed sets: never a user or resource id."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from collabgate.errors import ALL_ERRORS
from collabgate.ops.loop_load import LoopCpu
from collabgate.ops.loop_metrics import LoopCounter, LoopHistogram

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
SIZE_BUCKETS = (64, 256, 1024, 4096, 16_384, 65_536, 262_144, 1_048_576)
INBOUND_TYPES = (
    "HEARTBEAT",
    "JOIN_RESOURCE",
    "LEAVE_RESOURCE",
    "Y_UPDATE",
    "SYNC",
    "LOCK_ACQUIRE",
    "LOCK_EXTEND",
    "LOCK_RELEASE",
    "AWARENESS",
    "INVALID",
)
#: Backing services, as the `dependency` label of collabgate_dependency_up and _failures_total.
DEPENDENCIES = ("sqlite", "redis", "rabbitmq", "postgres", "jwks")


class Metrics:
    """Every metric of one gateway instance, in its own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        # The eight names fixed by the seed.
        self.connections = Gauge(
            "websocket_connections_total", "Open WebSocket connections.", registry=r
        )
        # Counted for every message, on the event loop's thread only: ops/loop_metrics.py.
        self.messages_sent = LoopCounter(
            "websocket_messages_sent_total", "Frames sent to clients.", registry=r
        )
        self.messages_received = LoopCounter(
            "websocket_messages_received_total",
            "Frames received from clients.",
            ["type"],
            registry=r,
        )
        self.lock_acquisitions = Counter(
            "lock_acquisitions_total", "Lock acquire requests by result.", ["result"], registry=r
        )
        self.lock_acquisition_duration = Histogram(
            "lock_acquisition_duration_seconds",
            "Time to decide a lock acquire.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.redis_operation_duration = Histogram(
            "redis_operation_duration_seconds",
            "Redis calls by operation.",
            ["operation"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.rabbitmq_publish = Counter(
            "rabbitmq_publish_total", "Room events published to RabbitMQ.", ["result"], registry=r
        )
        self.bus_republished = Counter(
            "collabgate_bus_republished_total",
            "Edits whose publish to other instances failed: published again (sent), or given up"
            " because COLLABGATE_BUS_REPUBLISH_MAX_EVENTS were already waiting (dropped).",
            ["result"],
            registry=r,
        )
        self.bus_gaps_repaired = Counter(
            "collabgate_bus_gaps_repaired_total",
            "Reads of the shared store (after a room event that built on a lost one, a join or a"
            " SYNC) that found edits this instance never received on the bus; sent to the room.",
            registry=r,
        )
        self.audit_logs_written = LoopCounter(
            "audit_logs_written_total", "Audit events durably stored.", registry=r
        )
        # What dashboards and alerts need besides.
        self.message_duration = LoopHistogram(
            "collabgate_message_handling_seconds",
            "Time from receiving a frame to its reply being queued.",
            ["type"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.errors = Counter(
            "collabgate_errors_total",
            "ERROR frames sent, by protocol error code.",
            ["code"],
            registry=r,
        )
        self.connections_opened = Counter(
            "collabgate_connections_opened_total", "Connections accepted.", registry=r
        )
        self.connections_closed = Counter(
            "collabgate_connections_closed_total",
            "Connections closed, by reason.",
            ["reason"],
            registry=r,
        )
        self.connections_rejected = Counter(
            "collabgate_connections_rejected_total",
            "Connections refused at the handshake, by error code.",
            ["code"],
            registry=r,
        )
        self.revision_conflicts = Counter(
            "collabgate_document_revision_conflicts_total",
            "Updates stored under a later revision than this instance numbered them: another"
            " instance had stored that revision first (the store numbers them, no retry).",
            registry=r,
        )
        self.update_bytes = LoopHistogram(
            "collabgate_yjs_update_bytes",
            "Size of accepted Y.js updates.",
            buckets=SIZE_BUCKETS,
            registry=r,
        )
        self.dependency_up = Gauge(
            "collabgate_dependency_up",
            "1 when a dependency answers, 0 when not.",
            ["dependency"],
            registry=r,
        )
        self.dependency_failures = Counter(
            "collabgate_dependency_failures_total",
            "Failed calls to a dependency (connection refused, timeout, error reply).",
            ["dependency"],
            registry=r,
        )
        self.storage_commits = Counter(
            "collabgate_storage_commits",
            "Transactions the database writer committed (each one WAL flush and fsync)",
            registry=r,
        )
        self.storage_writes = Counter(
            "collabgate_storage_writes",
            "Writes those transactions held: writes / commits is the group-commit batching",
            registry=r,
        )
        self.storage_commit_duration = Histogram(
            "collabgate_storage_commit_seconds",
            "Time one group-commit transaction took until durable (SQLite: its fsync and any wait "
            "for the file's write lock; PostgreSQL: its round trips). Y_UPDATE_ACKs wait for it.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.audit_buffer = Gauge(
            "collabgate_audit_buffer_events", "Audit events waiting to be stored.", registry=r
        )
        self.documents_loaded = Gauge(
            "collabgate_documents_loaded", "Documents held in memory.", registry=r
        )
        self.resources_active = Gauge(
            "collabgate_resources_active",
            "Resources with at least one local connection.",
            registry=r,
        )
        self.room_users = Gauge(
            "collabgate_room_users",
            "Connected users by resource type.",
            ["resource_type"],
            registry=r,
        )
        self.up = Gauge(
            "collabgate_up", "1 while the instance serves, 0 while it drains.", registry=r
        )
        # How busy the event loop is (ops/loop_load.py): the signal to add an instance.
        self.event_loop_cpu = LoopCpu(r)
        self.event_loop_lag = LoopHistogram(
            "collabgate_event_loop_lag_seconds",
            "How late the event loop ran a timer: what a frame arriving then waited.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.gc_pause = Histogram(
            "collabgate_gc_pause_seconds",
            "Event-loop stops for Python's cyclic garbage collector, by generation.",
            ["generation"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )

        # Children resolved once: `.labels()` on every message costs more than the increment.
        self.received_by_type = {
            kind: self.messages_received.labels(kind) for kind in INBOUND_TYPES
        }
        self.duration_by_type = {kind: self.message_duration.labels(kind) for kind in INBOUND_TYPES}
        self.errors_by_code = {error.code: self.errors.labels(error.code) for error in ALL_ERRORS}
        for result in ("granted", "denied"):
            self.lock_acquisitions.labels(result)
        for dependency in DEPENDENCIES:
            self.dependency_failures.labels(dependency)
        self.up.set(1)

    def set_dependency(self, dependency: str, up: bool) -> None:
        self.dependency_up.labels(dependency).set(1 if up else 0)

    def render(self) -> bytes:
        return generate_latest(self.registry)
