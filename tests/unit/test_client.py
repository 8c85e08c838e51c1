"""collabgate.client against a small fake `/ws` server.

The fake speaks just enough of docs/protocol.md (CONNECTED, ref'd replies, ERROR, broadcasts) and
can be scripted to refuse handshakes, drop sockets, close with a code or withhold ACKs. Tests
synchronise on events (client `wait_for`, server `wait_received`), never on sleeps.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pycrdt import Doc, Text
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from collabgate.client import (
    AuthenticationFailed,
    CollabClient,
    ConnectionLost,
    Frame,
    LockDenial,
    LockGrant,
    NotConnected,
    ProtocolError,
    backoff_delay,
)

R = "patient:42"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def append(value: str) -> Callable[[Doc[Any]], None]:
    def edit(doc: Doc[Any]) -> None:
        text: Text = doc.get("content", type=Text)
        text += value

    return edit


@dataclass(eq=False)
class FakeConnection:
    ws: ServerConnection
    number: int
    user: str
    joined: dict[str, str] = field(default_factory=dict)


class FakeServer:
    def __init__(self) -> None:
        self.url = ""
        self.received: list[tuple[int, Frame]] = []  # (connection number, frame)
        self.attempts: list[float] = []  # loop time of every upgrade request
        self.requests: list[Request] = []
        self.connections: list[FakeConnection] = []
        self.refuse_next = 0  # answer that many upgrade requests with HTTP 503
        self.drop_before_ack = False  # next Y_UPDATE: apply and broadcast it, then drop the socket
        self.hold_acks = False  # apply Y_UPDATEs but never acknowledge them
        self.stale_state = False  # RESOURCE_STATE carries an empty document
        self.join_errors: list[tuple[str, str]] = []  # (code, errorType) for the next JOINs
        self.doc: Doc[Any] = Doc()
        self.revision = 0
        self.locks: dict[tuple[str, str], str] = {}
        self.fencing = 0
        self.batch: list[tuple[FakeConnection, str, Any]] = []
        self._numbers = itertools.count(1)
        self._arrived = asyncio.Condition()

    @property
    def text(self) -> str:
        return str(self.doc.get("content", type=Text))

    def frames_on(self, number: int) -> list[Frame]:
        return [frame for n, frame in self.received if n == number]

    async def wait_received(self, predicate: Callable[[Frame], bool]) -> Frame:
        def find() -> Frame | None:
            return next((f for _, f in self.received if predicate(f)), None)

        async with asyncio.timeout(5), self._arrived:
            await self._arrived.wait_for(lambda: find() is not None)
        found = find()
        assert found is not None
        return found

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        self.attempts.append(asyncio.get_running_loop().time())
        self.requests.append(request)
        if self.refuse_next > 0:
            self.refuse_next -= 1
            return connection.respond(503, "busy\n")
        return None

    async def handler(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        token = ws.request.headers.get("Authorization", "").removeprefix("Bearer ")
        if token.startswith("bad"):
            await self.send(ws, {"type": "ERROR", "code": "WS_2002", "errorType": "JWT_INVALID", "message": "bad signature"})  # fmt: skip
            await ws.close(4401, "JWT_INVALID")
            return
        conn = FakeConnection(ws, next(self._numbers), token)
        self.connections.append(conn)
        user = {"userId": token, "role": "nurse", "name": token}
        await self.send(ws, {"type": "CONNECTED", "connectionId": f"conn-{conn.number}", "user": user, "serverTime": 1, "heartbeatIntervalMs": 30000, "protocolVersion": 1})  # fmt: skip
        try:
            async for raw in ws:
                frame = orjson.loads(raw)
                self.received.append((conn.number, frame))
                async with self._arrived:
                    self._arrived.notify_all()
                await self.handle(conn, frame)
        except ConnectionClosed:
            pass
        finally:
            self.connections.remove(conn)

    @staticmethod
    async def send(ws: ServerConnection, frame: Frame) -> None:
        await ws.send(orjson.dumps(frame).decode())

    async def broadcast(
        self, sender: FakeConnection | None, resource_id: str, frame: Frame
    ) -> None:
        for conn in list(self.connections):
            if conn is not sender and resource_id in conn.joined:
                await self.send(conn.ws, frame)

    async def push(self, frame: Frame) -> None:
        """Send a server-initiated frame to every connection."""
        for conn in list(self.connections):
            await self.send(conn.ws, frame)

    def drop_all(self) -> None:
        for conn in list(self.connections):
            conn.ws.transport.abort()

    async def handle(self, conn: FakeConnection, frame: Frame) -> None:
        ref = frame.get("ref")
        kind = frame.get("type")
        rid = frame.get("resourceId", "")

        async def reply(payload: Frame) -> None:
            await self.send(conn.ws, {**payload, "ref": ref} if ref is not None else payload)

        async def error(code: str, error_type: str, message: str) -> None:
            await reply({"type": "ERROR", "code": code, "errorType": error_type, "message": message})  # fmt: skip

        if kind == "HEARTBEAT":
            await reply({"type": "HEARTBEAT_ACK", "serverTime": 2})
        elif kind == "JOIN_RESOURCE":
            if self.join_errors:
                await error(*self.join_errors.pop(0), "scripted refusal")
                return
            conn.joined[rid] = frame["mode"]
            users = [
                {"userId": c.user, "role": "nurse", "mode": c.joined[rid], "joinedAt": 1}
                for c in self.connections
                if rid in c.joined
            ]
            state = Doc().get_update() if self.stale_state else self.doc.get_update()
            await reply({"type": "RESOURCE_STATE", "resourceId": rid, "mode": frame["mode"], "revision": self.revision, "state": b64(state), "users": users, "locks": []})  # fmt: skip
            await self.broadcast(conn, rid, {"type": "USER_JOINED", "resourceId": rid, "user": users[-1]})  # fmt: skip
        elif kind == "LEAVE_RESOURCE":
            conn.joined.pop(rid, None)
            await reply({"type": "RESOURCE_LEFT", "resourceId": rid})
        elif kind == "Y_UPDATE":
            if conn.joined.get(rid) != "editor":
                await error("WS_2004", "PERMISSION_DENIED", "viewers may not edit")
                return
            update = base64.b64decode(frame["update"])
            self.doc.apply_update(update)
            self.revision += 1
            await self.broadcast(conn, rid, {"type": "Y_UPDATE", "resourceId": rid, "update": frame["update"], "revision": self.revision, "userId": conn.user})  # fmt: skip
            if self.drop_before_ack:
                self.drop_before_ack = False
                conn.ws.transport.abort()
            elif not self.hold_acks:
                await reply({"type": "Y_UPDATE_ACK", "resourceId": rid, "revision": self.revision})
        elif kind == "SYNC":
            missing = self.doc.get_update(base64.b64decode(frame["stateVector"]))
            await reply({"type": "SYNC_REPLY", "resourceId": rid, "update": b64(missing), "revision": self.revision})  # fmt: skip
        elif kind == "LOCK_ACQUIRE":
            key = (rid, frame.get("target", "*"))
            holder = self.locks.get(key)
            if holder is not None and holder != conn.user:
                await reply({"type": "LOCK_DENIED", "resourceId": rid, "target": key[1], "reason": "held_by_other", "holder": {"userId": holder}, "expiresAt": 9})  # fmt: skip
                return
            self.locks[key] = conn.user
            self.fencing += 1
            await reply({"type": "LOCK_ACQUIRED", "resourceId": rid, "target": key[1], "lockId": "l1", "fencingToken": self.fencing, "expiresAt": 9})  # fmt: skip
            await self.broadcast(conn, rid, {"type": "LOCK_STATUS_CHANGED", "resourceId": rid, "target": key[1], "locked": True, "holder": {"userId": conn.user}, "expiresAt": 9})  # fmt: skip
        elif kind == "LOCK_RELEASE":
            key = (rid, frame.get("target", "*"))
            if self.locks.get(key) != conn.user:
                await error("WS_4013", "LOCK_NOT_HELD", f"you hold no lock on {rid}")
                return
            del self.locks[key]
            await reply({"type": "LOCK_RELEASED", "resourceId": rid, "target": key[1]})
        elif kind == "AWARENESS":
            await self.broadcast(conn, rid, {"type": "AWARENESS", "resourceId": rid, "userId": conn.user, "state": frame["state"]})  # fmt: skip
        elif kind == "ECHO_BATCH":  # test-only: answer three of them at once, in reverse order
            self.batch.append((conn, ref, frame["n"]))
            if len(self.batch) == 3:
                batch, self.batch = self.batch, []
                for c, r, n in reversed(batch):
                    await self.send(c.ws, {"type": "ECHO", "n": n, "ref": r})
        elif kind == "HOLD":  # test-only: never answered
            pass
        else:
            await error("WS_3003", "UNKNOWN_MESSAGE_TYPE", f"unknown message type {kind!r}")


MakeClient = Callable[..., Awaitable[CollabClient]]


@pytest.fixture
async def server() -> AsyncIterator[FakeServer]:
    fake = FakeServer()
    async with serve(fake.handler, "127.0.0.1", 0, process_request=fake.process_request) as ws:
        port = ws.sockets[0].getsockname()[1]
        fake.url = f"ws://127.0.0.1:{port}/ws"
        yield fake


@pytest.fixture
async def make_client(server: FakeServer) -> AsyncIterator[MakeClient]:
    clients: list[CollabClient] = []

    async def make(token: Any = "alice", **options: Any) -> CollabClient:
        options.setdefault("backoff_initial", 0.01)
        options.setdefault("backoff_max", 0.05)
        options.setdefault("heartbeat_interval", None)
        client = CollabClient(server.url, token, **options)
        clients.append(client)
        await client.connect()
        return client

    yield make
    for client in clients:
        await client.close()


def drain(client: CollabClient) -> list[Frame]:
    """Take every queued event off ``client.events``."""
    return [client.events.get_nowait() for _ in range(client.events.qsize())]


def of_type(kind: str, **fields: Any) -> Callable[[Frame], bool]:
    return lambda f: f.get("type") == kind and all(f.get(k) == v for k, v in fields.items())


# ---------------------------------------------------------------------- connecting


async def test_connect_reads_connected_and_sends_the_token_as_bearer_header(
    server: FakeServer, make_client: MakeClient
) -> None:
    client = await make_client("alice")

    assert client.connected.is_set()
    assert client.connection_id == "conn-1"
    assert client.user == {"userId": "alice", "role": "nurse", "name": "alice"}
    assert server.requests[0].headers["Authorization"] == "Bearer alice"
    assert "token=" not in server.requests[0].path


async def test_token_callable_and_token_in_query(
    server: FakeServer, make_client: MakeClient
) -> None:
    async def fresh_token() -> str:
        return "bob"

    client = await make_client(fresh_token, token_in_query=True)

    assert client.user_id == "bob"
    assert server.requests[0].path == "/ws?token=bob"
    assert server.requests[0].headers["Authorization"] == "Bearer bob"


async def test_refused_token_raises_authentication_failed(server: FakeServer) -> None:
    client = CollabClient(server.url, "bad-token", heartbeat_interval=None)

    with pytest.raises(AuthenticationFailed) as info:
        await client.connect()

    assert info.value.code == "WS_2002"
    assert info.value.close_code == 4401
    assert not client.connected.is_set()


# ---------------------------------------------------------------------- requests


async def test_replies_are_matched_by_ref_not_by_arrival_order(
    server: FakeServer, make_client: MakeClient
) -> None:
    client = await make_client()

    replies = await asyncio.gather(
        *(client.request({"type": "ECHO_BATCH", "n": n}) for n in (1, 2, 3))
    )

    assert [reply["n"] for reply in replies] == [1, 2, 3]
    sent_refs = {frame["n"]: frame["ref"] for _, frame in server.received}
    assert len(set(sent_refs.values())) == 3
    assert all(reply["ref"] == sent_refs[reply["n"]] for reply in replies)


async def test_error_reply_raises_protocol_error_with_its_code(
    server: FakeServer, make_client: MakeClient
) -> None:
    client = await make_client()
    await client.join(R)

    with pytest.raises(ProtocolError) as info:
        await client.request({"type": "BOGUS"})
    assert (info.value.code, info.value.error_type) == ("WS_3003", "UNKNOWN_MESSAGE_TYPE")
    assert info.value.ref == server.received[-1][1]["ref"]

    with pytest.raises(ProtocolError) as info:
        await client.release_lock(R)
    assert info.value.code == "WS_4013"

    assert await client.heartbeat() == 2  # still usable


async def test_lock_denied_is_a_reply_and_lock_broadcasts_are_events(
    make_client: MakeClient,
) -> None:
    alice, bob = await make_client("alice"), await make_client("bob")
    await alice.join(R)
    await bob.join(R)

    grant = await alice.acquire_lock(R, ttl_ms=1000)
    denial = await bob.acquire_lock(R)

    assert isinstance(grant, LockGrant)
    assert (grant.granted, grant.fencing_token, grant.target) == (True, 1, "*")
    assert isinstance(denial, LockDenial)
    assert (denial.granted, denial.holder_user_id, denial.reason) == (
        False,
        "alice",
        "held_by_other",
    )
    event = await bob.wait_for(of_type("LOCK_STATUS_CHANGED", locked=True))
    assert event["holder"] == {"userId": "alice"}
    joined = await alice.wait_for(of_type("USER_JOINED"))
    assert joined["user"]["userId"] == "bob"


# ---------------------------------------------------------------------- documents and events


async def test_edit_sends_the_incremental_update_and_peers_apply_it(
    server: FakeServer, make_client: MakeClient
) -> None:
    seen: list[tuple[str, bytes, int, str]] = []
    alice = await make_client("alice")
    bob = await make_client(
        "bob",
        on_update=lambda rid, update, f: seen.append((rid, update, f["revision"], f["userId"])),
    )
    await alice.join(R)
    state = await bob.join(R)
    assert state.revision == 0
    assert [u["userId"] for u in state.users] == ["alice", "bob"]

    revision = await alice.edit(R, append("BP 120/80"))

    assert revision == 1
    assert alice.unacknowledged(R) == []
    assert server.text == "BP 120/80"
    sent = base64.b64decode(server.received[-1][1]["update"])
    event = await bob.wait_for(of_type("Y_UPDATE", revision=revision))
    assert event["userId"] == "alice"
    assert str(bob.text(R)) == "BP 120/80"
    assert bob.revision(R) == 1
    assert seen == [(R, sent, 1, "alice")]
    assert [f["type"] for f in drain(bob)] == ["Y_UPDATE"]

    # A second edit sends only what changed since its start; a no-op edit sends nothing.
    assert await alice.edit(R, append(", HR 72")) == 2
    second = base64.b64decode(server.received[-1][1]["update"])
    assert b", HR 72" in second
    assert b"BP 120/80" not in second
    frames_before = len(server.received)
    assert await alice.edit(R, lambda doc: None) == 2
    assert len(server.received) == frames_before
    await bob.wait_for(of_type("Y_UPDATE", revision=2))
    assert str(bob.text(R)) == "BP 120/80, HR 72"


async def test_joining_late_gets_the_state_and_sync_fetches_nothing_new(
    server: FakeServer, make_client: MakeClient
) -> None:
    alice = await make_client("alice")
    await alice.join(R)
    await alice.edit(R, append("note"))
    bob = await make_client("bob")

    state = await bob.join(R, mode="viewer")

    assert state.revision == 1
    assert str(bob.text(R)) == "note"
    assert bob.joined == {R: "viewer"}
    missing = await bob.sync(R)
    other = Doc()
    other.apply_update(missing)
    assert str(other.get("content", type=Text)) == ""


async def test_refused_update_raises_and_is_not_kept_for_resend(
    make_client: MakeClient,
) -> None:
    client = await make_client()
    await client.join(R, mode="viewer")

    with pytest.raises(ProtocolError) as info:
        await client.edit(R, append("x"))

    assert info.value.code == "WS_2004"
    assert client.unacknowledged(R) == []


async def test_error_without_ref_and_awareness_are_events(
    server: FakeServer, make_client: MakeClient
) -> None:
    alice, bob = await make_client("alice"), await make_client("bob")
    await alice.join(R)
    await bob.join(R)

    await server.push({"type": "ERROR", "code": "WS_5002", "errorType": "SERVICE_UNAVAILABLE", "message": "x"})  # fmt: skip
    await alice.awareness(R, {"cursor": 3})

    error = await alice.wait_for(of_type("ERROR"))
    assert error["code"] == "WS_5002"
    awareness = await bob.wait_for(of_type("AWARENESS"))
    assert (awareness["userId"], awareness["state"]) == ("alice", {"cursor": 3})


async def test_wait_for_sees_earlier_events_unless_after_excludes_them(
    server: FakeServer, make_client: MakeClient
) -> None:
    client = await make_client()
    await server.push({"type": "RESOURCE_UPDATED", "resourceId": R, "action": "x"})
    first = await client.wait_for(of_type("RESOURCE_UPDATED"))

    mark = client.event_count
    assert await client.wait_for(of_type("RESOURCE_UPDATED")) is first
    with pytest.raises(TimeoutError):
        await client.wait_for(of_type("RESOURCE_UPDATED"), timeout=0.05, after=mark)
    await server.push({"type": "RESOURCE_UPDATED", "resourceId": R, "action": "y"})
    second = await client.wait_for(of_type("RESOURCE_UPDATED"), after=mark)
    assert second["action"] == "y"


async def test_heartbeat_is_sent_when_idle(server: FakeServer, make_client: MakeClient) -> None:
    await make_client(heartbeat_interval=0.02)

    heartbeat = await server.wait_received(of_type("HEARTBEAT"))

    assert "ref" in heartbeat


# ---------------------------------------------------------------------- reconnecting


async def test_reconnect_rejoins_syncs_and_resends_the_unacknowledged_update(
    server: FakeServer, make_client: MakeClient
) -> None:
    client = await make_client()
    await client.join(R, mode="editor")
    await client.edit(R, append("a"))
    hold = asyncio.create_task(client.request({"type": "HOLD"}))
    await server.wait_received(of_type("HOLD"))
    server.drop_before_ack = True

    revision = await client.edit(R, append("b"))  # ACK lost with the socket; resent, then ACKed
    await client.wait_for(of_type("CLIENT_RECONNECTED"))

    with pytest.raises(ConnectionLost) as info:
        await hold
    assert info.value.close_code == 1006
    first, second = server.frames_on(1), server.frames_on(2)
    assert [f["type"] for f in first] == ["JOIN_RESOURCE", "Y_UPDATE", "HOLD", "Y_UPDATE"]
    assert [f["type"] for f in second] == ["JOIN_RESOURCE", "SYNC", "Y_UPDATE"]
    assert second[0]["mode"] == "editor"
    assert base64.b64decode(second[1]["stateVector"]) == client.document(R).get_state()
    assert second[2]["update"] == first[3]["update"]
    assert second[2]["ref"] != first[3]["ref"]
    assert revision == 3  # the server counted the update twice; the text has it once
    assert server.text == str(client.text(R)) == "ab"
    assert client.unacknowledged(R) == []
    assert client.reconnects == 1
    assert client.connection_id == "conn-2"
    assert client.connected.is_set()
    kinds = [f["type"] for f in drain(client)]
    assert kinds == ["CLIENT_DISCONNECTED", "CLIENT_RECONNECTED"]


async def test_reconnect_applies_the_sync_reply_and_sends_edits_made_while_away(
    server: FakeServer, make_client: MakeClient
) -> None:
    alice, bob = await make_client("alice"), await make_client("bob", reconnect=False)
    await alice.join(R)
    await bob.join(R)
    server.stale_state = (
        True  # the rejoin's RESOURCE_STATE is empty: only SYNC_REPLY has bob's edit
    )
    server.refuse_next = 10**6
    alice_connection = next(c for c in server.connections if c.user == "alice")
    alice_connection.ws.transport.abort()
    await alice.wait_for(of_type("CLIENT_RECONNECT_FAILED"))

    await bob.edit(R, append("from bob;"))
    offline_edit = asyncio.create_task(alice.edit(R, append("from alice;")))
    with pytest.raises(NotConnected):
        await alice.heartbeat()
    server.refuse_next = 0
    await alice.wait_for(of_type("CLIENT_RECONNECTED"))
    revision = await offline_edit

    assert revision == 2
    assert "from bob;" in str(alice.text(R))
    assert server.text == str(alice.text(R))
    rejoin = server.frames_on(3)
    assert [f["type"] for f in rejoin] == ["JOIN_RESOURCE", "SYNC", "Y_UPDATE"]


async def test_rejoin_refused_forgets_the_resource_and_transient_errors_retry(
    server: FakeServer, make_client: MakeClient
) -> None:
    client = await make_client()
    await client.join(R)
    await client.join("patient:43")
    server.join_errors = [("WS_5002", "SERVICE_UNAVAILABLE"), ("WS_4005", "RESOURCE_NOT_FOUND")]

    server.drop_all()
    refused = await client.wait_for(of_type("CLIENT_REJOIN_FAILED"))
    await client.wait_for(of_type("CLIENT_RECONNECTED"))

    assert (refused["resourceId"], refused["code"]) == (R, "WS_4005")
    assert client.joined == {"patient:43": "editor"}
    assert client.reconnects == 1
    assert [e["type"] for e in drain(client)] == [
        "CLIENT_DISCONNECTED",
        "CLIENT_RECONNECT_FAILED",  # WS_5002 on the first attempt's re-join
        "CLIENT_REJOIN_FAILED",
        "CLIENT_RECONNECTED",
    ]


async def test_no_reconnect_after_close_code_4401(
    server: FakeServer, make_client: MakeClient
) -> None:
    client = await make_client()
    await client.join(R)
    server.hold_acks = True
    edit = asyncio.create_task(client.edit(R, append("x")))
    await server.wait_received(of_type("Y_UPDATE"))

    await server.push({"type": "ERROR", "code": "WS_2003", "errorType": "JWT_EXPIRED", "message": "expired"})  # fmt: skip
    await server.connections[0].ws.close(4401, "JWT_EXPIRED")
    closed = await client.wait_for(of_type("CLIENT_CLOSED"))

    assert closed["code"] == 4401
    with pytest.raises(ConnectionLost) as info:
        await edit
    assert info.value.close_code == 4401
    assert client.closed.is_set()
    assert not client.connected.is_set()
    assert client.reconnects == 0
    assert len(server.attempts) == 1
    kinds = [f["type"] for f in drain(client)]
    assert kinds == ["ERROR", "CLIENT_CLOSED"]


async def test_reconnect_stops_when_the_new_token_is_refused(
    server: FakeServer, make_client: MakeClient
) -> None:
    tokens = iter(["alice", "bad-expired"])
    client = await make_client(lambda: next(tokens))

    server.drop_all()
    await client.wait_for(of_type("CLIENT_CLOSED"))

    assert isinstance(client.failure, AuthenticationFailed)
    assert client.failure.code == "WS_2002"
    assert client.close_code == 4401
    assert len(server.attempts) == 2


async def test_backoff_between_failed_attempts_grows(
    server: FakeServer, make_client: MakeClient
) -> None:
    client = await make_client(backoff_initial=0.04, backoff_max=10.0)
    server.refuse_next = 4
    dropped_at = asyncio.get_running_loop().time()

    server.drop_all()
    await client.wait_for(of_type("CLIENT_RECONNECTED"))

    # Attempt times as the server saw them (the first is the original connection).
    times = [dropped_at, *server.attempts[1:]]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert len(gaps) == 5
    # Equal jitter: attempt n waits between 0.5 and 1 times 0.04 * 2**n, so the waits never
    # shrink. The slack covers handshake time varying on a loaded machine.
    assert all(later >= earlier - 0.02 for earlier, later in itertools.pairwise(gaps)), gaps
    assert gaps[-1] >= 0.32
    assert client.reconnects == 1
    failed = [e for e in drain(client) if e["type"] == "CLIENT_RECONNECT_FAILED"]
    assert [e["attempt"] for e in failed] == [1, 2, 3, 4]


async def test_backoff_without_jitter_doubles(server: FakeServer, make_client: MakeClient) -> None:
    client = await make_client(backoff_initial=0.05, backoff_max=10.0, jitter=0.0)
    server.refuse_next = 3

    server.drop_all()
    await client.wait_for(of_type("CLIENT_RECONNECTED"))

    gaps = [b - a for a, b in itertools.pairwise(server.attempts[1:])]
    assert all(gap >= 0.95 * nominal for gap, nominal in zip(gaps, (0.1, 0.2, 0.4), strict=True)), (
        gaps
    )
    assert all(later > earlier for earlier, later in itertools.pairwise(gaps)), gaps


async def test_server_shutdown_delays_the_reconnect(
    server: FakeServer, make_client: MakeClient
) -> None:
    client = await make_client(backoff_initial=0.001)
    await server.push({"type": "SERVER_SHUTDOWN", "reconnectAfterMs": 100})
    closed_at = asyncio.get_running_loop().time()
    await server.connections[0].ws.close(1012, "server shutting down")

    await client.wait_for(of_type("CLIENT_RECONNECTED"))

    assert server.attempts[1] - closed_at >= 0.1
    disconnected = await client.wait_for(of_type("CLIENT_DISCONNECTED"))
    assert disconnected["code"] == 1012


async def test_close_is_final(server: FakeServer, make_client: MakeClient) -> None:
    client = await make_client()
    await client.join(R)

    await client.close()

    assert client.closed.is_set()
    with pytest.raises(NotConnected):
        await client.heartbeat()
    with pytest.raises(ConnectionLost):
        await client.edit(R, append("x"))
    events = [event async for event in client.iter_events()]
    assert events[-1]["type"] == "CLIENT_CLOSED"
    assert len(server.attempts) == 1


@given(
    attempt=st.integers(min_value=0, max_value=20),
    initial=st.floats(min_value=0.001, max_value=1.0),
    r1=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
    r2=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
)
def test_backoff_delays_never_shrink_below_the_cap(
    attempt: int, initial: float, r1: float, r2: float
) -> None:
    maximum = 5.0
    this = backoff_delay(attempt, initial=initial, maximum=maximum, rand=lambda: r1)
    following = backoff_delay(attempt + 1, initial=initial, maximum=maximum, rand=lambda: r2)

    nominal = min(maximum, initial * 2**attempt)
    assert nominal / 2 <= this <= nominal
    if initial * 2 ** (attempt + 1) <= maximum:
        assert following >= this * (1 - 1e-9)


# ---------------------------------------------------------------------- command line


async def test_cli_prints_events_as_json_lines_and_edits_from_stdin(
    server: FakeServer, make_client: MakeClient
) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "collabgate.client",
        server.url,
        "--token",
        "carol",
        "--resource",
        R,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdin is not None
    assert process.stdout is not None

    async def line() -> Frame:
        assert process.stdout is not None
        async with asyncio.timeout(20):
            frame: Frame = orjson.loads(await process.stdout.readline())
        return frame

    try:
        assert (await line())["type"] == "CONNECTED"
        assert (await line())["type"] == "RESOURCE_STATE"
        peer = await make_client("dave")
        await peer.join(R)
        await peer.edit(R, append("hello "))
        assert (await line())["type"] == "USER_JOINED"
        update = await line()
        assert (update["type"], update["text"]) == ("Y_UPDATE", "hello ")

        process.stdin.write(b"world\n")
        await process.stdin.drain()
        assert (await line()) == {"type": "EDITED", "resourceId": R, "revision": 2}
        process.stdin.write(b'{"type": "NOPE"}\n')
        await process.stdin.drain()
        error = await line()
        assert (error["type"], error["code"]) == ("ERROR", "WS_3003")
        await peer.wait_for(of_type("Y_UPDATE", revision=2))
        assert str(peer.text(R)) == "hello world\n"

        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_cli_exits_2_when_the_token_is_refused(server: FakeServer) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "collabgate.client",
        server.url,
        "--token",
        "bad-token",
        stdout=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(20):
        out, _ = await process.communicate()

    assert process.returncode == 2
    assert orjson.loads(out)["code"] == "WS_2002"
