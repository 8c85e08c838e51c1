"""The gateway core: what every request does to rooms, documents, locks and the audit trail.

No sockets here. An endpoint authenticates, calls :meth:`Gateway.open`, feeds each frame to
:meth:`Gateway.receive` and writes out what lands in the connection's outbox. The ports (presence,
locks, documents, audit, bus) are injected; the core never imports an adapter.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog

from collabgate.audit.port import AuditEvent, AuditEventType, AuditSink
from collabgate.auth.principal import Principal, Role
from collabgate.bus.port import RoomBus, RoomEvent
from collabgate.documents.service import DocumentService
from collabgate.errors import (
    ConnectionTimeout,
    GatewayError,
    InternalServerError,
    InvalidPayload,
    LockConflict,
    LockNotHeld,
    MaxConnectionsExceeded,
    PermissionDenied,
    RateLimitExceeded,
    ResourceAlreadyJoined,
    ResourceNotFound,
    RoomFull,
    ServiceUnavailable,
)
from collabgate.locks.port import WHOLE_RESOURCE, Denied, Lock, LockStore
from collabgate.ops.metrics import Metrics
from collabgate.presence.port import Member, PresenceStore
from collabgate.protocol import outbound
from collabgate.protocol.inbound import (
    Awareness,
    Heartbeat,
    JoinResource,
    LeaveResource,
    LockAcquire,
    LockExtend,
    LockRelease,
    Request,
    Sync,
    YUpdate,
    parse_request,
)
from collabgate.protocol.resource_ids import resource_type_of
from collabgate.session.connection import Connection, TokenBucket
from collabgate.session.outbox import Outbox
from collabgate.sessions.port import SessionStore
from collabgate.settings import Settings

log = structlog.get_logger(__name__)

CLOSE_GOING_AWAY_RESTART = 1012
CLOSE_POLICY = 1008


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(slots=True)
class Ports:
    presence: PresenceStore
    locks: LockStore
    documents: DocumentService
    audit: AuditSink
    bus: RoomBus
    sessions: SessionStore
    #: Errors from these dependencies become WS_5002 instead of WS_5001.
    unavailable_errors: tuple[type[BaseException], ...] = field(default=(ConnectionError, OSError))


class Gateway:
    def __init__(
        self,
        settings: Settings,
        ports: Ports,
        metrics: Metrics,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.settings = settings
        self._now = clock
        self.instance_id = settings.instance_name
        self.presence = ports.presence
        self.locks = ports.locks
        self.documents = ports.documents
        self.audit = ports.audit
        self.bus = ports.bus
        self.sessions = ports.sessions
        self.metrics = metrics
        self._unavailable = ports.unavailable_errors
        self.connections: dict[str, Connection] = {}
        self._by_user: dict[str, set[str]] = {}
        self._rooms: dict[str, dict[str, Connection]] = {}
        self._release_timers: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.draining = False
        self._all_closed = asyncio.Event()
        self._handlers: dict[type, Callable[[Connection, Any], Awaitable[None]]] = {
            Heartbeat: self._heartbeat,
            JoinResource: self._join,
            LeaveResource: self._leave,
            YUpdate: self._update,
            Sync: self._sync,
            LockAcquire: self._lock_acquire,
            LockExtend: self._lock_extend,
            LockRelease: self._lock_release,
            Awareness: self._awareness,
        }

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        await self.bus.start(self.instance_id, self._on_bus_event)
        self._spawn(self._every(self.settings.lock_sweep_interval_seconds, self._expire_locks))
        heartbeat_check = min(5.0, self.settings.heartbeat_timeout_seconds / 4)
        self._spawn(self._every(heartbeat_check, self._close_silent_connections))
        self._spawn(self._every(30.0, self._unload_idle_documents))
        self._spawn(self._every(self.settings.session_ttl_seconds / 3, self._refresh_sessions))
        self._spawn(self._every(self.presence.heartbeat_interval_seconds, self._presence_heartbeat))
        self._spawn(
            self._every(self.presence.heartbeat_interval_seconds, self._reap_dead_instances)
        )

    async def drain(self) -> None:
        """Stop taking connections, tell every client to reconnect elsewhere, close them."""
        self.draining = True
        self.metrics.up.set(0)
        frame = outbound.encode(outbound.server_shutdown(self.settings.shutdown_reconnect_after_ms))
        for connection in list(self.connections.values()):
            connection.send(frame)
            connection.request_close(CLOSE_GOING_AWAY_RESTART, "server shutting down")

    async def wait_all_closed(self, within_seconds: float) -> bool:
        """Wait until every connection is gone (after :meth:`drain`); False on timeout."""
        if not self.connections:
            return True
        self._all_closed.clear()
        try:
            await asyncio.wait_for(self._all_closed.wait(), within_seconds)
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for timer in self._release_timers.values():
            timer.cancel()
        await self.bus.close()

    # ------------------------------------------------------------------ connections
    async def open(self, principal: Principal) -> Connection:
        """Register an authenticated connection and queue its CONNECTED frame."""
        self._check_capacity(principal.user_id)
        connection = Connection(
            uuid.uuid4().hex,
            principal,
            Outbox(self.settings.send_queue_max_bytes),
            TokenBucket(self.settings.rate_limit_per_second, self.settings.rate_limit_burst),
        )
        await self._register_session(connection)
        self.connections[connection.id] = connection
        self._by_user.setdefault(principal.user_id, set()).add(connection.id)
        self._cancel_lock_release(principal.user_id)
        self.metrics.connections.set(len(self.connections))
        self.metrics.connections_opened.inc()
        self._audit(
            AuditEventType.USER_CONNECTED, connection, details={"role": principal.role.value}
        )
        connection.send(
            outbound.encode(
                outbound.connected(
                    connection_id=connection.id,
                    user={
                        "userId": principal.user_id,
                        "role": principal.role.value,
                        "name": principal.name,
                    },
                    server_time=self._now(),
                    heartbeat_ms=int(self.settings.heartbeat_timeout_seconds * 500),
                )
            )
        )
        return connection

    def _check_capacity(self, user_id: str) -> None:
        if self.draining:
            raise MaxConnectionsExceeded("this instance is shutting down; reconnect to another")
        if len(self.connections) >= self.settings.max_connections:
            raise MaxConnectionsExceeded(
                f"this instance holds its maximum of {self.settings.max_connections} connections"
            )
        if len(self._by_user.get(user_id, ())) >= self.settings.max_connections_per_user:
            raise MaxConnectionsExceeded(
                f"user already has {self.settings.max_connections_per_user} open connections"
            )

    async def _register_session(self, connection: Connection) -> None:
        """Count the connection on every instance; refuse it over the per-user cap."""
        cap = self.settings.max_connections_per_user
        try:
            count = await self.sessions.open(
                connection.user_id,
                connection.id,
                self.instance_id,
                self.settings.session_ttl_seconds,
            )
        except self._unavailable as exc:
            # Degrade: the local cap still holds; the cluster-wide one returns with the store.
            log.warning("session_store_unavailable", error=str(exc))
            return
        if count > cap:
            await self.sessions.close_connection(connection.user_id, connection.id)
            raise MaxConnectionsExceeded(f"user already has {cap} open connections")

    def reject(self, error: GatewayError, remote: str | None) -> None:
        """Record a refused handshake (bad or missing token, too many connections)."""
        self.metrics.connections_rejected.labels(error.code).inc()
        self.metrics.errors.labels(error.code).inc()
        self.audit.record(
            AuditEvent(
                AuditEventType.CONNECTION_REJECTED,
                self._now(),
                self.instance_id,
                details={"code": error.code, "reason": error.message, "remote": remote},
            )
        )

    async def close(self, connection: Connection, reason: str) -> None:
        """Forget a connection whose socket is gone: leave its rooms, schedule lock release."""
        if self.connections.pop(connection.id, None) is None:
            return
        connection.outbox.close()
        for resource_id in list(connection.joined):
            await self._leave_room(connection, resource_id, reason)
        user_connections = self._by_user.get(connection.user_id)
        if user_connections is not None:
            user_connections.discard(connection.id)
            if not user_connections:
                del self._by_user[connection.user_id]
                self._schedule_lock_release(connection.user_id)
        self.metrics.connections.set(len(self.connections))
        self.metrics.connections_closed.labels(reason).inc()
        if not self.connections:
            self._all_closed.set()
        try:
            await self.sessions.close_connection(connection.user_id, connection.id)
        except self._unavailable as exc:
            log.warning("session_close_failed", error=str(exc))
        self._audit(AuditEventType.USER_DISCONNECTED, connection, details={"reason": reason})

    # ------------------------------------------------------------------ inbound frames
    async def receive(self, connection: Connection, frame: str | bytes) -> None:
        """Handle one inbound frame; every problem becomes an ERROR frame to the sender."""
        started = time.perf_counter()
        connection.last_seen = time.monotonic()
        kind = "INVALID"
        request: Request | None = None
        try:
            if not connection.rate.take(connection.last_seen):
                raise RateLimitExceeded(
                    f"more than {self.settings.rate_limit_per_second:g} messages per second"
                )
            request = parse_request(frame, self.settings.max_frame_bytes)
            kind = _TYPE_NAMES[type(request)]
            await self._handlers[type(request)](connection, request)
        except GatewayError as exc:
            self._send_error(connection, exc, request.ref if request is not None else None)
        except self._unavailable as exc:
            log.warning("dependency_unavailable", connection_id=connection.id, error=str(exc))
            self._send_error(
                connection,
                ServiceUnavailable("a backing service is unavailable; retry"),
                _ref(request),
            )
        except Exception:
            log.exception("request_failed", connection_id=connection.id, type=kind)
            self._send_error(connection, InternalServerError("internal error"), _ref(request))
        finally:
            self.metrics.received_by_type[kind].inc()
            self.metrics.duration_by_type[kind].observe(time.perf_counter() - started)

    def _send_error(self, connection: Connection, error: GatewayError, ref: str | None) -> None:
        self.metrics.errors_by_code[error.code].inc()
        self._reply(connection, outbound.error(error, ref))
        if isinstance(error, PermissionDenied):
            self._audit(
                AuditEventType.PERMISSION_DENIED, connection, details={"reason": error.message}
            )

    def _reply(self, connection: Connection, frame: outbound.Frame) -> None:
        if connection.send(outbound.encode(frame)):
            self.metrics.messages_sent.inc()

    async def _heartbeat(self, connection: Connection, request: Heartbeat) -> None:
        self._reply(connection, outbound.heartbeat_ack(request.ref, self._now()))

    async def _join(self, connection: Connection, request: JoinResource) -> None:
        resource_id = request.resource_id
        if resource_id in connection.joined:
            raise ResourceAlreadyJoined(f"{resource_id} is already joined on this connection")
        if len(connection.joined) >= self.settings.max_joined_resources:
            raise InvalidPayload(
                f"a connection may join at most {self.settings.max_joined_resources} resources"
            )
        self._check_resource_type(request)
        self._check_mode(connection.principal, request.mode)
        document = await self.documents.get(resource_id)
        if await self._room_is_full_for(resource_id, connection.user_id):
            raise RoomFull(f"{resource_id} already has {self.settings.room_max_users} users")
        member = self._member(connection, request.mode)
        first_for_user = await self.presence.add(resource_id, member)
        connection.joined[resource_id] = request.mode
        self._rooms.setdefault(resource_id, {})[connection.id] = connection
        self._update_room_gauges()
        members = await self.presence.members(resource_id)
        locks = await self.locks.locks(resource_id, self._now())
        self._reply(
            connection,
            outbound.resource_state(
                request.ref,
                resource_id=resource_id,
                mode=request.mode,
                revision=document.revision,
                state=document.full_state(),
                users=[m.to_wire() for m in members],
                locks=[lock.to_wire() for lock in locks],
            ),
        )
        if first_for_user:
            await self._broadcast(
                resource_id, outbound.user_joined(resource_id, member.to_wire()), connection.id
            )
        self._audit(AuditEventType.RESOURCE_JOINED, connection, resource_id, {"mode": request.mode})

    def _member(self, connection: Connection, mode: str) -> Member:
        return Member(
            connection_id=connection.id,
            user_id=connection.user_id,
            role=connection.principal.role.value,
            mode=mode,
            joined_at=self._now(),
            name=connection.principal.name,
        )

    def _check_resource_type(self, request: JoinResource) -> None:
        allowed = self.settings.resource_types
        resource_type = resource_type_of(request.resource_id)
        if allowed and resource_type not in allowed:
            raise ResourceNotFound(f"resource type {resource_type!r} is not served here")
        if request.resource_type is not None and request.resource_type != resource_type:
            raise ResourceNotFound(
                f"resourceType {request.resource_type!r} does not match the id's type {resource_type!r}"
            )

    @staticmethod
    def _check_mode(principal: Principal, mode: str) -> None:
        if mode == "editor" and not principal.role.can_edit:
            who = "guests" if principal.role is Role.GUEST else "viewers"
            raise PermissionDenied(f"{who} may only join as viewer")

    async def _room_is_full_for(self, resource_id: str, user_id: str) -> bool:
        if await self.presence.user_count(resource_id) < self.settings.room_max_users:
            return False
        return all(m.user_id != user_id for m in await self.presence.members(resource_id))

    async def _leave(self, connection: Connection, request: LeaveResource) -> None:
        connection.mode_in(request.resource_id)
        await self._leave_room(connection, request.resource_id, "left")
        self._reply(connection, outbound.resource_left(request.ref, request.resource_id))

    async def _leave_room(self, connection: Connection, resource_id: str, reason: str) -> None:
        connection.joined.pop(resource_id, None)
        room = self._rooms.get(resource_id)
        if room is not None:
            room.pop(connection.id, None)
            if not room:
                del self._rooms[resource_id]
        self._update_room_gauges()
        try:
            _, last_for_user = await self.presence.remove(resource_id, connection.id)
        except self._unavailable as exc:
            log.warning("presence_remove_failed", resource_id=resource_id, error=str(exc))
            return
        if last_for_user:
            await self._broadcast(
                resource_id,
                outbound.user_left(resource_id, connection.user_id, reason),
                connection.id,
            )
        self._audit(AuditEventType.RESOURCE_LEFT, connection, resource_id, {"reason": reason})

    async def _update(self, connection: Connection, request: YUpdate) -> None:
        resource_id = request.resource_id
        connection.require_editor(resource_id)
        await self._refuse_if_locked_by_other(connection, resource_id)
        document = await self.documents.get(resource_id)
        revision = self.documents.apply(document, request.update)
        # Peers see the edit at once; the sender's ACK waits until it is durable.
        frame = outbound.encode(
            outbound.y_update(resource_id, request.update, revision, connection.user_id)
        )
        await self._broadcast_encoded(resource_id, frame, connection.id, update=request.update)
        await self.documents.persist(document, revision, request.update)
        self.metrics.update_bytes.observe(len(request.update))
        self._reply(connection, outbound.y_update_ack(request.ref, resource_id, revision))
        self._audit(
            AuditEventType.DOCUMENT_UPDATED,
            connection,
            resource_id,
            {"revision": revision, "bytes": len(request.update)},
        )

    async def _refuse_if_locked_by_other(self, connection: Connection, resource_id: str) -> None:
        for lock in await self.locks.locks(resource_id, self._now()):
            if lock.target == WHOLE_RESOURCE and lock.holder_user_id != connection.user_id:
                raise LockConflict(f"{resource_id} is locked for editing by {lock.holder_user_id}")

    async def _sync(self, connection: Connection, request: Sync) -> None:
        connection.mode_in(request.resource_id)
        document = await self.documents.get(request.resource_id)
        missing = document.missing_from(request.state_vector)
        self._reply(
            connection,
            outbound.sync_reply(request.ref, request.resource_id, missing, document.revision),
        )

    async def _lock_acquire(self, connection: Connection, request: LockAcquire) -> None:
        resource_id = request.resource_id
        connection.require_editor(resource_id)
        started = time.perf_counter()
        result = await self.locks.acquire(
            resource_id, request.target, connection.user_id, self._ttl(request.ttl_ms), self._now()
        )
        self.metrics.lock_acquisition_duration.observe(time.perf_counter() - started)
        if isinstance(result, Denied):
            self._deny_lock(connection, request, result)
            return
        self.metrics.lock_acquisitions.labels("granted").inc()
        self._reply(
            connection,
            outbound.lock_acquired(
                request.ref,
                resource_id=resource_id,
                target=result.target,
                lock_id=result.lock_id,
                fencing_token=result.fencing_token,
                expires_at=result.expires_at,
            ),
        )
        await self._broadcast(
            resource_id,
            outbound.lock_status_locked(
                resource_id, result.target, result.holder_user_id, result.expires_at
            ),
            connection.id,
        )
        self._audit(
            AuditEventType.LOCK_ACQUIRED,
            connection,
            resource_id,
            {
                "target": result.target,
                "fencingToken": result.fencing_token,
                "expiresAt": result.expires_at,
            },
        )

    def _deny_lock(self, connection: Connection, request: LockAcquire, denial: Denied) -> None:
        held = denial.held_by
        self.metrics.lock_acquisitions.labels("denied").inc()
        self._reply(
            connection,
            outbound.lock_denied(
                request.ref,
                resource_id=request.resource_id,
                target=request.target,
                reason="held_by_other",
                holder_user_id=held.holder_user_id,
                expires_at=held.expires_at,
            ),
        )
        self._audit(
            AuditEventType.LOCK_DENIED,
            connection,
            request.resource_id,
            {"target": request.target, "heldTarget": held.target, "holder": held.holder_user_id},
        )

    def _ttl(self, requested: int | None) -> int:
        return min(requested or self.settings.lock_default_ttl_ms, self.settings.lock_max_ttl_ms)

    async def _lock_extend(self, connection: Connection, request: LockExtend) -> None:
        connection.require_editor(request.resource_id)
        lock = await self.locks.extend(
            request.resource_id,
            request.target,
            connection.user_id,
            self._ttl(request.ttl_ms),
            self._now(),
        )
        if lock is None:
            raise LockNotHeld(
                f"you hold no lock on {request.resource_id} target {request.target!r}"
            )
        self._reply(
            connection,
            outbound.lock_extended(request.ref, lock.resource_id, lock.target, lock.expires_at),
        )

    async def _lock_release(self, connection: Connection, request: LockRelease) -> None:
        connection.require_editor(request.resource_id)
        lock = await self.locks.release(
            request.resource_id, request.target, connection.user_id, self._now()
        )
        if lock is None:
            raise LockNotHeld(
                f"you hold no lock on {request.resource_id} target {request.target!r}"
            )
        self._reply(connection, outbound.lock_released(request.ref, lock.resource_id, lock.target))
        await self._announce_unlocked(lock, "released", exclude=connection.id)

    async def _awareness(self, connection: Connection, request: Awareness) -> None:
        connection.mode_in(request.resource_id)
        size = len(orjson.dumps(request.state))
        if size > self.settings.max_awareness_bytes:
            raise InvalidPayload(
                f"state is {size} bytes; awareness states are limited to {self.settings.max_awareness_bytes}"
            )
        await self._broadcast(
            request.resource_id,
            outbound.awareness(request.resource_id, connection.user_id, request.state),
            connection.id,
        )

    # ------------------------------------------------------------------ fan-out
    async def _broadcast(
        self, resource_id: str, frame: outbound.Frame, exclude: str | None
    ) -> None:
        await self._broadcast_encoded(resource_id, outbound.encode(frame), exclude)

    async def _broadcast_encoded(
        self, resource_id: str, frame: str, exclude: str | None, update: bytes | None = None
    ) -> None:
        """Send one encoded frame to the room here, and to the room on every other instance."""
        self._deliver_local(resource_id, frame, exclude)
        try:
            await self.bus.publish(RoomEvent(resource_id, self.instance_id, frame, update, exclude))
        except self._unavailable as exc:
            # Other instances' clients close the gap with SYNC; this instance's clients have it.
            log.warning("bus_publish_failed", resource_id=resource_id, error=str(exc))

    def _deliver_local(self, resource_id: str, frame: str, exclude: str | None) -> None:
        room = self._rooms.get(resource_id)
        if not room:
            return
        sent = 0
        for connection in room.values():
            if connection.id != exclude and connection.send(frame):
                sent += 1
        self.metrics.messages_sent.inc(sent)

    async def _on_bus_event(self, event: RoomEvent) -> None:
        if event.update is not None:
            document = self.documents.loaded_document(event.resource_id)
            if document is not None:
                document.apply_remote(event.update)
        self._deliver_local(event.resource_id, event.frame, event.exclude_connection)

    # ------------------------------------------------------------------ locks over time
    async def _expire_locks(self) -> None:
        for lock in await self.locks.pop_expired(self._now()):
            await self._announce_unlocked(lock, "expired")

    async def _announce_unlocked(self, lock: Lock, reason: str, exclude: str | None = None) -> None:
        await self._broadcast(
            lock.resource_id,
            outbound.lock_status_unlocked(
                lock.resource_id, lock.target, lock.holder_user_id, reason
            ),
            exclude,
        )
        event_type = (
            AuditEventType.LOCK_EXPIRED if reason == "expired" else AuditEventType.LOCK_RELEASED
        )
        self.audit.record(
            AuditEvent(
                event_type,
                self._now(),
                self.instance_id,
                user_id=lock.holder_user_id,
                resource_id=lock.resource_id,
                details={
                    "target": lock.target,
                    "fencingToken": lock.fencing_token,
                    "reason": reason,
                },
            )
        )

    def _schedule_lock_release(self, user_id: str) -> None:
        loop = asyncio.get_running_loop()
        self._release_timers[user_id] = loop.call_later(
            self.settings.lock_holder_grace_seconds,
            lambda: self._spawn(self._release_locks_of(user_id)),
        )

    def _cancel_lock_release(self, user_id: str) -> None:
        timer = self._release_timers.pop(user_id, None)
        if timer is not None:
            timer.cancel()

    async def _release_locks_of(self, user_id: str) -> None:
        self._release_timers.pop(user_id, None)
        if user_id in self._by_user or await self.sessions.count(user_id) > 0:
            return  # back within the grace period, here or on another instance
        now = self._now()
        for lock in await self.locks.held_by(user_id, now):
            released = await self.locks.release(lock.resource_id, lock.target, user_id, now)
            if released is not None:
                await self._announce_unlocked(released, "holder_disconnected")

    # ------------------------------------------------------------------ housekeeping
    async def _close_silent_connections(self) -> None:
        deadline = time.monotonic() - self.settings.heartbeat_timeout_seconds
        for connection in list(self.connections.values()):
            if connection.last_seen < deadline:
                error = ConnectionTimeout(
                    f"no message for {self.settings.heartbeat_timeout_seconds:g} s; send HEARTBEAT every 30 s"
                )
                self._send_error(connection, error, None)
                connection.request_close(4408, "heartbeat timeout")
                await self.close(connection, "timeout")

    async def _refresh_sessions(self) -> None:
        ttl = self.settings.session_ttl_seconds
        for connection in list(self.connections.values()):
            if not await self.sessions.touch(connection.id, ttl):
                await self.sessions.open(connection.user_id, connection.id, self.instance_id, ttl)

    async def _presence_heartbeat(self) -> None:
        if await self.presence.heartbeat():
            return
        # This instance was presumed dead and its members reaped: put them back.
        log.warning("presence_lapsed_readding_members")
        for connection in list(self.connections.values()):
            for resource_id, mode in connection.joined.items():
                await self.presence.add(resource_id, self._member(connection, mode))

    async def _reap_dead_instances(self) -> None:
        """Announce the users of a dead instance as gone, and release their locks after grace."""
        for resource_id, member, last_for_user in await self.presence.reap_dead_instances():
            await self.sessions.close_connection(member.user_id, member.connection_id)
            if last_for_user:
                frame = outbound.user_left(resource_id, member.user_id, "disconnected")
                await self._broadcast(resource_id, frame, exclude=None)
            if member.user_id not in self._by_user and member.user_id not in self._release_timers:
                self._schedule_lock_release(member.user_id)

    async def _unload_idle_documents(self) -> None:
        self.documents.unload_idle(
            self.settings.document_idle_unload_seconds, self._rooms.__contains__
        )
        self.metrics.documents_loaded.set(self.documents.loaded)

    def _update_room_gauges(self) -> None:
        self.metrics.resources_active.set(len(self._rooms))

    async def _every(self, seconds: float, job: Callable[[], Awaitable[None]]) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await job()
            except Exception:
                log.exception("periodic_job_failed", job=getattr(job, "__name__", "job"))

    def _spawn(self, coroutine: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _audit(
        self,
        event_type: AuditEventType,
        connection: Connection,
        resource_id: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        self.audit.record(
            AuditEvent(
                event_type,
                self._now(),
                self.instance_id,
                user_id=connection.user_id,
                resource_id=resource_id,
                connection_id=connection.id,
                details=details or {},
            )
        )


def _ref(request: Request | None) -> str | None:
    return request.ref if request is not None else None


_TYPE_NAMES: dict[type, str] = {
    Heartbeat: "HEARTBEAT",
    JoinResource: "JOIN_RESOURCE",
    LeaveResource: "LEAVE_RESOURCE",
    YUpdate: "Y_UPDATE",
    Sync: "SYNC",
    LockAcquire: "LOCK_ACQUIRE",
    LockExtend: "LOCK_EXTEND",
    LockRelease: "LOCK_RELEASE",
    Awareness: "AWARENESS",
}
