"""The gateway core driven without sockets: frames in, frames out of each connection's outbox."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import orjson
import pytest
from pycrdt import Doc, Text
from structlog.testing import capture_logs

from collabgate.audit.port import AuditEvent, AuditEventType
from collabgate.auth.principal import Principal, Role
from collabgate.bus.memory import InProcessBus
from collabgate.documents.memory import MemoryDocumentStore
from collabgate.documents.server_document import ServerDocument
from collabgate.documents.service import DocumentService
from collabgate.errors import MaxConnectionsExceeded
from collabgate.locks.memory import MemoryLockStore
from collabgate.ops.metrics import Metrics
from collabgate.presence.memory import MemoryPresenceStore
from collabgate.session.connection import Connection
from collabgate.session.gateway import Gateway, Ports
from collabgate.sessions.memory import MemorySessionStore
from collabgate.settings import Settings

RESOURCE = "patient:42"


class AuditCollector:
    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    def record(self, event: AuditEvent) -> None:
        self.events.append(event)

    def types(self) -> list[AuditEventType]:
        return [event.event_type for event in self.events]


class Clock:
    def __init__(self) -> None:
        self.ms = 1_700_000_000_000

    def __call__(self) -> int:
        return self.ms


class Harness:
    def __init__(self, **settings: Any) -> None:
        self.settings = Settings(**{"lock_holder_grace_seconds": 0.0, **settings})
        self.audit = AuditCollector()
        self.clock = Clock()
        self.store = MemoryDocumentStore(audit=self.audit)
        self.gateway = Gateway(
            self.settings,
            Ports(
                presence=MemoryPresenceStore(),
                locks=MemoryLockStore(),
                documents=DocumentService(self.store, compaction_threshold=1000),
                audit=self.audit,
                bus=InProcessBus(),
                sessions=MemorySessionStore(),
            ),
            Metrics(),
            clock=self.clock,
        )

    async def connect(self, user: str, role: Role = Role.NURSE) -> Connection:
        connection = await self.gateway.open(Principal(user, role, name=user.title()))
        assert read(connection)[0]["type"] == "CONNECTED"
        return connection

    async def send(self, connection: Connection, **frame: Any) -> list[dict[str, Any]]:
        """The replies to ``frame``, once any update it sent is stored (and so acknowledged)."""
        await self.gateway.receive(connection, orjson.dumps(frame))
        await self.gateway.wait_stored()
        return read(connection)

    async def join(self, connection: Connection, mode: str = "editor") -> dict[str, Any]:
        (reply,) = await self.send(
            connection, type="JOIN_RESOURCE", resourceId=RESOURCE, mode=mode, ref="j"
        )
        return reply


class GatedStore:
    """A document store whose appends wait at a gate, or fail: a slow or broken database."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.gate = asyncio.Event()
        self.fail_with: BaseException | None = None
        #: Raised by ``append`` itself, before anything is queued: a store that is closed.
        self.refuse_at_once: Exception | None = None
        self.appended: list[int] = []

    async def load(self, resource_id: str) -> Any:
        await asyncio.sleep(0)  # a round trip to the database: other tasks run meanwhile
        return await self.inner.load(resource_id)

    def append(
        self, resource_id: str, revision: int, update: bytes, record: Any = None
    ) -> asyncio.Future[int]:
        if self.refuse_at_once is not None:
            raise self.refuse_at_once
        return asyncio.ensure_future(self._append(resource_id, revision, update, record))

    async def _append(self, resource_id: str, revision: int, update: bytes, record: Any) -> int:
        await self.gate.wait()
        if self.fail_with is not None:
            raise self.fail_with
        stored = int(await self.inner.append(resource_id, revision, update, record))
        self.appended.append(stored)
        return stored

    async def compact(self, resource_id: str, revision: int, snapshot: bytes) -> None:
        await self.inner.compact(resource_id, revision, snapshot)

    async def close(self) -> None:
        await self.inner.close()


def gated(h: Harness) -> GatedStore:
    store = GatedStore(h.store)
    h.gateway.documents._store = store
    return store


def read(connection: Connection) -> list[dict[str, Any]]:
    return [orjson.loads(frame) for frame in connection.outbox.take_all()]


def text_update(doc: Doc[Any], text: str) -> bytes:
    before = doc.get_state()
    content = doc.get("content", type=Text)
    content += text
    return doc.get_update(before)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture
def h() -> Harness:
    return Harness()


async def test_heartbeat_is_acknowledged_with_its_ref(h: Harness) -> None:
    alice = await h.connect("alice")
    (reply,) = await h.send(alice, type="HEARTBEAT", ref="hb-1")
    assert reply == {"type": "HEARTBEAT_ACK", "serverTime": h.clock.ms, "ref": "hb-1"}


async def test_join_returns_state_and_announces_the_user(h: Harness) -> None:
    alice, bob = await h.connect("alice"), await h.connect("bob", Role.SURGEON)
    state = await h.join(alice)
    assert state["type"] == "RESOURCE_STATE"
    assert state["ref"] == "j"
    assert state["revision"] == 0
    assert [u["userId"] for u in state["users"]] == ["alice"]
    bob_state = await h.join(bob)
    assert [u["userId"] for u in bob_state["users"]] == ["alice", "bob"]
    (joined,) = read(alice)
    assert joined["type"] == "USER_JOINED"
    assert joined["user"] == {
        "userId": "bob",
        "role": "surgeon",
        "mode": "editor",
        "joinedAt": h.clock.ms,
        "name": "Bob",
    }
    assert AuditEventType.RESOURCE_JOINED in h.audit.types()


async def test_second_connection_of_a_user_is_not_announced_twice(h: Harness) -> None:
    alice, bob, bob_tab = await h.connect("alice"), await h.connect("bob"), await h.connect("bob")
    await h.join(alice)
    await h.join(bob)
    read(alice)
    await h.join(bob_tab)
    assert read(alice) == []
    await h.send(bob, type="LEAVE_RESOURCE", resourceId=RESOURCE)
    assert read(alice) == []
    await h.send(bob_tab, type="LEAVE_RESOURCE", resourceId=RESOURCE)
    assert read(alice) == [
        {"type": "USER_LEFT", "resourceId": RESOURCE, "userId": "bob", "reason": "left"}
    ]


async def test_update_is_relayed_to_peers_and_acknowledged_once_stored(h: Harness) -> None:
    alice, bob = await h.connect("alice"), await h.connect("bob")
    await h.join(alice)
    await h.join(bob)
    read(alice)
    update = text_update(Doc(), "BP 120/80")
    (ack,) = await h.send(alice, type="Y_UPDATE", resourceId=RESOURCE, update=b64(update), ref="u1")
    assert ack == {"type": "Y_UPDATE_ACK", "resourceId": RESOURCE, "revision": 1, "ref": "u1"}
    (relayed,) = read(bob)
    assert relayed == {
        "type": "Y_UPDATE",
        "resourceId": RESOURCE,
        "update": b64(update),
        "revision": 1,
        "userId": "alice",
    }
    assert (await h.store.load(RESOURCE)).updates == [update]
    audited = [e for e in h.audit.events if e.event_type is AuditEventType.DOCUMENT_UPDATED]
    assert audited[0].details == {"revision": 1, "bytes": len(update)}
    assert "BP 120/80" not in repr(h.audit.events)


async def test_updates_another_instance_numbered_first_are_stored_and_acked_after_it(
    h: Harness,
) -> None:
    """Another instance stored revision 1 first: this instance's updates 1 and 2 are stored as
    2 and 3, in order, ACKed and audited with those, and its next update is numbered after them."""
    store = gated(h)
    alice = await h.connect("alice")
    await h.join(alice)
    client: Doc[Any] = Doc()
    for ref, text in (("u1", "one "), ("u2", "two")):  # both wait at the store's gate
        frame = {"type": "Y_UPDATE", "resourceId": RESOURCE, "ref": ref}
        update = b64(text_update(client, text))
        await h.gateway.receive(alice, orjson.dumps({**frame, "update": update}))
    await h.store.append(RESOURCE, 1, text_update(Doc(), "from another instance"))
    store.gate.set()
    await h.gateway.wait_stored()
    assert store.appended == [2, 3]
    acks = [(f["ref"], f["revision"]) for f in read(alice) if f["type"] == "Y_UPDATE_ACK"]
    assert acks == [("u1", 2), ("u2", 3)]
    audited = [e for e in h.audit.events if e.event_type is AuditEventType.DOCUMENT_UPDATED]
    assert [e.details["revision"] for e in audited] == [2, 3]
    frame = {"type": "Y_UPDATE", "resourceId": RESOURCE, "ref": "u3"}
    await h.gateway.receive(alice, orjson.dumps({**frame, "update": b64(text_update(client, "!"))}))
    await h.gateway.wait_stored()
    assert store.appended == [2, 3, 4]


async def test_an_update_the_store_refuses_at_once_is_answered_in_order_with_an_error(
    h: Harness,
) -> None:
    """The store is closed by the time the second update reaches it: that update gets WS_5001,
    after the first one's ACK, and the socket reads on."""
    store = gated(h)
    alice = await h.connect("alice")
    await h.join(alice)
    client: Doc[Any] = Doc()
    frame = {"type": "Y_UPDATE", "resourceId": RESOURCE}
    update = b64(text_update(client, "kept "))
    await h.gateway.receive(alice, orjson.dumps({**frame, "ref": "u1", "update": update}))
    store.refuse_at_once = RuntimeError("the document store is closed")
    update = b64(text_update(client, "refused"))
    await h.gateway.receive(alice, orjson.dumps({**frame, "ref": "u2", "update": update}))
    store.gate.set()
    await h.gateway.wait_stored()
    answers = [(f["ref"], f.get("code")) for f in read(alice) if f.get("ref") in ("u1", "u2")]
    assert answers == [("u1", None), ("u2", "WS_5001")]  # the ACK first, then the error
    assert store.appended == [1]
    (error,) = await h.send(alice, type="HEARTBEAT", ref="still-open")
    assert error["type"] == "HEARTBEAT_ACK"


async def test_garbage_update_is_refused_and_nothing_is_stored(h: Harness) -> None:
    alice = await h.connect("alice")
    await h.join(alice)
    (error,) = await h.send(
        alice, type="Y_UPDATE", resourceId=RESOURCE, update=b64(b"\x05\xff\xff"), ref="bad"
    )
    assert (error["code"], error["ref"]) == ("WS_3001", "bad")
    assert "Y.js update" in error["message"]
    assert (await h.store.load(RESOURCE)).updates == []


async def test_sync_returns_only_what_the_client_lacks(h: Harness) -> None:
    alice = await h.connect("alice")
    await h.join(alice)
    client = Doc()
    first = text_update(client, "one ")
    await h.send(alice, type="Y_UPDATE", resourceId=RESOURCE, update=b64(first))
    other = Doc()
    other.apply_update(first)
    second = text_update(other, "two")
    await h.send(alice, type="Y_UPDATE", resourceId=RESOURCE, update=b64(second))
    (reply,) = await h.send(
        alice, type="SYNC", resourceId=RESOURCE, stateVector=b64(client.get_state()), ref="s"
    )
    assert reply["type"] == "SYNC_REPLY"
    assert reply["revision"] == 2
    missing = base64.b64decode(reply["update"])
    assert len(missing) < len(first) + len(second)
    client.apply_update(missing)
    assert str(client.get("content", type=Text)) == "one two"


async def test_viewers_and_guests_cannot_edit(h: Harness) -> None:
    viewer, guest = await h.connect("vic", Role.VIEWER), await h.connect("gus", Role.GUEST)
    (denied,) = await h.send(viewer, type="JOIN_RESOURCE", resourceId=RESOURCE, mode="editor")
    assert denied["code"] == "WS_2004"
    (denied,) = await h.send(guest, type="JOIN_RESOURCE", resourceId=RESOURCE, mode="editor")
    assert (denied["code"], denied["message"]) == ("WS_2004", "guests may only join as viewer")
    assert (await h.join(guest, mode="viewer"))["type"] == "RESOURCE_STATE"
    for request in (
        {"type": "Y_UPDATE", "resourceId": RESOURCE, "update": b64(text_update(Doc(), "x"))},
        {"type": "LOCK_ACQUIRE", "resourceId": RESOURCE},
        {"type": "LOCK_EXTEND", "resourceId": RESOURCE},
        {"type": "LOCK_RELEASE", "resourceId": RESOURCE},
    ):
        (error,) = await h.send(guest, **request)
        assert error["code"] == "WS_2004", request
    assert AuditEventType.PERMISSION_DENIED in h.audit.types()


async def test_messages_about_unjoined_resources_are_refused(h: Harness) -> None:
    alice = await h.connect("alice")
    for request in (
        {"type": "LEAVE_RESOURCE", "resourceId": RESOURCE},
        {"type": "SYNC", "resourceId": RESOURCE, "stateVector": b64(b"\x00")},
        {"type": "AWARENESS", "resourceId": RESOURCE, "state": {}},
        {"type": "LOCK_ACQUIRE", "resourceId": RESOURCE},
    ):
        (error,) = await h.send(alice, **request)
        assert error["code"] == "WS_4007", request
    await h.join(alice)
    (error,) = await h.send(alice, type="JOIN_RESOURCE", resourceId=RESOURCE)
    assert error["code"] == "WS_4006"


async def test_lock_lifecycle_with_fencing_tokens(h: Harness) -> None:
    alice, bob = await h.connect("alice"), await h.connect("bob")
    await h.join(alice)
    await h.join(bob)
    read(alice)
    (granted,) = await h.send(
        alice, type="LOCK_ACQUIRE", resourceId=RESOURCE, target="allergies", ttlMs=10_000
    )
    assert granted["type"] == "LOCK_ACQUIRED"
    assert granted["expiresAt"] == h.clock.ms + 10_000
    (status,) = read(bob)
    assert status["locked"] is True
    assert status["holder"] == {"userId": "alice"}
    (denied,) = await h.send(bob, type="LOCK_ACQUIRE", resourceId=RESOURCE, target="allergies")
    assert denied["type"] == "LOCK_DENIED"
    assert denied["holder"] == {"userId": "alice"}
    (denied_whole,) = await h.send(bob, type="LOCK_ACQUIRE", resourceId=RESOURCE)
    assert denied_whole["type"] == "LOCK_DENIED"
    (other_field,) = await h.send(bob, type="LOCK_ACQUIRE", resourceId=RESOURCE, target="vitals")
    assert other_field["type"] == "LOCK_ACQUIRED"
    read(alice)
    (extended,) = await h.send(
        alice, type="LOCK_EXTEND", resourceId=RESOURCE, target="allergies", ttlMs=20_000
    )
    assert extended["expiresAt"] == h.clock.ms + 20_000
    (not_held,) = await h.send(bob, type="LOCK_RELEASE", resourceId=RESOURCE, target="allergies")
    assert not_held["code"] == "WS_4013"
    (released,) = await h.send(alice, type="LOCK_RELEASE", resourceId=RESOURCE, target="allergies")
    assert released["type"] == "LOCK_RELEASED"
    (unlocked,) = read(bob)
    assert (unlocked["locked"], unlocked["reason"]) == (False, "released")
    (regranted,) = await h.send(bob, type="LOCK_ACQUIRE", resourceId=RESOURCE, target="allergies")
    assert regranted["fencingToken"] == granted["fencingToken"] + 1


async def test_lock_ttl_is_capped_and_expiry_is_broadcast(h: Harness) -> None:
    alice, bob = await h.connect("alice"), await h.connect("bob")
    await h.join(alice)
    await h.join(bob)
    read(alice)
    (granted,) = await h.send(alice, type="LOCK_ACQUIRE", resourceId=RESOURCE, ttlMs=10**9)
    assert granted["expiresAt"] == h.clock.ms + h.settings.lock_max_ttl_ms
    read(bob)
    h.clock.ms += h.settings.lock_max_ttl_ms
    await h.gateway._expire_locks()
    (expired,) = read(bob)
    assert (expired["locked"], expired["reason"]) == (False, "expired")
    assert AuditEventType.LOCK_EXPIRED in h.audit.types()


async def test_whole_resource_lock_blocks_other_editors(h: Harness) -> None:
    alice, bob = await h.connect("alice"), await h.connect("bob")
    await h.join(alice)
    await h.join(bob)
    await h.send(alice, type="LOCK_ACQUIRE", resourceId=RESOURCE)
    read(bob)
    update = b64(text_update(Doc(), "x"))
    (error,) = await h.send(bob, type="Y_UPDATE", resourceId=RESOURCE, update=update)
    assert error["code"] == "WS_4003"
    (ack,) = await h.send(alice, type="Y_UPDATE", resourceId=RESOURCE, update=update)
    assert ack["type"] == "Y_UPDATE_ACK"


async def test_a_disconnected_holder_loses_locks_after_the_grace_period(h: Harness) -> None:
    alice, bob = await h.connect("alice"), await h.connect("bob")
    await h.join(alice)
    await h.join(bob)
    await h.send(alice, type="LOCK_ACQUIRE", resourceId=RESOURCE, target="notes")
    read(bob)
    await h.gateway.close(alice, "disconnected")
    left = read(bob)
    assert left == [
        {"type": "USER_LEFT", "resourceId": RESOURCE, "userId": "alice", "reason": "disconnected"}
    ]
    await bob.outbox.wait()
    (unlocked,) = read(bob)
    assert (unlocked["reason"], unlocked["target"]) == ("holder_disconnected", "notes")


async def test_awareness_goes_to_others_and_is_size_limited(h: Harness) -> None:
    alice, viewer = await h.connect("alice"), await h.connect("vic", Role.VIEWER)
    await h.join(alice)
    await h.join(viewer, mode="viewer")
    read(alice)
    assert await h.send(viewer, type="AWARENESS", resourceId=RESOURCE, state={"cursor": 4}) == []
    assert read(alice) == [
        {"type": "AWARENESS", "resourceId": RESOURCE, "userId": "vic", "state": {"cursor": 4}}
    ]
    (error,) = await h.send(alice, type="AWARENESS", resourceId=RESOURCE, state={"x": "y" * 5000})
    assert error["code"] == "WS_3001"


async def test_rate_limit() -> None:
    h = Harness(rate_limit_per_second=0.001, rate_limit_burst=3)
    alice = await h.connect("alice")
    replies = [await h.send(alice, type="HEARTBEAT") for _ in range(4)]
    assert [r[0]["type"] for r in replies[:3]] == ["HEARTBEAT_ACK"] * 3
    assert replies[3][0]["code"] == "WS_5003"


async def test_a_rate_limited_request_gets_its_ref_back() -> None:
    """A client waiting for the reply to a request must get the refusal, not wait forever."""
    h = Harness(rate_limit_per_second=0.001, rate_limit_burst=1)
    alice = await h.connect("alice")
    await h.send(alice, type="HEARTBEAT")
    (refused,) = await h.send(alice, type="HEARTBEAT", ref="hb-2")
    assert (refused["code"], refused.get("ref")) == ("WS_5003", "hb-2")
    for unreadable in (b"not json", b'["HEARTBEAT"]', b'{"type": "HEARTBEAT", "ref": 7}'):
        await h.gateway.receive(alice, unreadable)
        (refused,) = read(alice)
        assert refused["code"] == "WS_5003"
        assert "ref" not in refused


async def test_room_full() -> None:
    h = Harness(room_max_users=1)
    alice, alice_tab, bob = (
        await h.connect("alice"),
        await h.connect("alice"),
        await h.connect("bob"),
    )
    await h.join(alice)
    assert (await h.join(alice_tab))["type"] == "RESOURCE_STATE"
    assert (await h.join(bob))["code"] == "WS_4001"


async def test_room_gauges_count_rooms_and_users_per_resource_type_when_read(h: Harness) -> None:
    alice, bob = await h.connect("alice"), await h.connect("bob")
    await h.join(alice)
    await h.join(bob)
    await h.send(alice, type="JOIN_RESOURCE", resourceId="surgery:s-9", mode="editor", ref="s")
    h.gateway.update_room_gauges()
    registry = h.gateway.metrics.registry
    assert registry.get_sample_value("collabgate_resources_active") == 2
    users = {"resource_type": "patient"}
    assert registry.get_sample_value("collabgate_room_users", users) == 2
    assert registry.get_sample_value("collabgate_room_users", {"resource_type": "surgery"}) == 1
    await h.gateway.close(bob, "disconnected")
    h.gateway.update_room_gauges()
    assert registry.get_sample_value("collabgate_room_users", users) == 1


async def test_unknown_resource_type_is_not_found() -> None:
    h = Harness(resource_types=["patient"])
    alice = await h.connect("alice")
    (error,) = await h.send(alice, type="JOIN_RESOURCE", resourceId="invoice:1")
    assert error["code"] == "WS_4005"


async def test_connection_caps() -> None:
    h = Harness(max_connections_per_user=2, max_connections=3)
    await h.connect("alice")
    await h.connect("alice")
    with pytest.raises(MaxConnectionsExceeded, match="2 open connections"):
        await h.gateway.open(Principal("alice", Role.NURSE))
    await h.connect("bob")
    with pytest.raises(MaxConnectionsExceeded, match="maximum of 3"):
        await h.gateway.open(Principal("carol", Role.NURSE))


async def test_slow_reader_overflows_instead_of_buffering() -> None:
    h = Harness(send_queue_max_bytes=65_536)
    alice, bob = await h.connect("alice"), await h.connect("bob")
    await h.join(alice)
    await h.join(bob)
    for _ in range(100):
        await h.send(alice, type="AWARENESS", resourceId=RESOURCE, state={"pad": "z" * 1000})
    assert bob.outbox.overflowed
    assert len(bob.outbox) == 0


async def test_silent_connections_time_out() -> None:
    h = Harness(heartbeat_timeout_seconds=60)
    alice, bob = await h.connect("alice"), await h.connect("bob")
    await h.join(alice)
    await h.join(bob)
    read(alice)
    bob.last_seen -= 61
    await h.gateway._close_silent_connections()
    (error,) = read(bob)
    assert error["code"] == "WS_1002"
    assert bob.close_request is not None
    assert bob.close_request.code == 4408
    assert read(alice) == [
        {"type": "USER_LEFT", "resourceId": RESOURCE, "userId": "bob", "reason": "timeout"}
    ]


async def test_drain_tells_every_client_to_reconnect(h: Harness) -> None:
    alice = await h.connect("alice")
    await h.gateway.drain()
    assert read(alice) == [{"type": "SERVER_SHUTDOWN", "reconnectAfterMs": 1000}]
    assert alice.close_request is not None
    assert alice.close_request.code == 1012
    with pytest.raises(MaxConnectionsExceeded, match="shutting down"):
        await h.gateway.open(Principal("bob", Role.NURSE))


async def test_two_gateways_on_one_bus_relay_updates() -> None:
    from collabgate.bus.memory import InProcessHub

    hub = InProcessHub()
    first, second = Harness(instance_id="a"), Harness(instance_id="b")
    for harness in (first, second):
        harness.gateway.bus = InProcessBus(hub)
        await harness.gateway.bus.start(harness.gateway.instance_id, harness.gateway._on_bus_event)
    alice, bob = await first.connect("alice"), await second.connect("bob")
    await first.join(alice)
    await second.join(bob)
    read(alice)
    update = text_update(Doc(), "cross")
    await first.send(alice, type="Y_UPDATE", resourceId=RESOURCE, update=b64(update))
    relayed = read(bob)
    assert relayed[-1]["type"] == "Y_UPDATE"
    document = second.gateway.documents.loaded_document(RESOURCE)
    assert document is not None
    probe = Doc()
    probe.apply_update(document.full_state())
    assert str(probe.get("content", type=Text)) == "cross"


async def test_a_revision_taken_by_another_instance_is_skipped_not_overwritten() -> None:
    store = MemoryDocumentStore()
    conflicts: list[None] = []
    service = DocumentService(
        store, compaction_threshold=1000, on_revision_conflict=lambda: conflicts.append(None)
    )
    first, second = Doc(), Doc()
    here = await service.get(RESOURCE)
    # Another instance stored revisions 1 and 2 while this one still believes it is at 0.
    await store.append(RESOURCE, 1, text_update(second, "there "))
    await store.append(RESOURCE, 2, text_update(second, "again "))
    update = text_update(first, "here ")
    revision = await service.persist(here, service.apply(here, update), update)
    assert (revision, here.revision, len(conflicts)) == (3, 3, 1)
    stored = await store.load(RESOURCE)
    assert stored.updates[-1] == update
    rebuilt = ServerDocument(RESOURCE, stored)
    probe = Doc()
    probe.apply_update(rebuilt.full_state())
    assert sorted(str(probe.get("content", type=Text)).split()) == ["again", "here", "there"]


async def test_compaction_of_a_shared_store_is_built_from_storage_not_memory() -> None:
    store = MemoryDocumentStore()
    service = DocumentService(store, compaction_threshold=2, shared_store=True)
    local, remote = Doc(), Doc()
    document = await service.get(RESOURCE)
    lost_on_the_bus = text_update(remote, "remote ")
    await store.append(RESOURCE, 1, lost_on_the_bus)  # never reached this instance's memory
    update = text_update(local, "local ")
    await service.persist(document, service.apply(document, update), update)
    update = text_update(local, "more ")
    await service.persist(document, service.apply(document, update), update)
    await service.close()
    stored = await store.load(RESOURCE)
    assert stored.snapshot is not None
    probe = Doc()
    probe.apply_update(stored.snapshot)
    assert "remote" in str(probe.get("content", type=Text))


async def test_compaction_of_a_store_of_its_own_is_taken_from_memory_and_loses_nothing() -> None:
    store = MemoryDocumentStore()
    service = DocumentService(store, compaction_threshold=3)
    client = Doc()
    document = await service.get(RESOURCE)
    updates = [text_update(client, f"w{n} ") for n in range(4)]
    for update in updates[:3]:  # the third reaches the threshold: a compaction starts
        await service.persist(document, service.apply(document, update), update)
    # Applied (peers have it) but not yet stored when the compaction snapshots memory.
    in_flight = service.apply(document, updates[3])
    await service.close()
    stored = await store.load(RESOURCE)
    assert stored.snapshot is not None
    assert stored.snapshot_revision == 3  # what was durable, not what was applied
    assert stored.updates == []
    await store.append(RESOURCE, in_flight, updates[3])  # its append lands after the compaction
    rebuilt = Doc()
    rebuilt.apply_update(ServerDocument(RESOURCE, await store.load(RESOURCE)).full_state())
    assert str(rebuilt.get("content", type=Text)) == "w0 w1 w2 w3 "


async def test_a_periodic_job_meeting_a_dead_dependency_warns_without_a_traceback() -> None:
    """Redis down: presence and lock jobs fail every tick; that is a warning, not an error."""
    harness = Harness()
    calls: list[str] = []

    async def reap_dead_instances() -> None:
        calls.append("dependency")
        if len(calls) == 1:
            raise ConnectionError("redis unavailable during presence_reap")
        if len(calls) == 2:
            raise ValueError("a bug")
        raise asyncio.CancelledError

    with capture_logs() as logs, pytest.raises(asyncio.CancelledError):
        await harness.gateway._every(0, reap_dead_instances)
    events = [(entry["event"], entry["log_level"]) for entry in logs]
    assert events == [("periodic_job_skipped", "warning"), ("periodic_job_failed", "error")]
    assert logs[0]["reason"] == "redis unavailable during presence_reap"
    assert logs[0]["job"] == "reap_dead_instances"
