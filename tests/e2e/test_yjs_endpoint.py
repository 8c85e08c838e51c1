"""The /yjs/{resourceId} endpoint over real sockets, spoken to byte for byte (protocol.yjs).

The stock Yjs client is exercised by tests/interop; these pin the wire behaviour: the greeting,
the codec bridge to /ws, refusals, presence and the handshake errors.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import websockets
from pycrdt import Doc, Text
from websockets.asyncio.client import ClientConnection

from collabgate.client import CollabClient
from collabgate.protocol import yjs
from tests.e2e.conftest import poll_audit
from tests.support.gateway_process import GatewayProcess

pytestmark = pytest.mark.e2e

Connect = Callable[..., Any]


def resource() -> str:
    return f"patient:yjs-{uuid.uuid4().hex[:8]}"


def text_update(doc: Doc[Any], text: str) -> bytes:
    before = doc.get_state()
    content = doc.get("content", type=Text)
    content += text
    return doc.get_update(before)


class YjsPeer:
    """A raw y-websocket peer: sends and reads decoded y-protocols messages."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    async def send(self, frame: bytes) -> None:
        await self.ws.send(frame)

    async def next(self, within: float = 5.0) -> yjs.YjsMessage:
        frame = await asyncio.wait_for(self.ws.recv(), within)
        assert isinstance(frame, bytes), frame
        return yjs.decode_message(frame)

    async def next_of(self, kind: type, within: float = 5.0) -> Any:
        """The next message of ``kind``, skipping others (awareness echoes, probes)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            message = await self.next(max(0.01, deadline - loop.time()))
            if isinstance(message, kind):
                return message


@pytest.fixture
async def yjs_peer(gateway: GatewayProcess) -> AsyncIterator[Callable[..., Any]]:
    sockets: list[ClientConnection] = []

    async def _open(resource_id: str, token: str | None, query: str = "") -> YjsPeer:
        params = f"token={token}" if token else ""
        url = f"ws://127.0.0.1:{gateway.port}/yjs/{resource_id}?{params}{query}"
        ws = await websockets.connect(url)
        sockets.append(ws)
        return YjsPeer(ws)

    yield _open
    for ws in sockets:
        await ws.close()


async def test_greeting_and_sync_with_a_ws_client(
    gateway: GatewayProcess, connect: Connect, yjs_peer: Callable[..., Any]
) -> None:
    rid = resource()
    alice: CollabClient = await connect("alice")
    await alice.join(rid)
    await alice.edit(rid, lambda doc: doc.get("content", type=Text).insert(0, "from ws "))
    bob: YjsPeer = await yjs_peer(rid, gateway.token("bob"))
    step1 = await bob.next()
    assert isinstance(step1, yjs.SyncStep1)
    local: Doc[Any] = Doc()
    await bob.send(yjs.sync_step1(local.get_state()))
    step2 = await bob.next_of(yjs.SyncStep2)
    local.apply_update(step2.update)
    assert str(local.get("content", type=Text)) == "from ws "
    joined = await alice.wait_for(lambda e: e["type"] == "USER_JOINED")
    assert joined["user"]["userId"] == "bob"

    update = text_update(local, "and yjs")
    await bob.send(yjs.sync_update(update))
    relayed = await alice.wait_for(lambda e: e["type"] == "Y_UPDATE" and e["userId"] == "bob")
    assert base64.b64decode(relayed["update"]) == update
    assert str(alice.text(rid)) == "from ws and yjs"

    revision = await alice.edit(rid, lambda doc: doc.get("content", type=Text).insert(0, ">"))
    assert revision == 3
    from_ws = await bob.next_of(yjs.SyncUpdate)
    local.apply_update(from_ws.update)
    assert str(local.get("content", type=Text)) == ">from ws and yjs"


async def test_viewer_is_refused_and_stays_connected(
    gateway: GatewayProcess, connect: Connect, yjs_peer: Callable[..., Any]
) -> None:
    rid = resource()
    alice: CollabClient = await connect("alice")
    await alice.join(rid)
    vic: YjsPeer = await yjs_peer(rid, gateway.token("vic", role="viewer"))
    await vic.next_of(yjs.SyncStep1)
    await vic.send(yjs.sync_update(text_update(Doc(), "sneaky")))
    denied = await vic.next_of(yjs.AuthMessage)
    assert denied.reason.startswith("WS_2004 PERMISSION_DENIED")
    await vic.send(yjs.sync_step1(Doc().get_state()))
    step2 = await vic.next_of(yjs.SyncStep2)
    assert step2.update == yjs.EMPTY_UPDATE  # nothing was applied
    assert str(alice.text(rid)) == ""


async def test_an_editor_may_join_read_only(
    gateway: GatewayProcess, connect: Connect, yjs_peer: Callable[..., Any]
) -> None:
    rid = resource()
    alice: CollabClient = await connect("alice")
    await alice.join(rid)
    nora: YjsPeer = await yjs_peer(rid, gateway.token("nora"), "&mode=viewer")
    joined = await alice.wait_for(lambda e: e["type"] == "USER_JOINED")
    assert joined["user"]["mode"] == "viewer"
    await nora.send(yjs.sync_update(text_update(Doc(), "x")))
    assert isinstance(await nora.next_of(yjs.AuthMessage), yjs.AuthMessage)


async def test_awareness_between_codecs_and_presence_on_leave(
    gateway: GatewayProcess, connect: Connect, yjs_peer: Callable[..., Any]
) -> None:
    rid = resource()
    alice: CollabClient = await connect("alice")
    await alice.join(rid)
    bob: YjsPeer = await yjs_peer(rid, gateway.token("bob"))
    await bob.next_of(yjs.SyncStep1)
    state = yjs.AwarenessEntry(1234, 1, b'{"user":{"name":"Bob"}}')
    await bob.send(yjs.awareness_message(yjs.encode_awareness([state])))
    seen = await alice.wait_for(lambda e: e["type"] == "AWARENESS")
    assert (seen["userId"], seen["state"]) == ("bob", {"user": {"name": "Bob"}})
    await alice.awareness(rid, {"cursor": 3})
    message = await bob.next_of(yjs.AwarenessMessage)
    entries = yjs.decode_awareness(message.payload, 4096)
    while not any(e.state == b'{"cursor":3}' for e in entries):  # skip the echo of our own
        message = await bob.next_of(yjs.AwarenessMessage)
        entries = yjs.decode_awareness(message.payload, 4096)
    await bob.ws.close()
    left = await alice.wait_for(lambda e: e["type"] == "USER_LEFT")
    assert (left["userId"], left["reason"]) == ("bob", "disconnected")


async def test_handshake_refusals_say_why(
    gateway: GatewayProcess, yjs_peer: Callable[..., Any]
) -> None:
    nobody: YjsPeer = await yjs_peer(resource(), None)
    denied = await nobody.next()
    assert isinstance(denied, yjs.AuthMessage)
    assert denied.reason is not None
    assert denied.reason.startswith("WS_2001 JWT_MISSING")
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await nobody.next()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4401

    bad_id: YjsPeer = await yjs_peer("no%20spaces", gateway.token("alice"))
    denied = await bad_id.next()
    assert isinstance(denied, yjs.AuthMessage)
    assert denied.reason is not None
    assert "WS_3001" in denied.reason

    unknown_type: YjsPeer = await yjs_peer("invoice:1", gateway.token("alice"))
    denied = await unknown_type.next()
    assert isinstance(denied, yjs.AuthMessage)
    assert denied.reason is not None
    assert denied.reason.startswith("WS_4005 RESOURCE_NOT_FOUND")
    assert await poll_audit(gateway, "CONNECTION_REJECTED", "WS_2001")
