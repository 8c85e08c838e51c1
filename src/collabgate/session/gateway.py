"""The gateway core: what every request does to rooms, documents, locks and the audit trail.

No sockets here. An endpoint authenticates, calls :meth:`Gateway.open` (``/ws``) or
:meth:`Gateway.open_yjs` (``/yjs``), feeds each frame to :meth:`Gateway.receive` or
:meth:`Gateway.receive_yjs` and writes out what lands in the connection's outbox. Both codecs
reach the same room, document, presence, audit and metrics paths; a broadcast is an
:class:`~collabgate.session.outbox.Outgoing` encoded at most once per codec. The ports
(presence, locks, documents, audit, bus) are injected; the core never imports an adapter.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import orjson
import structlog
from pycrdt import merge_updates

from collabgate.audit.port import AuditEvent, AuditEventType, AuditSink
from collabgate.auth.principal import Principal, Role
from collabgate.bus.port import PublishUnconfirmed, RoomBus, RoomEvent
from collabgate.documents.server_document import ServerDocument, inserts_anything
from collabgate.documents.service import DocumentService
from collabgate.errors import (
    ConnectionTimeout,
    GatewayError,
    InternalServerError,
    InvalidMode,
    InvalidPayload,
    LockConflict,
    LockNotHeld,
    MaxConnectionsExceeded,
    MessageTooLarge,
    PermissionDenied,
    RateLimitExceeded,
    ResourceAlreadyJoined,
    ResourceNotFound,
    RoomFull,
    ServiceUnavailable,
)
from collabgate.locks.port import WHOLE_RESOURCE, Denied, Lock, LockStore
from collabgate.ops.event_loop import running_loop, settled, settled_after
from collabgate.ops.metrics import Metrics
from collabgate.presence.port import Member, PresenceStore
from collabgate.protocol import outbound, yjs
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
    ref_of,
)
from collabgate.protocol.resource_ids import resource_type_of, validate_resource_id
from collabgate.session.connection import Connection, TokenBucket
from collabgate.session.outbox import Codec, Outbox, Outgoing
from collabgate.session.republish import Republisher
from collabgate.sessions.port import SessionStore
from collabgate.settings import Settings

log = structlog.get_logger(__name__)

CLOSE_GOING_AWAY_RESTART = 1012
MAX_RESOURCE_TYPE_LABELS = 20
#: Room events of one room kept to check whether the gap they showed is closed (the newest).
GAPS_CHECKED_PER_ROOM = 256
CLOSE_POLICY = 1008
CLOSE_INVALID_DATA = 1007
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL_ERROR = 1011
CLOSE_TRY_AGAIN_LATER = 1013

#: /yjs errors that refuse one message and keep the socket (sent as a permission-denied auth
#: message); any other error closes it, and the y-websocket client reconnects and resyncs.
_YJS_REFUSALS = (PermissionDenied, LockConflict)
_YJS_CLOSE_CODES: dict[type[GatewayError], int] = {
    RateLimitExceeded: CLOSE_POLICY,
    MessageTooLarge: CLOSE_TOO_BIG,
    InvalidPayload: CLOSE_INVALID_DATA,
    ServiceUnavailable: CLOSE_TRY_AGAIN_LATER,
}


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
        #: Rooms whose copy lacks edits that room events built on: the events whose gap is not
        #: known to be closed yet, and the task reading the room from the store.
        self._gaps: dict[str, deque[bytes]] = {}
        self._repairing: dict[str, asyncio.Task[None]] = {}
        self._republisher = Republisher(
            self._publish,
            unavailable=ports.unavailable_errors,
            max_events=settings.bus_republish_max_events,
            retry_seconds=settings.bus_republish_retry_seconds,
            outcomes=metrics.bus_republished,
        )
        self.connections: dict[str, Connection] = {}
        self._by_user: dict[str, set[str]] = {}
        self._rooms: dict[str, dict[str, Connection]] = {}
        #: Latest awareness per client, for rooms with a local connection (see protocol.yjs).
        self._awareness: dict[str, yjs.AwarenessRoom] = {}
        #: Local /yjs connections per room, and the updates waiting for this loop turn's flush.
        self._yjs_peers: dict[str, int] = {}
        self._yjs_pending: dict[str, list[tuple[bytes, str | None]]] = {}
        #: A /yjs peer silent this long gets a query-awareness, whose answer shows it is alive.
        self.yjs_probe_after_seconds = min(10.0, settings.heartbeat_timeout_seconds / 4)
        self._release_timers: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        #: Updates on their way to the store; shutdown waits for them.
        self._storing: set[asyncio.Future[int]] = set()
        self.draining = False
        self._resource_type_labels: set[str] = set()
        self._all_closed = asyncio.Event()
        self._handlers: dict[type, Callable[[Connection, Any], Awaitable[None]]] = {
            Heartbeat: self._heartbeat,
            JoinResource: self._join,
            LeaveResource: self._leave,
            Sync: self._sync,
            LockAcquire: self._lock_acquire,
            LockExtend: self._lock_extend,
            LockRelease: self._lock_release,
            Awareness: self._awareness_from_json,
        }
        self._yjs_handlers: dict[type, Callable[[Connection, Any], Awaitable[None]]] = {
            yjs.SyncStep1: self._yjs_sync_step1,
            yjs.SyncStep2: self._yjs_update,
            yjs.SyncUpdate: self._yjs_update,
            yjs.AwarenessMessage: self._yjs_awareness,
            yjs.QueryAwareness: self._yjs_query_awareness,
            yjs.AuthMessage: self._yjs_ignore,
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
        self._spawn(self._every(self.yjs_probe_after_seconds / 2, self._probe_quiet_yjs_peers))
        self._spawn(
            self._every(yjs.AWARENESS_OUTDATED_SECONDS / 2, self._renew_json_awareness_for_yjs)
        )

    async def drain(self) -> None:
        """Stop taking connections, tell every client to reconnect elsewhere, close them."""
        self.draining = True
        self.metrics.up.set(0)
        frame = outbound.encode(outbound.server_shutdown(self.settings.shutdown_reconnect_after_ms))
        for connection in list(self.connections.values()):
            if connection.codec == "json":  # y-websocket has no such message: the close says it
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

    async def wait_stored(self) -> None:
        """Wait until every update accepted so far is durable (or has failed to be stored)."""
        while self._storing:
            await asyncio.gather(*self._storing, return_exceptions=True)

    async def wait_republished(self) -> None:
        """Wait until every edit whose publish failed has been published again."""
        await self._republisher.wait_idle()

    async def stop(self) -> None:
        await self.wait_stored()  # accepted updates reach the store (and the audit trail) first
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for timer in self._release_timers.values():
            timer.cancel()
        await self._republisher.stop()
        for task in self._repairing.values():
            task.cancel()
        await self.bus.close()

    # ------------------------------------------------------------------ connections
    async def open(self, principal: Principal, codec: Codec = "json") -> Connection:
        """Register an authenticated connection; a ``/ws`` one gets its CONNECTED frame."""
        self._check_capacity(principal.user_id)
        connection = Connection(
            uuid.uuid4().hex,
            principal,
            Outbox(self.settings.send_queue_max_bytes),
            TokenBucket(self.settings.rate_limit_per_second, self.settings.rate_limit_burst),
            codec,
        )
        await self._register_session(connection)
        self.connections[connection.id] = connection
        self._by_user.setdefault(principal.user_id, set()).add(connection.id)
        self._cancel_lock_release(principal.user_id)
        self.metrics.connections.set(len(self.connections))
        self.metrics.connections_opened.inc()
        self._audit(
            AuditEventType.USER_CONNECTED,
            connection,
            details={
                "role": principal.role.value,
                **({"protocol": codec} if codec == "yjs" else {}),
            },
        )
        if codec == "yjs":
            return connection
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

    async def open_yjs(
        self, principal: Principal, resource_id: str, mode: str | None = None
    ) -> Connection:
        """Register a ``/yjs`` connection and join its one resource, as JOIN_RESOURCE would.

        ``mode`` defaults to editor when the role may edit, else viewer. The peer is greeted
        the way y-websocket's own server greets it: our SyncStep1 (so it sends what we lack)
        and the awareness states of the room. A refused join closes the connection again.
        """
        validate_resource_id(resource_id, "resourceId")
        chosen = mode or ("editor" if principal.role.can_edit else "viewer")
        if chosen not in ("editor", "viewer"):
            raise InvalidMode("mode must be 'editor' or 'viewer'")
        connection = await self.open(principal, codec="yjs")
        try:
            document, member, first_for_user = await self._enter_room(
                connection, resource_id, chosen, None
            )
        except BaseException:
            await self.close(connection, "rejected")
            raise
        connection.send(yjs.sync_step1(document.state_vector()))
        states = self._awareness_room(resource_id).live_entries()
        if states:
            connection.send(yjs.awareness_message(yjs.encode_awareness(states)))
        await self._announce_join(connection, resource_id, member, first_for_user)
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
        acked_later = False
        try:
            if not connection.rate.take(connection.last_seen):
                raise RateLimitExceeded(
                    f"more than {self.settings.rate_limit_per_second:g} messages per second",
                    ref=ref_of(frame, self.settings.max_frame_bytes),
                )
            request = parse_request(frame, self.settings.max_frame_bytes)
            kind = _TYPE_NAMES[type(request)]
            if isinstance(request, YUpdate):
                await self._update(connection, request, started)
                acked_later = True
            else:
                await self._handlers[type(request)](connection, request)
        except Exception as exc:
            self._fail(connection, exc, _ref(request), kind)
        finally:
            self.metrics.received_by_type[kind].inc()
            if not acked_later:  # an update's time runs until its ACK (_stored_from_ws)
                self.metrics.duration_by_type[kind].observe(time.perf_counter() - started)

    async def receive_yjs(self, connection: Connection, frame: str | bytes) -> None:
        """Handle one y-websocket message; same limits, metrics and error paths as /ws.

        Metrics count a SyncStep1 as ``SYNC``, a SyncStep2 or Update as ``Y_UPDATE`` and
        awareness and query-awareness as ``AWARENESS``: the same operations as on /ws.
        """
        started = time.perf_counter()
        connection.last_seen = time.monotonic()
        kind = "INVALID"
        try:
            if not connection.rate.take(connection.last_seen):
                raise RateLimitExceeded(
                    f"more than {self.settings.rate_limit_per_second:g} messages per second"
                )
            message = self._decode_yjs(frame)
            kind = _YJS_TYPE_NAMES[type(message)]
            await self._yjs_handlers[type(message)](connection, message)
        except Exception as exc:
            self._fail(connection, exc, None, kind)
        finally:
            self.metrics.received_by_type[kind].inc()
            self.metrics.duration_by_type[kind].observe(time.perf_counter() - started)

    def _decode_yjs(self, frame: str | bytes) -> yjs.YjsMessage:
        if isinstance(frame, str):
            raise InvalidPayload("y-websocket messages travel in binary frames")
        if len(frame) > self.settings.max_frame_bytes:
            raise MessageTooLarge(
                f"message of {len(frame)} bytes; the limit is {self.settings.max_frame_bytes}"
            )
        return yjs.decode_message(frame)

    def _fail(self, connection: Connection, exc: Exception, ref: str | None, kind: str) -> None:
        """What the sender of a failed request gets: the protocol error it raised, WS_5002 for
        a backing service that is away, WS_5001 (and a logged traceback) for anything else."""
        if isinstance(exc, GatewayError):
            error = exc
        elif isinstance(exc, self._unavailable):
            log.warning("dependency_unavailable", connection_id=connection.id, error=str(exc))
            error = ServiceUnavailable("a backing service is unavailable; retry")
        else:
            log.error("request_failed", connection_id=connection.id, type=kind, exc_info=exc)
            error = InternalServerError("internal error")
        self._send_error(connection, error, ref)

    def _send_error(self, connection: Connection, error: GatewayError, ref: str | None) -> None:
        self.metrics.errors_by_code[error.code].inc()
        if connection.codec == "yjs":
            self._send_yjs_error(connection, error)
        else:
            self._reply(connection, outbound.error(error, ref))
        if isinstance(error, PermissionDenied):
            self._audit(
                AuditEventType.PERMISSION_DENIED, connection, details={"reason": error.message}
            )

    @staticmethod
    def _send_yjs_error(connection: Connection, error: GatewayError) -> None:
        """y-websocket knows one error, permission denied; any other closes the socket.

        A refused edit stays in the client's document (y-websocket logs the reason). After any
        other error the client may hold an update we did not apply, so it is disconnected: it
        reconnects and the SyncStep1/SyncStep2 exchange closes the gap.
        """
        reason = f"{error.code} {error.type}: {error.message}"
        if isinstance(error, _YJS_REFUSALS):
            connection.send(yjs.permission_denied(reason))
        elif error.close_code is None or error.close_code < 4000:
            code = error.close_code or _YJS_CLOSE_CODES.get(type(error), CLOSE_INTERNAL_ERROR)
            connection.request_close(code, reason.encode()[:120].decode(errors="ignore"))

    def _reply(self, connection: Connection, frame: outbound.Frame) -> None:
        if connection.send(outbound.encode(frame)):
            self.metrics.messages_sent.inc()

    async def _heartbeat(self, connection: Connection, request: Heartbeat) -> None:
        self._reply(connection, outbound.heartbeat_ack(request.ref, self._now()))

    async def _join(self, connection: Connection, request: JoinResource) -> None:
        resource_id = request.resource_id
        document, member, first_for_user = await self._enter_room(
            connection, resource_id, request.mode, request.resource_type
        )
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
        await self._announce_join(connection, resource_id, member, first_for_user)

    async def _enter_room(
        self, connection: Connection, resource_id: str, mode: str, resource_type: str | None
    ) -> tuple[ServerDocument, Member, bool]:
        """Check and record a join (both codecs); True when it is the user's first here."""
        if resource_id in connection.joined:
            raise ResourceAlreadyJoined(f"{resource_id} is already joined on this connection")
        if len(connection.joined) >= self.settings.max_joined_resources:
            raise InvalidPayload(
                f"a connection may join at most {self.settings.max_joined_resources} resources"
            )
        self._check_resource_type(resource_id, resource_type)
        self._check_mode(connection.principal, mode)
        document = await self.documents.get(resource_id)
        await self._refresh_from_store(document)
        if await self._room_is_full_for(resource_id, connection.user_id):
            raise RoomFull(f"{resource_id} already has {self.settings.room_max_users} users")
        member = self._member(connection, mode)
        first_for_user = await self.presence.add(resource_id, member)
        connection.joined[resource_id] = mode
        self._rooms.setdefault(resource_id, {})[connection.id] = connection
        if connection.codec == "yjs":
            self._yjs_peers[resource_id] = self._yjs_peers.get(resource_id, 0) + 1
        return document, member, first_for_user

    async def _announce_join(
        self, connection: Connection, resource_id: str, member: Member, first_for_user: bool
    ) -> None:
        if first_for_user:
            await self._broadcast(
                resource_id, outbound.user_joined(resource_id, member.to_wire()), connection.id
            )
        self._audit(AuditEventType.RESOURCE_JOINED, connection, resource_id, {"mode": member.mode})

    def _member(self, connection: Connection, mode: str) -> Member:
        return Member(
            connection_id=connection.id,
            user_id=connection.user_id,
            role=connection.principal.role.value,
            mode=mode,
            joined_at=self._now(),
            name=connection.principal.name,
        )

    def _check_resource_type(self, resource_id: str, requested_type: str | None) -> None:
        allowed = self.settings.resource_types
        resource_type = resource_type_of(resource_id)
        if allowed and resource_type not in allowed:
            raise ResourceNotFound(f"resource type {resource_type!r} is not served here")
        if requested_type is not None and requested_type != resource_type:
            raise ResourceNotFound(
                f"resourceType {requested_type!r} does not match the id's type {resource_type!r}"
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
        if room is not None and room.pop(connection.id, None) is not None:
            if not room:
                del self._rooms[resource_id]
            if connection.codec == "yjs":
                self._yjs_peers[resource_id] -= 1
                if not self._yjs_peers[resource_id]:
                    del self._yjs_peers[resource_id]
        await self._forget_awareness(connection, resource_id)
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

    async def _update(self, connection: Connection, request: YUpdate, started: float) -> None:
        """Apply and relay the update now; its ``Y_UPDATE_ACK`` follows once it is durable.

        The socket is read on while the update is stored, so a heartbeat or a lock request sent
        after an edit is not held behind a disk flush.
        """
        stored = await self._apply_in_turn(connection, request.resource_id, request.update)
        stored.add_done_callback(partial(self._stored_from_ws, connection, request, started))

    def _stored_from_ws(
        self, connection: Connection, request: YUpdate, started: float, stored: asyncio.Future[int]
    ) -> None:
        if stored.cancelled():  # shutdown gave up on the write: no reply, like any other request
            return
        exc = stored.exception()
        if exc is None:
            ack = outbound.y_update_ack(request.ref, request.resource_id, stored.result())
            self._reply(connection, ack)
        elif isinstance(exc, Exception):
            self._fail(connection, exc, request.ref, "Y_UPDATE")
        self.metrics.duration_by_type["Y_UPDATE"].observe(time.perf_counter() - started)

    async def _apply_in_turn(
        self, connection: Connection, resource_id: str, update: bytes
    ) -> asyncio.Future[int]:
        """:meth:`_apply_update`, with the connection's updates stored in the order sent.

        Each update's future completes only after the previous one's, so a /ws sender's ACKs
        come in the order of its updates. At ``max_updates_in_flight`` unstored updates the
        socket waits for the oldest: that paces a client sending faster than the store commits.
        """
        unstored = connection.unstored()
        while len(unstored) >= self.settings.max_updates_in_flight:
            await settled(unstored[0])
            unstored = connection.unstored()
        after = unstored[-1] if unstored else None
        stored = await self._apply_update(connection, resource_id, update, after)
        unstored.append(stored)
        return stored

    async def _apply_update(
        self,
        connection: Connection,
        resource_id: str,
        update: bytes,
        after: asyncio.Future[int] | None,
    ) -> asyncio.Future[int]:
        """Apply and relay one update (both codecs) and queue it for storage.

        Returns a future of the stored revision, done once the update is durable with its
        audit record (one transaction) and not before ``after`` is done. Peers see the edit at once;
        the ACK a /ws sender gets waits for the future.
        """
        connection.require_editor(resource_id)
        await self._refuse_if_locked_by_other(connection, resource_id)
        document = await self.documents.get(resource_id)
        revision = self.documents.apply(document, update)
        # Queued for storage before anything can yield, so updates reach the store in revision
        # order; another instance may still have taken that revision: it is stored under the next.
        stored = self._store(connection, document, revision, update, after)
        # The JSON form is built only for a reader: a /ws peer here or another instance.
        frame = (
            outbound.encode(outbound.y_update(resource_id, update, revision, connection.user_id))
            if self._json_peers_in(resource_id) or self.bus.reaches_other_instances
            else None
        )
        await self._broadcast_outgoing(resource_id, Outgoing(frame), connection.id, update=update)
        return stored

    def _store(
        self,
        connection: Connection,
        document: ServerDocument,
        revision: int,
        update: bytes,
        after: asyncio.Future[int] | None,
    ) -> asyncio.Future[int]:
        """Queue ``update`` with its audit record; done once both are durable, and not before
        ``after`` (the ACKs of one sender go out in the order of its updates)."""
        record = partial(self._update_record, connection, document.resource_id, len(update))
        stored = self.documents.persist(document, revision, update, record)
        if after is not None:
            stored = settled_after(after, stored)
        self._storing.add(stored)
        stored.add_done_callback(partial(self._update_stored, len(update)))
        return stored

    def _update_stored(self, size: int, stored: asyncio.Future[int]) -> None:
        self._storing.discard(stored)
        if not stored.cancelled() and stored.exception() is None:
            self.metrics.update_bytes.observe(size)
            self.metrics.audit_logs_written.inc()  # stored with the update, not by the trail

    async def _refuse_if_locked_by_other(self, connection: Connection, resource_id: str) -> None:
        for lock in await self.locks.locks(resource_id, self._now()):
            if lock.target == WHOLE_RESOURCE and lock.holder_user_id != connection.user_id:
                raise LockConflict(f"{resource_id} is locked for editing by {lock.holder_user_id}")

    async def _sync(self, connection: Connection, request: Sync) -> None:
        connection.mode_in(request.resource_id)
        document = await self.documents.get(request.resource_id)
        await self._refresh_from_store(document, exclude=connection.id)
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

    async def _awareness_from_json(self, connection: Connection, request: Awareness) -> None:
        """Relay a /ws AWARENESS; /yjs peers get it as the connection's own awareness client."""
        resource_id = request.resource_id
        connection.mode_in(resource_id)
        state = orjson.dumps(request.state)
        if len(state) > self.settings.max_awareness_bytes:
            raise InvalidPayload(
                f"state is {len(state)} bytes; awareness states are limited to {self.settings.max_awareness_bytes}"
            )
        assert connection.awareness_id is not None  # every /ws connection has one
        connection.awareness_clock += 1
        entry = yjs.AwarenessEntry(connection.awareness_id, connection.awareness_clock, state)
        self._awareness_room(resource_id).apply([entry], connection.id, connection.awareness_id)
        outgoing = Outgoing(
            outbound.encode(outbound.awareness(resource_id, connection.user_id, request.state)),
            yjs.awareness_message(yjs.encode_awareness([entry])),
        )
        await self._broadcast_outgoing(resource_id, outgoing, connection.id)

    def _awareness_room(self, resource_id: str) -> yjs.AwarenessRoom:
        room = self._awareness.get(resource_id)
        if room is None:
            room = self._awareness[resource_id] = yjs.AwarenessRoom()
        return room

    async def _forget_awareness(self, connection: Connection, resource_id: str) -> None:
        """Tell the room that a leaving connection's awareness clients are gone."""
        table = self._awareness.get(resource_id)
        if table is None:
            return
        removed = table.remove_owned_by(connection.id)
        if resource_id not in self._rooms:
            del self._awareness[resource_id]  # nobody left here to answer a query-awareness for
        if not removed:
            return
        own = any(entry.client_id == connection.awareness_id for entry in removed)
        json_text = (
            outbound.encode(_awareness_frame(resource_id, connection.user_id, None))
            if own
            else None
        )
        frame = yjs.awareness_message(yjs.encode_awareness(removed))
        await self._broadcast_outgoing(resource_id, Outgoing(json_text, frame), connection.id)

    # ------------------------------------------------------------------ /yjs messages
    async def _yjs_sync_step1(self, connection: Connection, message: yjs.SyncStep1) -> None:
        """Answer with SyncStep2: exactly what the peer's state vector says it lacks."""
        document = await self.documents.get(connection.resource_id)
        missing = document.missing_from(message.state_vector)
        if connection.send(yjs.sync_step2(missing)):
            self.metrics.messages_sent.inc()

    async def _yjs_update(
        self, connection: Connection, message: yjs.SyncStep2 | yjs.SyncUpdate
    ) -> None:
        """SyncStep2 and Update are both updates: the same core path as Y_UPDATE.

        The empty update every peer answers our SyncStep1 with when it has nothing new is
        dropped here, so it costs no revision, write or audit record, and a viewer's
        y-websocket is not told "permission denied" for merely connecting.

        As on /ws, the next message is read while the update is stored. A failed store
        closes the socket like any other failure here, and the client's reconnection sync
        sends the update again.
        """
        if message.update == yjs.EMPTY_UPDATE:
            return
        stored = await self._apply_in_turn(connection, connection.resource_id, message.update)
        stored.add_done_callback(partial(self._stored_from_yjs, connection))

    def _stored_from_yjs(self, connection: Connection, stored: asyncio.Future[int]) -> None:
        if stored.cancelled():
            return
        exc = stored.exception()
        if isinstance(exc, Exception):
            self._fail(connection, exc, None, "Y_UPDATE")

    async def _yjs_awareness(self, connection: Connection, message: yjs.AwarenessMessage) -> None:
        """Relay the entries that are news to the room, to every peer including the sender.

        Echoing to the sender is what y-websocket's own server does and what its client relies
        on: it reconnects after 30 s without a message, and its awareness renewal every 15 s
        comes back as one. /ws peers get the sender's own client as AWARENESS.
        """
        resource_id = connection.resource_id
        entries = yjs.decode_awareness(message.payload, self.settings.max_awareness_bytes)
        if connection.awareness_id is None and entries:
            connection.awareness_id = entries[0].client_id
        table = self._awareness_room(resource_id)
        fresh = table.apply(entries, connection.id, connection.awareness_id)
        if not fresh:
            return
        own = next((e for e in fresh if e.client_id == connection.awareness_id), None)
        json_text = (
            outbound.encode(
                _awareness_frame(resource_id, connection.user_id, orjson.Fragment(own.state))
            )
            if own is not None
            else None
        )
        payload = message.payload if len(fresh) == len(entries) else yjs.encode_awareness(fresh)
        outgoing = Outgoing(json_text, yjs.awareness_message(payload))
        await self._broadcast_outgoing(resource_id, outgoing, exclude=None)

    async def _yjs_query_awareness(self, connection: Connection, _: yjs.QueryAwareness) -> None:
        states = self._awareness_room(connection.resource_id).live_entries()
        if connection.send(yjs.awareness_message(yjs.encode_awareness(states))):
            self.metrics.messages_sent.inc()

    async def _yjs_ignore(self, connection: Connection, _: yjs.AuthMessage) -> None:
        """Auth messages go from server to client; one from a client means nothing."""

    # ------------------------------------------------------------------ fan-out
    async def _broadcast(
        self, resource_id: str, frame: outbound.Frame, exclude: str | None
    ) -> None:
        """A JSON-only event (presence, locks): /yjs peers have no message for it."""
        await self._broadcast_outgoing(resource_id, Outgoing(outbound.encode(frame)), exclude)

    async def _broadcast_outgoing(
        self,
        resource_id: str,
        outgoing: Outgoing,
        exclude: str | None,
        update: bytes | None = None,
    ) -> None:
        """Send one event to the room here, and to the room on every other instance.

        Each codec's frame is encoded once and the same object goes to every recipient of that
        codec. An update reaches /yjs peers through :meth:`_queue_yjs_update` (here and, from
        ``update``, on every other instance); other /yjs forms (awareness) travel as
        ``yjs_frame``.
        """
        self._deliver_local(resource_id, outgoing, exclude)
        if update is not None:
            self._queue_yjs_update(resource_id, update, exclude)
        if not self.bus.reaches_other_instances:
            return
        event = RoomEvent(
            resource_id,
            self.instance_id,
            outgoing.json or "",
            update,
            exclude,
            yjs_frame=outgoing.yjs if update is None else None,
        )
        try:
            await self.bus.publish(event)
        except self._unavailable as exc:
            # This instance's clients have it; an edit is published again once the bus is back.
            log.warning("bus_publish_failed", resource_id=resource_id, error=str(exc))
            if not isinstance(exc, PublishUnconfirmed):
                self._republisher.failed(event)

    async def _publish(self, event: RoomEvent) -> None:
        await self.bus.publish(event)

    def _json_peers_in(self, resource_id: str) -> bool:
        room = self._rooms.get(resource_id)
        return room is not None and len(room) > self._yjs_peers.get(resource_id, 0)

    def _deliver_local(self, resource_id: str, outgoing: Outgoing, exclude: str | None) -> None:
        room = self._rooms.get(resource_id)
        if not room or (outgoing.json is None and outgoing.yjs is None):
            return
        sent = 0
        for connection in room.values():
            if connection.id == exclude:
                continue
            frame = outgoing.json if connection.codec == "json" else outgoing.yjs
            if frame is not None and connection.send(frame):
                sent += 1
        self.metrics.messages_sent.inc(sent)

    async def _on_bus_event(self, event: RoomEvent) -> None:
        update = event.update
        if update is not None:
            document = self.documents.loaded_document(event.resource_id)
            if document is not None:
                document.apply_remote(update)
                if document.lacks_part_of(update):
                    self._repair_gap(event.resource_id, update)
        if event.yjs_frame is not None and event.resource_id in self._rooms:
            self._note_remote_awareness(event.resource_id, event.yjs_frame)
        outgoing = Outgoing(event.frame or None, event.yjs_frame)
        self._deliver_local(event.resource_id, outgoing, event.exclude_connection)
        if update is not None:
            self._queue_yjs_update(event.resource_id, update, event.exclude_connection)

    def _repair_gap(self, resource_id: str, update: bytes) -> None:
        """Recover from the shared store the edits ``update`` builds on, which never arrived.

        A room event lost between instances (a broker restart drops the messages it held, a
        full queue drops its oldest) leaves this copy, and this instance's clients, without an
        edit; Y.js then holds every later edit of that user as pending. The lost edit is in the
        store (edits are stored before anyone depends on the bus), so the copy is refreshed from
        it and what was missing is sent to the room here, as one update. Each read waits
        ``bus_gap_repair_retry_seconds`` first: an event that is only late (a busy broker, an
        edit published again after an outage) usually fills the gap meanwhile, and then nothing
        is read. An edit stored a moment after the event that built on it arrived is read again,
        ``bus_gap_repair_attempts`` times at most.
        """
        if self.settings.bus_gap_repair_attempts == 0:
            return
        self._gaps.setdefault(resource_id, deque(maxlen=GAPS_CHECKED_PER_ROOM)).append(update)
        if resource_id not in self._repairing:
            task = running_loop().create_task(self._read_gaps_from_store(resource_id))
            self._repairing[resource_id] = task

    def _open_gaps(self, resource_id: str) -> deque[bytes]:
        """The room's events still building on something missing (the others are forgotten)."""
        document = self.documents.loaded_document(resource_id)
        waiting = self._gaps.get(resource_id, deque())
        still = deque(
            (u for u in waiting if document is not None and document.lacks_part_of(u)),
            maxlen=GAPS_CHECKED_PER_ROOM,
        )
        self._gaps[resource_id] = still
        return still

    async def _read_gaps_from_store(self, resource_id: str) -> None:
        try:
            for _ in range(self.settings.bus_gap_repair_attempts):
                await asyncio.sleep(self.settings.bus_gap_repair_retry_seconds)
                if not self._open_gaps(resource_id):
                    return
                await self._read_room_from_store(resource_id)
            if self._open_gaps(resource_id):
                log.warning("bus_gap_unrepaired", resource_id=resource_id)
        finally:  # at once: a gap shown from now on starts a read of its own
            self._gaps.pop(resource_id, None)
            self._repairing.pop(resource_id, None)

    async def _read_room_from_store(self, resource_id: str) -> None:
        document = self.documents.loaded_document(resource_id)
        if document is not None:
            try:
                await self._refresh_from_store(document)
            except self._unavailable as exc:
                log.warning("bus_gap_repair_failed", resource_id=resource_id, error=str(exc))

    async def _refresh_from_store(
        self, document: ServerDocument, exclude: str | None = None
    ) -> None:
        """Merge what other instances stored into the room's copy, and send the room here what
        that added: edits whose room events never reached this instance.

        Whoever asked (a join, a SYNC, a gap) is not the only one lacking them: the room's
        clients got exactly what reached this copy, so without being told they would hold
        every later edit of those users as pending (Y.js waits for what an edit builds on).
        """
        recovered = await self.documents.refresh(document)
        if not inserts_anything(recovered):
            return
        resource_id = document.resource_id
        self.metrics.bus_gaps_repaired.inc()
        log.info("bus_gap_repaired", resource_id=resource_id, bytes=len(recovered))
        frame = outbound.encode(outbound.y_update(resource_id, recovered, document.revision, None))
        self._deliver_local(resource_id, Outgoing(frame), exclude)
        self._queue_yjs_update(resource_id, recovered, exclude)

    async def wait_gaps_repaired(self) -> None:
        """Wait until every gap being read from the store is repaired or given up (tests)."""
        while self._repairing:
            await asyncio.gather(*self._repairing.values(), return_exceptions=True)

    def _queue_yjs_update(self, resource_id: str, update: bytes, sender: str | None) -> None:
        """Send an update to the room's /yjs peers at the end of this event-loop turn.

        Every update applied in one turn of the loop goes out in one Update message per room:
        merged once (yrs ``merge_updates``, a few microseconds) and the same bytes sent to every
        /yjs peer. Idle, a turn holds one update and nothing changes; under load turns grow and
        so do the batches, so the sends per update fall exactly when the loop is busiest (the
        N-by-N sends that stalled Hocuspocus at 400 users). A merged update also goes back to its
        senders: Y.js ignores what it already has.
        """
        if resource_id not in self._yjs_peers:
            return
        pending = self._yjs_pending.get(resource_id)
        if pending is None:
            self._yjs_pending[resource_id] = [(update, sender)]
            running_loop().call_soon(self._flush_yjs_room, resource_id)
        else:
            pending.append((update, sender))

    def flush_yjs_updates(self) -> None:
        """Send every queued /yjs update now (the loop does it by itself each turn)."""
        for resource_id in list(self._yjs_pending):
            self._flush_yjs_room(resource_id)

    def _flush_yjs_room(self, resource_id: str) -> None:
        pending = self._yjs_pending.pop(resource_id, None)
        room = self._rooms.get(resource_id)
        if not pending or not room:
            return
        batches = pending
        if len(pending) > 1:
            try:
                batches = [(merge_updates(*(update for update, _ in pending)), None)]
            except ValueError:  # each was applied, so this is not expected: send them one by one
                log.warning("yjs_merge_failed", resource_id=resource_id, updates=len(pending))
        sent = 0
        for update, exclude in batches:
            frame = yjs.sync_update(update)
            for connection in room.values():
                # This runs at the end of the loop turn: the frame can go out at once.
                if (
                    connection.codec == "yjs"
                    and connection.id != exclude
                    and connection.outbox.push_now(frame)
                ):
                    sent += 1
        self.metrics.messages_sent.inc(sent)

    def _note_remote_awareness(self, resource_id: str, frame: bytes) -> None:
        """Keep another instance's awareness entries, to answer query-awareness here too."""
        try:
            message = yjs.decode_message(frame)
            if isinstance(message, yjs.AwarenessMessage):
                entries = yjs.decode_awareness(message.payload, len(frame))
                self._awareness_room(resource_id).apply(entries, None, None)
        except InvalidPayload as exc:
            log.warning("bus_awareness_malformed", resource_id=resource_id, error=exc.message)

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

    async def _probe_quiet_yjs_peers(self) -> None:
        """Ask quiet /yjs peers for their awareness: the answer proves them alive.

        y-websocket clients send no heartbeat. Most renew their awareness every 15 s, which
        counts as activity; one without an awareness state sends nothing at all, so before the
        heartbeat timeout would close it, it gets a query-awareness, which it always answers
        (and which also counts, for its own 30 s silence check, as a message received).
        """
        quiet_since = time.monotonic() - self.yjs_probe_after_seconds
        probe = yjs.query_awareness()
        for connection in list(self.connections.values()):
            if connection.codec == "yjs" and connection.last_seen < quiet_since:
                connection.send(probe)

    async def _renew_json_awareness_for_yjs(self) -> None:
        """Renew /ws peers' awareness for /yjs peers, which drop a state not renewed in 30 s.

        A y-protocols client renews its own state every 15 s; a /ws client sends AWARENESS only
        when something changes, so the gateway renews on its behalf (one message per room).
        """
        for resource_id, table in list(self._awareness.items()):
            renewed = []
            for connection_id, entry in table.owned_entries():
                connection = self.connections.get(connection_id)
                if connection is None or connection.codec != "json":
                    continue
                connection.awareness_clock += 1
                renewed.append(
                    yjs.AwarenessEntry(entry.client_id, connection.awareness_clock, entry.state)
                )
                table.apply(renewed[-1:], connection_id, entry.client_id)
            if renewed:
                frame = yjs.awareness_message(yjs.encode_awareness(renewed))
                await self._broadcast_outgoing(resource_id, Outgoing(None, frame), exclude=None)

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

    def update_room_gauges(self) -> None:
        """Rooms in use, and users per resource type (a bounded label: at most
        ``MAX_RESOURCE_TYPE_LABELS`` types get their own series, the rest count as ``other``).

        Called when metrics are scraped: it walks every room, which per join would make
        connecting N users cost N² steps."""
        self.metrics.resources_active.set(len(self._rooms))
        users: dict[str, set[str]] = {}
        for resource_id, room in self._rooms.items():
            label = self._resource_type_label(resource_type_of(resource_id))
            users.setdefault(label, set()).update(c.user_id for c in room.values())
        for label in self._resource_type_labels:
            self.metrics.room_users.labels(label).set(len(users.get(label, ())))

    def _resource_type_label(self, resource_type: str) -> str:
        labels = self._resource_type_labels
        if resource_type in labels:
            return resource_type
        allowed = self.settings.resource_types
        if (not allowed or resource_type in allowed) and len(labels) < MAX_RESOURCE_TYPE_LABELS:
            labels.add(resource_type)
            return resource_type
        labels.add("other")
        return "other"

    async def _every(self, seconds: float, job: Callable[[], Awaitable[None]]) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await job()
            except self._unavailable as exc:  # a dependency is down: known, metered, retried
                log.warning(
                    "periodic_job_skipped", job=getattr(job, "__name__", "job"), reason=str(exc)
                )
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
        self.audit.record(self._event(event_type, connection, resource_id, details))

    def _update_record(
        self, connection: Connection, resource_id: str, size: int, revision: int
    ) -> AuditEvent:
        """The ``DOCUMENT_UPDATED`` record stored in the same transaction as the update."""
        details = {"revision": revision, "bytes": size}
        return self._event(AuditEventType.DOCUMENT_UPDATED, connection, resource_id, details)

    def _event(
        self,
        event_type: AuditEventType,
        connection: Connection,
        resource_id: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> AuditEvent:
        return AuditEvent(
            event_type,
            self._now(),
            self.instance_id,
            user_id=connection.user_id,
            resource_id=resource_id,
            connection_id=connection.id,
            details=details or {},
        )


def _awareness_frame(resource_id: str, user_id: str, state: Any) -> outbound.Frame:
    """AWARENESS with any JSON state: a /yjs client's as it sent it, or null once it is gone."""
    frame = outbound.awareness(resource_id, user_id, {})
    frame["state"] = state
    return frame


def _ref(request: Request | None) -> str | None:
    return request.ref if request is not None else None


_YJS_TYPE_NAMES: dict[type, str] = {
    yjs.SyncStep1: "SYNC",
    yjs.SyncStep2: "Y_UPDATE",
    yjs.SyncUpdate: "Y_UPDATE",
    yjs.AwarenessMessage: "AWARENESS",
    yjs.QueryAwareness: "AWARENESS",
    yjs.AuthMessage: "INVALID",
}

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
