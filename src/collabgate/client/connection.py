"""The asyncio client for the gateway's ``/ws`` JSON protocol."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import logging
import random
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson
from pycrdt import Doc, Text
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from collabgate.client.document import JoinedResource, PendingUpdate
from collabgate.client.errors import (
    AUTH_ERROR_CODES,
    CLOSE_AUTH_FAILED,
    AuthenticationFailed,
    CollabClientError,
    ConnectionFailed,
    ConnectionLost,
    ConnectionRejected,
    NotConnected,
    NotJoined,
    ProtocolError,
)
from collabgate.client.models import (
    EMPTY_UPDATE,
    Frame,
    LockDenial,
    LockGrant,
    Mode,
    ResourceState,
    b64decode,
    b64encode,
    backoff_delay,
)

log = logging.getLogger(__name__)

#: A token, or a function returning one (called before every connection attempt, so a
#: refreshed token is used on reconnect). The function may be a coroutine function.
TokenSource = str | Callable[[], str | Awaitable[str]]
#: ``on_event(frame)``: called for every event (see :class:`CollabClient`).
EventCallback = Callable[[Frame], None]
#: ``on_update(resource_id, update, frame)``: called for every ``Y_UPDATE`` broadcast.
UpdateCallback = Callable[[str, bytes, Frame], None]
#: A test on one event, for :meth:`CollabClient.wait_for`.
Predicate = Callable[[Frame], bool]

#: Close code of a draining gateway ("service restart").
CLOSE_SERVICE_RESTART = 1012

_STATE_REPLIES = frozenset({"RESOURCE_STATE", "SYNC_REPLY", "Y_UPDATE_ACK"})


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a future's exception as retrieved (nobody may be waiting for it)."""
    if not future.cancelled():
        future.exception()


class _Link:
    """One WebSocket connection: its socket, generation number and outstanding requests."""

    __slots__ = ("done", "generation", "reader", "waiters", "ws")

    def __init__(
        self, ws: ClientConnection, generation: int, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.ws = ws
        self.generation = generation
        #: ref → future of the direct reply.
        self.waiters: dict[str, asyncio.Future[Frame]] = {}
        #: Resolves to (close code, reason) when the connection is gone.
        self.done: asyncio.Future[tuple[int, str]] = loop.create_future()
        self.reader: asyncio.Task[None] | None = None

    @property
    def alive(self) -> bool:
        return not self.done.done()

    def fail(self, code: int, reason: str) -> None:
        waiters, self.waiters = self.waiters, {}
        for future in waiters.values():
            if not future.done():
                future.set_exception(ConnectionLost(code, reason))
        if not self.done.done():
            self.done.set_result((code, reason))


class CollabClient:
    """A connection to a collabgate ``/ws`` endpoint that survives disconnects.

    ::

        async with CollabClient("ws://127.0.0.1:8080/ws", token) as client:
            await client.join("patient:42")

            def note(doc: pycrdt.Doc) -> None:
                doc.get("content", type=pycrdt.Text).insert(0, "BP 120/80 ")

            revision = await client.edit("patient:42", note)
            event = await client.wait_for(lambda e: e["type"] == "USER_JOINED")

    **Connecting.** :meth:`connect` makes one attempt: it opens the WebSocket with the token in
    an ``Authorization: Bearer`` header (and in the ``token`` query parameter as well when
    ``token_in_query`` is true) and waits up to ``open_timeout`` seconds for the ``CONNECTED``
    frame. It raises :class:`~collabgate.client.errors.AuthenticationFailed` when the token is
    refused, :class:`~collabgate.client.errors.ConnectionRejected` when the server refuses the
    connection otherwise (``WS_1001`` …), :class:`~collabgate.client.errors.ConnectionFailed` on
    network errors and timeouts. The initial connection is never retried.

    **Requests.** Every request gets a fresh ``ref``; the reply carrying it resolves that request
    and nothing else. A reply ``ERROR`` raises :class:`~collabgate.client.errors.ProtocolError`.
    Requests need a live connection: made while the client is reconnecting or closed they
    raise :class:`~collabgate.client.errors.NotConnected`; pending when the connection drops they
    raise :class:`~collabgate.client.errors.ConnectionLost` (the server may or may not have
    processed them). :meth:`edit` and :meth:`update` are the exception, see below.

    **Events.** Every frame that is not the reply to an outstanding request is an *event*:
    ``USER_JOINED``, ``USER_LEFT``, ``Y_UPDATE``, ``LOCK_STATUS_CHANGED``, ``AWARENESS``,
    ``RESOURCE_UPDATED``, ``SERVER_SHUTDOWN``, ``ERROR`` without a ref, and late replies whose
    request gave up waiting. The client adds events of its own, never sent by the server, whose
    types start with ``CLIENT_``:

    * ``CLIENT_DISCONNECTED {code, reason}``: the connection dropped and the client is about to
      reconnect;
    * ``CLIENT_RECONNECT_FAILED {attempt, error}``: one reconnect attempt failed;
    * ``CLIENT_RECONNECTED {connectionId, reconnects}``: reconnected, every resource re-joined,
      synced and its backlog acknowledged;
    * ``CLIENT_REJOIN_FAILED {resourceId, code, errorType, message}``: after a reconnect the
      server refused to re-join a resource; it is forgotten locally;
    * ``CLIENT_CLOSED {code, reason, error}``: the client is closed for good; always the last.

    Each event is, in this order: applied to the local document (``Y_UPDATE``), passed to
    ``on_update`` (``Y_UPDATE`` only), put on :attr:`events` (an :class:`asyncio.Queue` holding at
    most ``max_queued_events``; when full the oldest event is dropped and
    :attr:`events_dropped` counts it; ``0`` disables the queue), kept in a history of the last
    ``history_size`` events for :meth:`wait_for`, and passed to ``on_event``. Callbacks run in
    the reading task: they must not block; exceptions they raise are logged and ignored.

    **Documents.** Each joined resource has a local :class:`pycrdt.Doc` (:meth:`document`). The
    ``RESOURCE_STATE`` of a join, every ``SYNC_REPLY`` and every ``Y_UPDATE`` broadcast are
    applied to it as they are read, in wire order. :meth:`edit` changes it and sends the change;
    updates not yet acknowledged are kept per resource (:meth:`unacknowledged`).

    **Reconnecting.** When the connection closes and the client did not ask for it, the client
    reconnects (unless ``reconnect=False``, the close code is 4401, or a reconnect attempt is
    refused for the token): it waits ``backoff_delay(attempt)`` (exponential from
    ``backoff_initial`` to ``backoff_max`` with ``jitter``, see
    :func:`~collabgate.client.models.backoff_delay`) — or, after ``SERVER_SHUTDOWN``,
    ``reconnectAfterMs`` plus up to ``jitter`` of it at random — opens a new connection,
    re-joins every joined resource with its mode, applies the ``RESOURCE_STATE``, sends
    ``SYNC`` with the local state vector and applies the ``SYNC_REPLY``, resends every
    unacknowledged update and waits for their acknowledgements. Only then is :attr:`connected`
    set again, :attr:`reconnects` incremented and ``CLIENT_RECONNECTED`` emitted. Any failure
    in this sequence (including a ``WS_5xxx`` reply) closes that connection and counts as a
    failed attempt; the backoff restarts from ``backoff_initial`` only after a successful one.
    ``max_reconnect_attempts`` consecutive failures (default: unlimited) close the client.

    **Heartbeats.** A background task sends ``HEARTBEAT`` whenever nothing has been sent for
    ``heartbeat_interval`` seconds (or the ``heartbeatIntervalMs`` the server announced in
    ``CONNECTED``, if shorter); any frame keeps the session alive. ``None`` disables it.
    WebSocket pings (``ping_interval``) detect dead connections independently.

    **Other arguments.** ``additional_headers`` are sent with the upgrade request;
    ``max_size`` bounds an incoming frame (a ``RESOURCE_STATE`` holds a whole document, hence
    16 MiB); ``compression=True`` negotiates permessage-deflate; ``ping_interval`` is the
    WebSocket ping period (``None``: no pings); ``close_timeout`` bounds the closing handshake;
    ``open_timeout`` bounds each connection attempt up to ``CONNECTED`` and, when
    reconnecting, each re-join and the wait for the resent updates' ACKs.

    **Cost.** One reading task per connection, plus one supervising task and one heartbeat task
    per client. Frames are decoded with orjson straight from bytes; a ``Y_UPDATE`` is base64
    decoded once (and only if a document or ``on_update`` needs it); nothing is logged per
    message. A benchmark running many clients that only needs ``on_update`` should pass
    ``max_queued_events=0, history_size=0`` so that no event is retained.
    """

    def __init__(
        self,
        url: str,
        token: TokenSource,
        *,
        reconnect: bool = True,
        backoff_initial: float = 0.1,
        backoff_max: float = 5.0,
        jitter: float = 0.5,
        max_reconnect_attempts: int | None = None,
        heartbeat_interval: float | None = 30.0,
        open_timeout: float = 10.0,
        token_in_query: bool = False,
        additional_headers: Mapping[str, str] | None = None,
        on_event: EventCallback | None = None,
        on_update: UpdateCallback | None = None,
        max_queued_events: int = 1000,
        history_size: int = 1000,
        max_size: int | None = 2**24,
        compression: bool = False,
        ping_interval: float | None = 20.0,
        close_timeout: float = 2.0,
    ) -> None:
        if backoff_initial <= 0 or backoff_max < backoff_initial:
            raise ValueError("need 0 < backoff_initial <= backoff_max")
        if not 0.0 <= jitter <= 1.0:
            raise ValueError("jitter must be between 0 and 1")
        self.url = url
        self._token = token
        self._reconnect = reconnect
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._jitter = jitter
        self._max_reconnect_attempts = max_reconnect_attempts
        self._heartbeat_interval = heartbeat_interval
        self._open_timeout = open_timeout
        self._token_in_query = token_in_query
        self._extra_headers = dict(additional_headers or {})
        self._max_size = max_size
        self._compression = compression
        self._ping_interval = ping_interval
        self._close_timeout = close_timeout
        #: Called with every event; may be set at any time.
        self.on_event = on_event
        #: Called with ``(resource_id, update, frame)`` for every ``Y_UPDATE`` broadcast, after
        #: the update was applied to the local document; may be set at any time.
        self.on_update = on_update

        #: Set while a connection is open and (after a reconnect) fully resynchronised.
        self.connected = asyncio.Event()
        #: Set once the client is closed for good (by :meth:`close` or a final disconnect).
        self.closed = asyncio.Event()
        #: Successful reconnects so far.
        self.reconnects = 0
        #: Events dropped because :attr:`events` was full.
        self.events_dropped = 0
        #: Events not yet taken; see the class documentation.
        self.events: asyncio.Queue[Frame] = asyncio.Queue()
        self._max_queued = max_queued_events
        self._history: deque[Frame] = deque(maxlen=history_size)
        self._seq = 0
        self._event_waiters: list[tuple[Predicate, asyncio.Future[Frame]]] = []

        #: The last ``CONNECTED`` frame.
        self.connected_frame: Frame | None = None
        #: Close code and reason of the last connection that ended (``None`` before).
        self.close_code: int | None = None
        self.close_reason: str | None = None
        #: The error that closed the client, when it did not close by :meth:`close`.
        self.failure: CollabClientError | None = None

        self._resources: dict[str, JoinedResource] = {}
        self._refs = itertools.count(1)
        self._link: _Link | None = None
        self._generation = 0
        self._started = False
        self._closing = False
        self._shutdown_delay: float | None = None
        self._last_sent = 0.0
        self._supervisor: asyncio.Task[None] | None = None
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()

    def __repr__(self) -> str:
        state = (
            "closed"
            if self.closed.is_set()
            else "connected"
            if self.connected.is_set()
            else "disconnected"
        )
        return f"<CollabClient {self.url} {state} user={self.user_id!r}>"

    # ------------------------------------------------------------------ properties
    @property
    def connection_id(self) -> str | None:
        """``connectionId`` of the current (or last) connection."""
        return self.connected_frame.get("connectionId") if self.connected_frame else None

    @property
    def user(self) -> dict[str, Any] | None:
        """``user`` of the last ``CONNECTED`` frame: ``{userId, role, name}``."""
        return self.connected_frame.get("user") if self.connected_frame else None

    @property
    def user_id(self) -> str | None:
        user = self.user
        return user.get("userId") if user else None

    @property
    def joined(self) -> dict[str, str]:
        """The joined resources, as ``{resource id: mode}`` (a copy)."""
        return {rid: res.mode for rid, res in self._resources.items() if res.joined}

    @property
    def event_count(self) -> int:
        """How many events there have been so far; pass it as ``after`` to :meth:`wait_for`."""
        return self._seq

    def revision(self, resource_id: str) -> int:
        """The latest revision of the resource this client has seen."""
        return self._joined_resource(resource_id).revision

    def unacknowledged(self, resource_id: str) -> list[bytes]:
        """Updates of the resource sent (or waiting to be sent) and not acknowledged, oldest
        first."""
        return [pending.update for pending in self._joined_resource(resource_id).unacked]

    def document(self, resource_id: str) -> Doc[Any]:
        """The local document of a joined resource.

        Read it freely; change it only through :meth:`edit` or :meth:`update`: a change made to
        it directly stays local and is never sent. Raises :class:`NotJoined`.
        """
        return self._joined_resource(resource_id).doc

    def text(self, resource_id: str, name: str = "content") -> Text:
        """The root :class:`pycrdt.Text` called ``name`` of the resource's local document."""
        text: Text = self.document(resource_id).get(name, type=Text)
        return text

    # ------------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def connect(self) -> None:
        """Open the connection and wait for ``CONNECTED`` (one attempt, no retry).

        Starts the supervising task (which reconnects) and the heartbeat task. May be called
        again after it raised; a client that connected once cannot connect again after
        :meth:`close`.
        """
        if self._started or self.closed.is_set():
            raise RuntimeError("connect() was already called on this client, or it is closed")
        loop = asyncio.get_running_loop()
        self._started = True
        self._last_sent = loop.time()
        try:
            link = await self._open_link()
        except BaseException:
            self._started = False
            raise
        self.connected.set()
        self._supervisor = loop.create_task(
            self._supervise(link), name=f"collabgate-client-supervisor-{id(self):x}"
        )
        if self._heartbeat_interval is not None and self._heartbeat_interval > 0:
            self._heartbeat_task = loop.create_task(
                self._heartbeat_loop(), name=f"collabgate-client-heartbeat-{id(self):x}"
            )

    async def close(self) -> None:
        """Close the connection (code 1000) and stop for good.

        Pending requests fail with :class:`ConnectionLost`, as do :meth:`edit` / :meth:`update`
        calls still waiting for an acknowledgement; ``CLIENT_CLOSED`` is the last event. The
        local documents stay readable. Idempotent.
        """
        if self.closed.is_set():
            return
        self._closing = True
        self.connected.clear()
        current = asyncio.current_task()
        tasks = [
            task
            for task in (self._heartbeat_task, self._supervisor, *self._background)
            if task is not None and task is not current and not task.done()
        ]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        link = self._link
        if link is not None:
            with contextlib.suppress(Exception):
                await link.ws.close()
            if link.reader is not None and link.reader is not current:
                await asyncio.gather(link.reader, return_exceptions=True)
        self._finalize(1000, "closed by the client", None)

    # ------------------------------------------------------------------ requests
    async def request(self, frame: Frame) -> Frame:
        """Send one request and return its direct reply.

        ``frame`` is a request without ``ref`` (``{"type": "HEARTBEAT"}``); a copy with a fresh
        ref is sent. Raises :class:`ProtocolError` if the reply is ``ERROR``,
        or :class:`NotConnected` / :class:`ConnectionLost` (see the class documentation). To
        bound the wait, wrap the call in :func:`asyncio.timeout`; a reply arriving after the
        caller gave up becomes an event. Requests about resources made this way do not change
        the client's resource tracking (use :meth:`join`, :meth:`leave` …).
        """
        return await self._request_on(self._live_link(), frame)

    async def send(self, frame: Frame) -> None:
        """Send one frame as it is, without a ref and without waiting for anything; any reply
        arrives as an event."""
        await self._send_on(self._live_link(), frame)

    async def heartbeat(self) -> int:
        """Send ``HEARTBEAT``; return the ``serverTime`` (epoch ms) of the ``HEARTBEAT_ACK``."""
        reply = await self.request({"type": "HEARTBEAT"})
        return int(reply.get("serverTime", 0))

    async def join(
        self,
        resource_id: str,
        mode: Mode = "editor",
        resource_type: str | None = None,
    ) -> ResourceState:
        """Join a resource; return its ``RESOURCE_STATE``.

        The local document is created before the request is sent, so broadcasts that overtake
        the reply are not lost, and the state is merged into it when the reply is read. Every
        join of a resource not currently joined starts from a fresh document. On ``ERROR`` the
        resource is forgotten again and :class:`ProtocolError` is raised (``WS_4006`` if it is
        already joined on this connection, ``WS_2004`` for an editor join with a read-only role …).
        """
        link = self._live_link()
        res = self._resources.get(resource_id)
        created = res is None
        if res is None:
            res = JoinedResource(resource_id, mode, resource_type)
            self._resources[resource_id] = res
        try:
            reply = await self._request_on(link, self._join_frame(res, mode))
        except BaseException:
            if created and not res.joined and self._resources.get(resource_id) is res:
                del self._resources[resource_id]
            raise
        res.joined = True
        res.mode = str(reply.get("mode", mode))
        if resource_type is not None:
            res.resource_type = resource_type
        if res.live_on < link.generation and not res.unacked:
            res.live_on = link.generation
        return ResourceState.from_frame(reply)

    async def leave(self, resource_id: str) -> None:
        """Leave a resource (``LEAVE_RESOURCE``) and forget its local document.

        Updates of it still unacknowledged (only possible if their ACKs are still in flight)
        fail with :class:`NotJoined`.
        """
        await self.request({"type": "LEAVE_RESOURCE", "resourceId": resource_id})
        res = self._resources.pop(resource_id, None)
        if res is not None:
            self._fail_unacked(res, NotJoined(f"left {resource_id} before acknowledgement"))

    async def sync(self, resource_id: str) -> bytes:
        """Send ``SYNC`` with the local state vector; return the update the server sent back
        (what this client lacked), which has been applied to the local document."""
        res = self._joined_resource(resource_id)
        reply = await self.request(
            {
                "type": "SYNC",
                "resourceId": resource_id,
                "stateVector": b64encode(res.doc.get_state()),
            },
        )
        return b64decode(reply.get("update", ""))

    async def update(self, resource_id: str, update: bytes) -> int:
        """Apply a Y.js v1 update to the local document, send it, return the ACK revision.

        Same delivery guarantee as :meth:`edit`. Raises :class:`ValueError` if the bytes are not
        a Y.js update (nothing is sent).
        """
        res = self._writable_resource(resource_id)
        if not res.apply(update):
            raise ValueError("not a valid Y.js v1 update")
        return await self._submit(res, update)

    async def edit(self, resource_id: str, fn: Callable[[Doc[Any]], object]) -> int:
        """Run ``fn(doc)`` in one transaction on the local document and send the change.

        The change is captured as ``doc.get_update(state_vector_before)`` and sent as
        ``Y_UPDATE``; the call returns the ``revision`` of its ``Y_UPDATE_ACK``, i.e. once the
        server has made the update durable. If ``fn`` changed nothing, nothing is sent and the
        latest known revision is returned.

        What the caller sees:

        * the change is in the local document as soon as ``fn`` returns;
        * if the connection drops before the ACK, the call keeps waiting: the update stays in
          :meth:`unacknowledged`, is resent after the reconnect (applying a Y.js update twice
          is harmless) and the call returns the revision of the ACK to the resend — a new
          revision, since the server counts the update again. The same happens when ``edit``
          is called while the client is reconnecting. The call may return just before the
          reconnect completes (before ``CLIENT_RECONNECTED``);
        * if the server refuses the update (``ERROR``, e.g. ``WS_2004`` as a viewer or
          ``WS_4003`` while another user holds the whole-resource lock) the call raises that
          :class:`ProtocolError` and the update is not resent. The change stays in the local
          document only; :meth:`leave` and :meth:`join` again to start from the server's copy;
        * if the client closes for good first (:meth:`close`, close code 4401, reconnecting
          disabled or given up) the call raises :class:`ConnectionLost`;
        * if the calling task is cancelled, the update is still delivered in the background;
        * if ``fn`` raises, whatever it changed before raising is still sent (in the
          background) and the exception propagates.
        """
        res = self._writable_resource(resource_id)
        doc = res.doc
        before = doc.get_state()
        try:
            with doc.transaction():
                fn(doc)
        except BaseException:
            update = doc.get_update(before)
            if update != EMPTY_UPDATE:
                self._spawn(self._submit(res, update))
            raise
        update = doc.get_update(before)
        if update == EMPTY_UPDATE:
            return res.revision
        return await self._submit(res, update)

    async def acquire_lock(
        self,
        resource_id: str,
        target: str = "*",
        ttl_ms: int | None = None,
    ) -> LockGrant | LockDenial:
        """``LOCK_ACQUIRE``: a :class:`LockGrant`, or a :class:`LockDenial` when another user
        holds a conflicting lock (a normal reply, not an exception). Check ``result.granted``."""
        frame: Frame = {"type": "LOCK_ACQUIRE", "resourceId": resource_id, "target": target}
        if ttl_ms is not None:
            frame["ttlMs"] = ttl_ms
        reply = await self.request(frame)
        if reply.get("type") == "LOCK_DENIED":
            return LockDenial.from_frame(reply)
        return LockGrant.from_frame(reply)

    async def extend_lock(
        self,
        resource_id: str,
        target: str = "*",
        ttl_ms: int | None = None,
    ) -> int:
        """``LOCK_EXTEND``; return the new ``expiresAt`` (epoch ms). ``WS_4013`` if not held."""
        frame: Frame = {"type": "LOCK_EXTEND", "resourceId": resource_id, "target": target}
        if ttl_ms is not None:
            frame["ttlMs"] = ttl_ms
        reply = await self.request(frame)
        return int(reply.get("expiresAt", 0))

    async def release_lock(self, resource_id: str, target: str = "*") -> None:
        """``LOCK_RELEASE``. Raises :class:`ProtocolError` ``WS_4013`` if the lock is not held."""
        await self.request(
            {"type": "LOCK_RELEASE", "resourceId": resource_id, "target": target},
        )

    async def awareness(self, resource_id: str, state: dict[str, Any]) -> None:
        """Send ``AWARENESS`` (cursor, selection …). There is no reply; an error arrives as an
        ``ERROR`` event."""
        await self.send({"type": "AWARENESS", "resourceId": resource_id, "state": state})

    # ------------------------------------------------------------------ events
    async def wait_for(
        self,
        predicate: Predicate,
        timeout: float | None = 10.0,  # noqa: ASYNC109 - the documented API: wait_for(pred, timeout)
        *,
        after: int = 0,
    ) -> Frame:
        """Return the first event for which ``predicate(event)`` is true.

        Events already received count too — those still in the history (the last
        ``history_size``) and numbered above ``after`` (compare :attr:`event_count`, e.g.
        ``mark = c.event_count`` before acting, then ``wait_for(..., after=mark)``) — so an
        event that arrived before the call is not missed. Otherwise waits for the next match.
        Raises :class:`TimeoutError` after ``timeout`` seconds (``None``: no limit), and
        :class:`ConnectionLost` if the client closes for good before a match. Exceptions of
        ``predicate`` propagate. Does not take the event off :attr:`events`.
        """
        first = self._seq - len(self._history) + 1
        for index, frame in enumerate(self._history, start=first):
            if index > after and predicate(frame):
                return frame
        if self.closed.is_set():
            raise ConnectionLost(self.close_code, "the client is closed")
        future: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        waiter = (predicate, future)
        self._event_waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout):
                return await future
        finally:
            with contextlib.suppress(ValueError):
                self._event_waiters.remove(waiter)

    async def iter_events(self) -> AsyncIterator[Frame]:
        """Take events off :attr:`events` as they come; ends after ``CLIENT_CLOSED``."""
        if self._max_queued == 0:
            raise RuntimeError("events are not queued (max_queued_events=0)")
        while not (self.closed.is_set() and self.events.empty()):
            frame = await self.events.get()
            yield frame
            if frame.get("type") == "CLIENT_CLOSED":
                return

    def _emit(self, frame: Frame) -> None:
        self._seq += 1
        self._history.append(frame)
        if self._max_queued:
            queue = self.events
            if queue.qsize() >= self._max_queued:
                queue.get_nowait()
                self.events_dropped += 1
            queue.put_nowait(frame)
        if self._event_waiters:
            for predicate, future in self._event_waiters:
                if future.done():
                    continue
                try:
                    if predicate(frame):
                        future.set_result(frame)
                except Exception as exc:
                    future.set_exception(exc)
        callback = self.on_event
        if callback is not None:
            try:
                callback(frame)
            except Exception:
                log.exception("on_event callback failed")

    # ------------------------------------------------------------------ internals: sending
    def _live_link(self) -> _Link:
        link = self._link
        if link is None or not link.alive or not self.connected.is_set():
            if self.closed.is_set():
                raise NotConnected(self.close_code, "the client is closed")
            if not self._started:
                raise NotConnected(None, "connect() has not been called")
            raise NotConnected(self.close_code, "not connected (reconnecting)")
        return link

    def _joined_resource(self, resource_id: str) -> JoinedResource:
        res = self._resources.get(resource_id)
        if res is None:
            raise NotJoined(f"{resource_id} is not joined")
        return res

    def _writable_resource(self, resource_id: str) -> JoinedResource:
        if self.closed.is_set():
            raise ConnectionLost(self.close_code, "the client is closed")
        return self._joined_resource(resource_id)

    def _next_ref(self) -> str:
        return str(next(self._refs))

    async def _send_on(self, link: _Link, frame: Frame) -> None:
        try:
            await link.ws.send(orjson.dumps(frame), text=True)
        except ConnectionClosed as exc:
            close = exc.rcvd or exc.sent
            raise ConnectionLost(
                close.code if close else 1006, close.reason if close else ""
            ) from None
        self._last_sent = link.done.get_loop().time()

    async def _request_on(self, link: _Link, frame: Frame) -> Frame:
        if not link.alive:
            code, reason = link.done.result()
            raise NotConnected(code, reason)
        ref = self._next_ref()
        future: asyncio.Future[Frame] = link.done.get_loop().create_future()
        link.waiters[ref] = future
        try:
            await self._send_on(link, {**frame, "ref": ref})
            reply = await future
        finally:
            link.waiters.pop(ref, None)
            if future.done():
                _retrieve(future)
        if reply.get("type") == "ERROR":
            raise ProtocolError.from_frame(reply)
        return reply

    @staticmethod
    def _join_frame(res: JoinedResource, mode: str) -> Frame:
        frame: Frame = {"type": "JOIN_RESOURCE", "resourceId": res.resource_id, "mode": mode}
        if res.resource_type is not None:
            frame["resourceType"] = res.resource_type
        return frame

    async def _submit(self, res: JoinedResource, update: bytes) -> int:
        loop = asyncio.get_running_loop()
        if self.closed.is_set():
            raise ConnectionLost(self.close_code, "the client is closed")
        pending = PendingUpdate(update, loop.create_future())
        pending.future.add_done_callback(_retrieve)
        res.unacked.append(pending)
        link = self._link
        if link is not None and link.alive and res.live_on == link.generation:
            # A failed send leaves the update queued; the reconnect resends it.
            with contextlib.suppress(ConnectionLost):
                await self._send_pending(link, res, pending)
        return await asyncio.shield(pending.future)

    async def _send_pending(self, link: _Link, res: JoinedResource, pending: PendingUpdate) -> None:
        ref = self._next_ref()
        reply: asyncio.Future[Frame] = link.done.get_loop().create_future()
        link.waiters[ref] = reply
        pending.sent_on = link.generation
        reply.add_done_callback(lambda future: self._on_update_reply(res, pending, future))
        try:
            await self._send_on(
                link,
                {
                    "type": "Y_UPDATE",
                    "resourceId": res.resource_id,
                    "update": b64encode(pending.update),
                    "ref": ref,
                },
            )
        except BaseException:
            link.waiters.pop(ref, None)
            reply.cancel()
            raise

    def _on_update_reply(
        self, res: JoinedResource, pending: PendingUpdate, reply: asyncio.Future[Frame]
    ) -> None:
        if reply.cancelled() or reply.exception() is not None or pending.future.done():
            return  # connection lost: the update stays queued and is resent after reconnect
        frame = reply.result()
        with contextlib.suppress(ValueError):
            res.unacked.remove(pending)
        if frame.get("type") == "ERROR":
            pending.future.set_exception(ProtocolError.from_frame(frame))
            return
        revision = frame.get("revision")
        pending.future.set_result(revision if isinstance(revision, int) else res.revision)

    @staticmethod
    def _fail_unacked(res: JoinedResource, error: BaseException) -> None:
        pending_updates, res.unacked = res.unacked, []
        for pending in pending_updates:
            if not pending.future.done():
                pending.future.set_exception(error)

    def _spawn(self, coroutine: Awaitable[Any]) -> None:
        task: asyncio.Task[Any] = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(_retrieve)

    # ------------------------------------------------------------------ internals: reading
    def _on_frame(self, link: _Link, raw: bytes) -> None:
        try:
            frame = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return
        if type(frame) is not dict:
            return
        ref = frame.get("ref")
        if ref is not None:
            future = link.waiters.pop(ref, None)
            if future is not None:
                if frame.get("type") in _STATE_REPLIES:
                    self._on_state_reply(frame)
                if not future.done():
                    future.set_result(frame)
                return
        kind = frame.get("type")
        if kind == "Y_UPDATE":
            self._on_remote_update(frame)
        elif kind == "SERVER_SHUTDOWN":
            delay = frame.get("reconnectAfterMs")
            if isinstance(delay, int | float) and delay >= 0:
                self._shutdown_delay = delay / 1000.0
        self._emit(frame)

    def _on_state_reply(self, frame: Frame) -> None:
        resource_id = frame.get("resourceId")
        res = self._resources.get(resource_id) if isinstance(resource_id, str) else None
        if res is None:
            return
        kind = frame["type"]
        if kind == "RESOURCE_STATE":
            res.apply_state(frame)
            res.joined = True
        elif kind == "SYNC_REPLY":
            revision = res.revision
            res.apply_state(frame)
            res.see_revision(revision)
        else:
            res.see_revision(frame.get("revision"))

    def _on_remote_update(self, frame: Frame) -> None:
        resource_id = frame.get("resourceId")
        data = frame.get("update")
        if not isinstance(resource_id, str) or not isinstance(data, str):
            return
        res = self._resources.get(resource_id)
        callback = self.on_update
        if res is None and callback is None:
            return
        update = b64decode(data)
        if res is not None:
            res.apply(update)
            res.see_revision(frame.get("revision"))
        if callback is not None:
            try:
                callback(resource_id, update, frame)
            except Exception:
                log.exception("on_update callback failed")

    async def _read(self, link: _Link) -> None:
        recv = link.ws.recv
        on_frame = self._on_frame
        code, reason = 1006, ""
        try:
            while True:
                on_frame(link, await recv(decode=False))
        except ConnectionClosed as exc:
            close = exc.rcvd or exc.sent
            if close is not None:
                code, reason = close.code, close.reason
        except Exception:
            log.exception("collabgate client: reading failed; dropping the connection")
            code, reason = 1011, "client error while reading"
            link.ws.transport.abort()
        finally:
            if self._link is link:
                self.connected.clear()
            link.fail(code, reason)

    # ------------------------------------------------------------------ internals: connecting
    async def _resolve_token(self) -> str:
        token = self._token
        if isinstance(token, str):
            return token
        value = token()
        if inspect.isawaitable(value):
            value = await value
        return str(value)

    def _url_with_token(self, token: str) -> str:
        parts = urlsplit(self.url)
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "token"]
        query.append(("token", token))
        return urlunsplit(parts._replace(query=urlencode(query)))

    async def _open_link(self) -> _Link:
        """Open a connection and read its CONNECTED frame; start its reader."""
        loop = asyncio.get_running_loop()
        token = await self._resolve_token()
        url = self._url_with_token(token) if self._token_in_query else self.url
        headers = {**self._extra_headers, "Authorization": f"Bearer {token}"}
        ws: ClientConnection | None = None
        try:
            async with asyncio.timeout(self._open_timeout):
                try:
                    ws = await connect(
                        url,
                        additional_headers=headers,
                        open_timeout=None,
                        ping_interval=self._ping_interval,
                        close_timeout=self._close_timeout,
                        max_size=self._max_size,
                        compression="deflate" if self._compression else None,
                    )
                except InvalidStatus as exc:
                    status = exc.response.status_code
                    error = AuthenticationFailed if status in (401, 403) else ConnectionRejected
                    raise error(f"the server answered HTTP {status}", status=status) from None
                except (OSError, InvalidHandshake) as exc:
                    raise ConnectionFailed(f"cannot connect to {self.url}: {exc}") from exc
                connected = await self._first_frame(ws)
        except TimeoutError:
            if ws is not None:
                ws.transport.abort()
            raise ConnectionFailed(
                f"no CONNECTED from {self.url} within {self._open_timeout:g} s"
            ) from None
        except BaseException:
            if ws is not None:
                ws.transport.abort()
            raise
        self._generation += 1
        link = _Link(ws, self._generation, loop)
        self.connected_frame = connected
        self._link = link
        link.reader = loop.create_task(
            self._read(link), name=f"collabgate-client-reader-{id(self):x}-{link.generation}"
        )
        return link

    async def _first_frame(self, ws: ClientConnection) -> Frame:
        try:
            raw = await ws.recv(decode=False)
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd is not None else 1006
            error = AuthenticationFailed if code == CLOSE_AUTH_FAILED else ConnectionRejected
            raise error(
                f"the server closed the connection before CONNECTED (code {code})",
                close_code=code,
            ) from None
        try:
            frame = orjson.loads(raw)
        except orjson.JSONDecodeError:
            frame = None
        if type(frame) is not dict:
            raise ConnectionFailed("the first frame is not a JSON object")
        kind = frame.get("type")
        if kind == "CONNECTED":
            return frame
        if kind == "ERROR":
            protocol_error = ProtocolError.from_frame(frame)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._close_timeout):
                    await ws.wait_closed()
            close_code = ws.close_code
            auth = close_code == CLOSE_AUTH_FAILED or protocol_error.code in AUTH_ERROR_CODES
            rejected = AuthenticationFailed if auth else ConnectionRejected
            raise rejected(
                f"connection refused: {protocol_error}", error=protocol_error, close_code=close_code
            )
        raise ConnectionFailed(f"expected CONNECTED as the first frame, got {kind!r}")

    # ------------------------------------------------------------------ internals: staying up
    async def _supervise(self, link: _Link) -> None:
        while True:
            code, reason = await asyncio.shield(link.done)
            self.close_code, self.close_reason = code, reason
            if self._closing:
                return
            if not self._reconnect or code == CLOSE_AUTH_FAILED:
                self._finalize(code, reason, None)
                return
            self._emit({"type": "CLIENT_DISCONNECTED", "code": code, "reason": reason})
            new_link = await self._reconnect_loop()
            if new_link is None:
                return
            link = new_link

    async def _reconnect_loop(self) -> _Link | None:
        attempt = 0
        shutdown_delay, self._shutdown_delay = self._shutdown_delay, None
        while True:
            if shutdown_delay is not None:
                delay = shutdown_delay * (1.0 + self._jitter * random.random())
                shutdown_delay = None
            else:
                delay = backoff_delay(
                    attempt,
                    initial=self._backoff_initial,
                    maximum=self._backoff_max,
                    jitter=self._jitter,
                )
            await asyncio.sleep(delay)
            link: _Link | None = None
            try:
                link = await self._open_link()
                await self._resync(link)
            except AuthenticationFailed as exc:
                self._finalize(exc.close_code or CLOSE_AUTH_FAILED, str(exc), exc)
                return None
            except Exception as exc:
                if not isinstance(exc, CollabClientError | TimeoutError):
                    log.exception("collabgate client: unexpected error while reconnecting")
                if link is not None:
                    await self._discard(link)
                attempt += 1
                self._emit(
                    {"type": "CLIENT_RECONNECT_FAILED", "attempt": attempt, "error": repr(exc)}
                )
                limit = self._max_reconnect_attempts
                if limit is not None and attempt >= limit:
                    error = exc if isinstance(exc, CollabClientError) else None
                    self._finalize(self.close_code or 1006, f"gave up reconnecting: {exc}", error)
                    return None
                continue
            self.reconnects += 1
            self.connected.set()
            self._emit(
                {
                    "type": "CLIENT_RECONNECTED",
                    "connectionId": self.connection_id,
                    "reconnects": self.reconnects,
                }
            )
            return link

    async def _discard(self, link: _Link) -> None:
        with contextlib.suppress(Exception):
            await link.ws.close()
        if link.reader is not None:
            await asyncio.gather(link.reader, return_exceptions=True)

    async def _resync(self, link: _Link) -> None:
        """Re-join every joined resource, SYNC it, resend its backlog, await the ACKs."""
        timeout = self._open_timeout
        resent: list[asyncio.Future[int]] = []
        for resource_id, res in list(self._resources.items()):
            if not res.joined or self._resources.get(resource_id) is not res:
                continue
            try:
                async with asyncio.timeout(timeout):
                    await self._request_on(link, self._join_frame(res, res.mode))
                    state_vector = b64encode(res.doc.get_state())
                    await self._request_on(
                        link,
                        {"type": "SYNC", "resourceId": resource_id, "stateVector": state_vector},
                    )
            except ProtocolError as exc:
                if exc.transient:
                    raise
                del self._resources[resource_id]
                self._fail_unacked(res, exc)
                self._emit(
                    {
                        "type": "CLIENT_REJOIN_FAILED",
                        "resourceId": resource_id,
                        "code": exc.code,
                        "errorType": exc.error_type,
                        "message": exc.message,
                    }
                )
                continue
            while True:
                backlog = [p for p in res.unacked if p.sent_on != link.generation]
                if not backlog:
                    break
                for pending in backlog:
                    await self._send_pending(link, res, pending)
                    resent.append(pending.future)
            res.live_on = link.generation
        waiting = [future for future in resent if not future.done()]
        if not waiting:
            return
        async with asyncio.timeout(timeout):
            while waiting:
                watched: list[asyncio.Future[Any]] = [*waiting, link.done]
                await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
                if link.done.done():
                    code, reason = link.done.result()
                    raise ConnectionLost(code, reason)
                waiting = [future for future in waiting if not future.done()]

    async def _heartbeat_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            period = self._heartbeat_period()
            wait = self._last_sent + period - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            if not self.connected.is_set():
                await self.connected.wait()
                continue
            link = self._link
            self._last_sent = loop.time()
            if link is None:
                continue
            with contextlib.suppress(CollabClientError, TimeoutError):
                async with asyncio.timeout(period):
                    await self._request_on(link, {"type": "HEARTBEAT"})

    def _heartbeat_period(self) -> float:
        period = self._heartbeat_interval or 30.0
        announced = (
            self.connected_frame.get("heartbeatIntervalMs") if self.connected_frame else None
        )
        if isinstance(announced, int | float) and announced > 0:
            period = min(period, announced / 1000.0)
        return period

    def _finalize(self, code: int, reason: str, error: CollabClientError | None) -> None:
        if self.closed.is_set():
            return
        self._closing = True
        self.connected.clear()
        self.close_code, self.close_reason = code, reason
        self.failure = error
        for res in self._resources.values():
            self._fail_unacked(res, ConnectionLost(code, reason))
        heartbeat = self._heartbeat_task
        if heartbeat is not None and heartbeat is not asyncio.current_task():
            heartbeat.cancel()
        self.closed.set()
        self._emit(
            {
                "type": "CLIENT_CLOSED",
                "code": code,
                "reason": reason,
                "error": repr(error) if error is not None else None,
            }
        )
        waiters, self._event_waiters = self._event_waiters, []
        for _, future in waiters:
            if not future.done():
                future.set_exception(ConnectionLost(code, "the client is closed"))
