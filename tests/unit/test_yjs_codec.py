"""The y-websocket codec (protocol.yjs) and the core's /yjs paths, without sockets."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pycrdt import Doc, Text, merge_updates
from starlette.applications import Starlette
from structlog.testing import capture_logs

from collabgate.audit.port import AuditEventType
from collabgate.auth.principal import Principal, Role
from collabgate.auth.verifier import TokenVerifier
from collabgate.bus.memory import InProcessBus, InProcessHub
from collabgate.errors import InvalidPayload, PermissionDenied, RoomFull
from collabgate.http.demo import demo_enabled, demo_routes
from collabgate.protocol import yjs
from collabgate.session.connection import Connection
from collabgate.settings import Settings
from tests.unit.test_gateway import RESOURCE, Harness, b64, gated, read, text_update

# ---------------------------------------------------------------------------------- codec


@given(st.integers(min_value=0, max_value=2**53 - 1))
def test_var_uint_round_trips(value: int) -> None:
    encoded = yjs.var_uint(value)
    reader = yjs.Reader(encoded + b"\xff")
    assert reader.read_var_uint() == value
    assert reader.pos == len(encoded)


def test_var_uint_matches_lib0() -> None:
    # lib0 writeVarUint: 7 bits per byte, least significant first, high bit = more follows.
    assert yjs.var_uint(0) == b"\x00"
    assert yjs.var_uint(127) == b"\x7f"
    assert yjs.var_uint(128) == b"\x80\x01"
    assert yjs.var_uint(300) == b"\xac\x02"
    assert yjs.var_uint(2**32 - 1) == b"\xff\xff\xff\xff\x0f"


def test_sync_messages_round_trip() -> None:
    doc: Doc[Any] = Doc()
    update = text_update(doc, "hello")
    state_vector = doc.get_state()
    assert yjs.decode_message(yjs.sync_step1(state_vector)) == yjs.SyncStep1(state_vector)
    assert yjs.decode_message(yjs.sync_step2(update)) == yjs.SyncStep2(update)
    assert yjs.decode_message(yjs.sync_update(update)) == yjs.SyncUpdate(update)
    assert yjs.sync_update(update) == b"\x00\x02" + yjs.var_uint(len(update)) + update


def test_awareness_and_query_and_auth_messages() -> None:
    entries = [
        yjs.AwarenessEntry(3_000_000_000, 7, b'{"user":{"name":"alice"}}'),
        yjs.AwarenessEntry(12, 2, yjs.NULL_STATE),
    ]
    payload = yjs.encode_awareness(entries)
    message = yjs.decode_message(yjs.awareness_message(payload))
    assert message == yjs.AwarenessMessage(payload)
    assert yjs.decode_awareness(payload, 4096) == entries
    assert entries[1].removed
    assert yjs.decode_message(yjs.query_awareness()) == yjs.QueryAwareness()
    denied = yjs.permission_denied("WS_2004 PERMISSION_DENIED: viewers may not edit")
    assert denied[:2] == b"\x02\x00"
    assert yjs.decode_message(denied) == yjs.AuthMessage(
        "WS_2004 PERMISSION_DENIED: viewers may not edit"
    )


@pytest.mark.parametrize(
    ("frame", "problem"),
    [
        (b"", "empty"),
        (b"\x09", "unknown y-websocket message type 9"),
        (b"\x00\x07\x00", "unknown y-websocket sync message type 7"),
        (b"\x00\x02\x05ab", "shorter than a length"),
        (b"\x00\x02\xff\xff\xff\xff\xff\xff\xff\xff\xff", "too large"),
        (b"\x01", "ends inside a number"),
    ],
)
def test_malformed_messages_name_the_problem(frame: bytes, problem: str) -> None:
    with pytest.raises(InvalidPayload, match=problem):
        yjs.decode_message(frame)


def test_awareness_states_must_be_small_json() -> None:
    bad_json = yjs.encode_awareness([yjs.AwarenessEntry(1, 1, b"{nope")])
    with pytest.raises(InvalidPayload, match="not JSON"):
        yjs.decode_awareness(bad_json, 4096)
    big = yjs.encode_awareness([yjs.AwarenessEntry(1, 1, b'"' + b"x" * 5000 + b'"')])
    with pytest.raises(InvalidPayload, match="limit is 4096"):
        yjs.decode_awareness(big, 4096)


def test_awareness_room_follows_the_y_protocols_clock_rule() -> None:
    room = yjs.AwarenessRoom()
    first = yjs.AwarenessEntry(5, 1, b'{"a":1}')
    assert room.apply([first], "conn-a", 5) == [first]
    assert room.apply([first], "conn-b", None) == []  # same clock: nothing new
    removal = yjs.AwarenessEntry(5, 1, yjs.NULL_STATE)
    assert room.apply([removal], "conn-a", 5) == [removal]  # null wins at an equal clock
    renewed = yjs.AwarenessEntry(5, 2, b'{"a":2}')
    assert room.apply([renewed], "conn-a", 5) == [renewed]
    other = yjs.AwarenessEntry(6, 1, b"{}")
    room.apply([other], "conn-a", 5)  # relayed by conn-a but not its own client
    assert room.live_entries() == [renewed, other]
    assert room.remove_owned_by("conn-a") == [yjs.AwarenessEntry(5, 2, yjs.NULL_STATE)]
    assert room.live_entries() == [other]


# ---------------------------------------------------------------------------------- core


async def open_yjs(
    h: Harness, user: str, role: Role = Role.NURSE, mode: str | None = None
) -> Connection:
    return await h.gateway.open_yjs(Principal(user, role, name=user.title()), RESOURCE, mode)


def messages(connection: Connection) -> list[yjs.YjsMessage]:
    frames = connection.outbox.take_all()
    assert all(isinstance(frame, bytes) for frame in frames), frames
    return [yjs.decode_message(frame) for frame in frames if isinstance(frame, bytes)]


@pytest.fixture
def h() -> Harness:
    return Harness()


async def test_a_yjs_peer_is_greeted_like_y_websocket_greets_it(h: Harness) -> None:
    alice = await h.connect("alice")
    await h.join(alice)
    await h.send(alice, type="Y_UPDATE", resourceId=RESOURCE, update=b64(text_update(Doc(), "x")))
    await h.send(alice, type="AWARENESS", resourceId=RESOURCE, state={"cursor": 1})
    read(alice)
    bob = await open_yjs(h, "bob")
    step1, awareness = messages(bob)
    assert isinstance(step1, yjs.SyncStep1)
    document = h.gateway.documents.loaded_document(RESOURCE)
    assert document is not None
    assert step1.state_vector == document.state_vector()
    assert isinstance(awareness, yjs.AwarenessMessage)
    (entry,) = yjs.decode_awareness(awareness.payload, 4096)
    assert (entry.client_id, orjson.loads(entry.state)) == (alice.awareness_id, {"cursor": 1})
    (joined,) = read(alice)
    assert joined["type"] == "USER_JOINED"
    assert joined["user"]["userId"] == "bob"
    assert joined["user"]["mode"] == "editor"
    assert bob.joined == {RESOURCE: "editor"}


async def test_sync_step1_gets_what_the_peer_lacks(h: Harness) -> None:
    bob = await open_yjs(h, "bob")
    messages(bob)
    client: Doc[Any] = Doc()
    first = text_update(client, "one ")
    await h.gateway.receive_yjs(bob, yjs.sync_update(first))
    h.gateway.flush_yjs_updates()
    other: Doc[Any] = Doc()
    other.apply_update(first)
    await h.gateway.receive_yjs(bob, yjs.sync_update(text_update(other, "two")))
    h.gateway.flush_yjs_updates()
    assert messages(bob) == []  # the sender does not get its own updates back
    await h.gateway.receive_yjs(bob, yjs.sync_step1(client.get_state()))
    (reply,) = messages(bob)
    assert isinstance(reply, yjs.SyncStep2)
    client.apply_update(reply.update)
    assert str(client.get("content", type=Text)) == "one two"


async def test_yjs_update_takes_the_y_update_path(h: Harness) -> None:
    alice = await h.connect("alice")
    await h.join(alice)
    bob, carol = await open_yjs(h, "bob"), await open_yjs(h, "carol")
    read(alice)
    messages(bob)
    messages(carol)
    update = text_update(Doc(), "BP 120/80")
    await h.gateway.receive_yjs(bob, yjs.sync_step2(update))  # a SyncStep2 is an update
    (relayed,) = read(alice)
    assert relayed == {
        "type": "Y_UPDATE",
        "resourceId": RESOURCE,
        "update": b64(update),
        "revision": 1,
        "userId": "bob",
    }
    h.gateway.flush_yjs_updates()
    assert messages(carol) == [yjs.SyncUpdate(update)]
    assert messages(bob) == []
    assert bob.unstored()  # y-websocket has no ACK: bob's socket reads on meanwhile
    await h.gateway.wait_stored()
    assert not bob.unstored()
    assert (await h.store.load(RESOURCE)).updates == [update]
    audited = [e for e in h.audit.events if e.event_type is AuditEventType.DOCUMENT_UPDATED]
    assert (audited[0].user_id, audited[0].details) == (
        "bob",
        {"revision": 1, "bytes": len(update)},
    )
    assert h.gateway.metrics.received_by_type["Y_UPDATE"].value == 1


async def test_yjs_updates_are_relayed_before_they_are_stored_and_stored_in_order(
    h: Harness,
) -> None:
    store = gated(h)
    bob, carol = await open_yjs(h, "bob"), await open_yjs(h, "carol")
    messages(carol)
    client: Doc[Any] = Doc()
    first, second = text_update(client, "one "), text_update(client, "two")
    for update in (first, second):  # each returns with the store closed: bob's socket reads on
        await h.gateway.receive_yjs(bob, yjs.sync_update(update))
    h.gateway.flush_yjs_updates()
    (relayed,) = messages(carol)
    assert relayed == yjs.SyncUpdate(merge_updates(first, second))
    assert store.appended == []
    store.gate.set()
    await h.gateway.wait_stored()
    assert store.appended == [1, 2]


async def test_at_max_updates_in_flight_the_next_yjs_update_waits() -> None:
    h = Harness(max_updates_in_flight=1)
    store = gated(h)
    bob = await open_yjs(h, "bob")
    client: Doc[Any] = Doc()
    first, second = text_update(client, "one "), text_update(client, "two")
    await h.gateway.receive_yjs(bob, yjs.sync_update(first))
    reading_second = asyncio.ensure_future(h.gateway.receive_yjs(bob, yjs.sync_update(second)))
    await asyncio.sleep(0)
    assert not reading_second.done()  # bob's socket is read no further until the first is stored
    store.gate.set()
    await reading_second
    await h.gateway.wait_stored()
    assert store.appended == [1, 2]


async def refused_yjs_update(
    h: Harness, error: Exception
) -> tuple[Connection, list[MutableMapping[str, Any]]]:
    """Bob sends one /yjs update the store fails with ``error``; the logs of that failure."""
    store = gated(h)
    store.fail_with = error
    bob = await open_yjs(h, "bob")
    await h.gateway.receive_yjs(bob, yjs.sync_update(text_update(Doc(), "lost?")))
    assert bob.close_request is None  # the socket stays open until the store answers
    store.gate.set()
    with capture_logs() as logs:
        await h.gateway.wait_stored()
    return bob, logs


async def test_a_yjs_update_the_store_refuses_closes_the_socket_so_the_client_resyncs(
    h: Harness,
) -> None:
    bob, _ = await refused_yjs_update(h, ConnectionError("database unavailable"))
    assert bob.close_request is not None
    assert bob.close_request.code == 1013  # try again later: y-websocket reconnects and syncs
    assert h.gateway.metrics.errors_by_code["WS_5002"]._value.get() == 1
    assert not [e for e in h.audit.events if e.event_type is AuditEventType.DOCUMENT_UPDATED]


async def test_an_unexpected_store_failure_closes_the_yjs_socket_and_is_logged(
    h: Harness,
) -> None:
    bob, logs = await refused_yjs_update(h, RuntimeError("bug in the store"))
    assert bob.close_request is not None
    assert bob.close_request.code == 1011
    (failure,) = [entry for entry in logs if entry["event"] == "request_failed"]
    assert failure["type"] == "Y_UPDATE"
    assert isinstance(failure["exc_info"], RuntimeError)  # rendered as a traceback in the log


async def test_json_update_reaches_yjs_peers_as_one_shared_frame(h: Harness) -> None:
    alice = await h.connect("alice")
    await h.join(alice)
    peers = [await open_yjs(h, f"peer{i}") for i in range(3)]
    for peer in peers:
        messages(peer)
    update = text_update(Doc(), "shared")
    await h.send(alice, type="Y_UPDATE", resourceId=RESOURCE, update=b64(update))
    h.gateway.flush_yjs_updates()
    frames = [peer.outbox.take_all() for peer in peers]
    assert all(len(f) == 1 for f in frames)
    assert frames[0][0] is frames[1][0] is frames[2][0]  # encoded once, the same bytes for all
    assert yjs.decode_message(frames[0][0]) == yjs.SyncUpdate(update)  # type: ignore[arg-type]


async def test_the_empty_answer_to_our_sync_step1_costs_nothing(h: Harness) -> None:
    viewer = await open_yjs(h, "vic", Role.VIEWER)
    messages(viewer)
    await h.gateway.receive_yjs(viewer, yjs.sync_step2(yjs.EMPTY_UPDATE))
    assert messages(viewer) == []
    assert (await h.store.load(RESOURCE)).updates == []


async def test_viewers_writes_are_refused_and_the_socket_kept(h: Harness) -> None:
    viewer = await open_yjs(h, "vic", Role.VIEWER)
    assert viewer.joined == {RESOURCE: "viewer"}
    messages(viewer)
    await h.gateway.receive_yjs(viewer, yjs.sync_update(text_update(Doc(), "x")))
    (denied,) = messages(viewer)
    assert isinstance(denied, yjs.AuthMessage)
    assert denied.reason is not None
    assert denied.reason.startswith("WS_2004 PERMISSION_DENIED")
    assert viewer.close_request is None
    assert (await h.store.load(RESOURCE)).updates == []
    assert AuditEventType.PERMISSION_DENIED in h.audit.types()


async def test_an_editor_can_ask_to_join_as_viewer_but_not_the_reverse(h: Harness) -> None:
    nurse = await open_yjs(h, "nora", Role.NURSE, mode="viewer")
    assert nurse.joined == {RESOURCE: "viewer"}
    with pytest.raises(PermissionDenied):
        await open_yjs(h, "vic", Role.VIEWER, mode="editor")
    assert all(c.user_id != "vic" for c in h.gateway.connections.values())


async def test_whole_resource_lock_refuses_other_yjs_editors(h: Harness) -> None:
    alice = await h.connect("alice")
    await h.join(alice)
    await h.send(alice, type="LOCK_ACQUIRE", resourceId=RESOURCE)
    bob = await open_yjs(h, "bob")
    messages(bob)
    await h.gateway.receive_yjs(bob, yjs.sync_update(text_update(Doc(), "x")))
    (denied,) = messages(bob)
    assert isinstance(denied, yjs.AuthMessage)
    assert denied.reason is not None
    assert denied.reason.startswith("WS_4003 LOCK_CONFLICT")


async def test_garbage_closes_the_socket_so_the_client_resyncs(h: Harness) -> None:
    bob = await open_yjs(h, "bob")
    messages(bob)
    await h.gateway.receive_yjs(bob, b"\x00\x02\x03\xff\xff\xff")
    assert bob.close_request is not None
    assert bob.close_request.code == 1007
    assert "WS_3001" in bob.close_request.reason
    assert (await h.store.load(RESOURCE)).updates == []


async def test_rate_limit_and_size_limit_close_yjs_sockets() -> None:
    h = Harness(rate_limit_per_second=0.001, rate_limit_burst=2, max_frame_bytes=1024)
    bob = await open_yjs(h, "bob")
    await h.gateway.receive_yjs(bob, yjs.sync_step2(b"\x00" * 2000))
    assert bob.close_request is not None
    assert bob.close_request.code == 1009
    carol = await open_yjs(h, "carol")
    for _ in range(3):
        await h.gateway.receive_yjs(carol, yjs.query_awareness())
    assert carol.close_request is not None
    assert carol.close_request.code == 1008
    assert h.gateway.metrics.errors_by_code["WS_5003"]._value.get() == 1


async def test_awareness_flows_both_ways_and_is_removed_on_close(h: Harness) -> None:
    alice = await h.connect("alice")
    await h.join(alice)
    bob, carol = await open_yjs(h, "bob"), await open_yjs(h, "carol")
    read(alice)
    messages(bob)
    messages(carol)
    state = yjs.AwarenessEntry(4242, 3, b'{"user":{"name":"bob"}}')
    frame = yjs.awareness_message(yjs.encode_awareness([state]))
    await h.gateway.receive_yjs(bob, frame)
    assert read(alice) == [
        {
            "type": "AWARENESS",
            "resourceId": RESOURCE,
            "userId": "bob",
            "state": {"user": {"name": "bob"}},
        }
    ]
    # Relayed as is, and echoed to the sender as y-websocket's server does.
    assert [carol.outbox.take_all(), bob.outbox.take_all()] == [[frame], [frame]]
    await h.gateway.receive_yjs(bob, frame)  # nothing new: not relayed again
    assert (read(alice), messages(carol)) == ([], [])

    await h.send(alice, type="AWARENESS", resourceId=RESOURCE, state={"cursor": 9})
    (from_json,) = messages(carol)
    assert isinstance(from_json, yjs.AwarenessMessage)
    (entry,) = yjs.decode_awareness(from_json.payload, 4096)
    assert (entry.client_id, entry.clock, orjson.loads(entry.state)) == (
        alice.awareness_id,
        1,
        {"cursor": 9},
    )

    await h.gateway.receive_yjs(carol, yjs.query_awareness())
    (known,) = messages(carol)
    assert isinstance(known, yjs.AwarenessMessage)
    assert {e.client_id for e in yjs.decode_awareness(known.payload, 4096)} == {
        4242,
        alice.awareness_id,
    }

    await h.gateway.close(bob, "disconnected")
    (gone,) = messages(carol)
    assert isinstance(gone, yjs.AwarenessMessage)
    assert yjs.decode_awareness(gone.payload, 4096) == [yjs.AwarenessEntry(4242, 3, yjs.NULL_STATE)]
    assert read(alice) == [
        {"type": "AWARENESS", "resourceId": RESOURCE, "userId": "bob", "state": None},
        {"type": "USER_LEFT", "resourceId": RESOURCE, "userId": "bob", "reason": "disconnected"},
    ]


async def test_quiet_yjs_peers_are_probed_and_json_awareness_renewed(h: Harness) -> None:
    alice = await h.connect("alice")
    await h.join(alice)
    await h.send(alice, type="AWARENESS", resourceId=RESOURCE, state={"cursor": 1})
    bob = await open_yjs(h, "bob")
    messages(bob)
    read(alice)
    bob.last_seen -= h.gateway.yjs_probe_after_seconds + 1
    await h.gateway._probe_quiet_yjs_peers()
    assert messages(bob) == [yjs.QueryAwareness()]
    await h.gateway._renew_json_awareness_for_yjs()
    (renewal,) = messages(bob)
    assert isinstance(renewal, yjs.AwarenessMessage)
    (entry,) = yjs.decode_awareness(renewal.payload, 4096)
    assert (entry.client_id, entry.clock) == (alice.awareness_id, 2)
    assert read(alice) == []  # /ws peers are not bothered with renewals


async def test_silent_yjs_peer_times_out_with_a_close_and_no_json(h: Harness) -> None:
    bob = await open_yjs(h, "bob")
    messages(bob)
    bob.last_seen -= h.settings.heartbeat_timeout_seconds + 1
    await h.gateway._close_silent_connections()
    assert messages(bob) == []
    assert bob.close_request is not None
    assert bob.close_request.code == 4408


async def test_drain_closes_yjs_peers_without_a_json_frame(h: Harness) -> None:
    bob = await open_yjs(h, "bob")
    messages(bob)
    await h.gateway.drain()
    assert messages(bob) == []
    assert bob.close_request is not None
    assert bob.close_request.code == 1012


async def test_a_refused_yjs_join_leaves_nothing_behind() -> None:
    h = Harness(room_max_users=1)
    await open_yjs(h, "alice")
    with pytest.raises(RoomFull):
        await open_yjs(h, "bob")
    assert [c.user_id for c in h.gateway.connections.values()] == ["alice"]
    with pytest.raises(InvalidPayload):
        await h.gateway.open_yjs(Principal("carol", Role.NURSE), "not a resource", None)


async def test_two_instances_relay_yjs_updates_and_awareness() -> None:
    hub = InProcessHub()
    first, second = Harness(instance_id="a"), Harness(instance_id="b")
    for harness in (first, second):
        harness.gateway.bus = InProcessBus(hub)
        await harness.gateway.bus.start(harness.gateway.instance_id, harness.gateway._on_bus_event)
    bob = await open_yjs(first, "bob")
    carol = await open_yjs(second, "carol")
    dave = await second.connect("dave")
    await second.join(dave)
    messages(bob)
    messages(carol)
    update = text_update(Doc(), "cross")
    await first.gateway.receive_yjs(bob, yjs.sync_update(update))
    second.gateway.flush_yjs_updates()
    assert messages(carol) == [yjs.SyncUpdate(update)]
    (relayed,) = read(dave)
    assert base64.b64decode(relayed["update"]) == update
    state = yjs.AwarenessEntry(77, 1, b'{"n":1}')
    await first.gateway.receive_yjs(bob, yjs.awareness_message(yjs.encode_awareness([state])))
    (awareness,) = messages(carol)
    assert isinstance(awareness, yjs.AwarenessMessage)
    assert read(dave)[0]["state"] == {"n": 1}
    await second.gateway.receive_yjs(carol, yjs.query_awareness())
    (known,) = messages(carol)
    assert isinstance(known, yjs.AwarenessMessage)
    assert yjs.decode_awareness(known.payload, 4096) == [state]


async def test_updates_of_one_loop_turn_go_out_merged_once(h: Harness) -> None:
    alice = await h.connect("alice")
    await h.join(alice)
    bob, carol, dave = [await open_yjs(h, name) for name in ("bob", "carol", "dave")]
    for peer in (bob, carol, dave):
        messages(peer)
    read(alice)
    first, second = text_update(Doc(), "one"), text_update(Doc(), "two")
    # Two updates arriving in one event-loop turn (their handlers start together).
    await asyncio.gather(
        h.gateway.receive_yjs(bob, yjs.sync_update(first)),
        h.gateway.receive_yjs(carol, yjs.sync_update(second)),
    )
    assert [frame["userId"] for frame in read(alice)] == ["bob", "carol"]  # /ws: one each, at once
    h.gateway.flush_yjs_updates()
    frames = [peer.outbox.take_all() for peer in (bob, carol, dave)]
    assert all(len(f) == 1 for f in frames)
    assert frames[0][0] is frames[1][0] is frames[2][0]
    merged = yjs.decode_message(frames[0][0])  # type: ignore[arg-type]
    assert isinstance(merged, yjs.SyncUpdate)
    probe: Doc[Any] = Doc()
    probe.apply_update(merged.update)
    assert sorted(str(probe.get("content", type=Text))) == sorted("onetwo")


# ---------------------------------------------------------------------------------- /demo


async def demo_get(settings: Settings, path: str) -> httpx.Response:
    app = Starlette(routes=demo_routes(settings))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://demo") as client:
        return await client.get(path)


def test_the_demo_follows_development_keys_until_it_has_its_own_setting() -> None:
    assert demo_enabled(Settings(dev_keys=True))
    assert not demo_enabled(Settings(dev_keys=False))


async def test_demo_page_bundle_and_dev_tokens(tmp_path: Path) -> None:
    settings = Settings(dev_keys=True, data_dir=tmp_path)
    page = await demo_get(settings, "/demo/")
    assert page.status_code == 200
    assert "/demo/static/demo.js" in page.text
    assert "connect-src 'self'" in page.headers["content-security-policy"]
    bundle = await demo_get(settings, "/demo/static/demo.js")
    assert bundle.status_code == 200
    assert "WebsocketProvider" in bundle.text or len(bundle.content) > 50_000
    token = await demo_get(settings, "/demo/token?sub=alice&role=surgeon")
    principal = await TokenVerifier.from_settings(settings).verify(token.json()["token"])
    assert (principal.user_id, principal.role) == ("alice", Role.SURGEON)
    assert (await demo_get(settings, "/demo/token?sub=&role=nurse")).status_code == 400
    assert (await demo_get(settings, "/demo/token?sub=bob&role=god")).status_code == 400


async def test_no_token_minting_without_development_keys(tmp_path: Path) -> None:
    settings = Settings(dev_keys=False, data_dir=tmp_path)
    assert (await demo_get(settings, "/demo/token?sub=alice")).status_code == 404
