"""A closed connection is freed by reference counting alone, over real sockets.

The gateway's young garbage-collector generation is large (ops/gc_policy.py), so whatever a
closed connection leaves in reference cycles waits in memory for a rare collection: under
constant reconnection that is memory growth and, when the collection comes, a long pause. The
connection's objects (uvicorn's protocol, websockets' state machine, the core's Connection and
Outbox) must therefore form no cycle once it is closed. This runs the real app under uvicorn in
this process, configured and on the event loop (uvloop) as `collabgate serve` runs it, with the
collector off, and checks that the server-side protocol objects of closed /ws and /yjs
connections are gone.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import weakref
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
import uvloop
import websockets
from picows import WSTransport
from picows.picows import WSProtocol  # type: ignore[attr-defined]
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from collabgate.auth.devkeys import ensure_dev_keys, mint_token
from collabgate.http.app import CollabgateApp, create_app
from collabgate.http.picows_wire import PicowsSocket
from collabgate.http.server import uvicorn_config
from collabgate.http.wire import WireProtocol
from collabgate.settings import load_settings

# uvloop, as the server runs: its transports keep their protocol after closing, so a cycle that
# reaches a transport keeps the whole connection.
pytestmark = [pytest.mark.e2e, pytest.mark.uvloop]

CONNECTIONS = 20

#: What picows keeps per connection (cdef classes, without weak references; the collector
#: tracks them, so one left in a cycle shows up in gc.get_objects()).
PICOWS_CONNECTION_TYPES = (WSProtocol, WSTransport)


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[CollabgateApp, uvicorn.Server, int]]:
    settings = load_settings(data_dir=tmp_path, dev_keys=True, log_level="warning")
    app = create_app(settings)
    config = uvicorn_config(app, settings)
    config.load()
    server = uvicorn.Server(config)
    server.lifespan = config.lifespan_class(config)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    await server.startup(sockets=[listener])  # what Server.serve does, minus signal handlers
    try:
        yield app, server, port
    finally:
        await server.shutdown(sockets=[listener])
        listener.close()


@pytest.mark.parametrize("path", ["/ws", "/yjs/patient:memory-1"])
async def test_closed_connections_leave_nothing_to_the_cyclic_collector(
    served: tuple[CollabgateApp, uvicorn.Server, int], tmp_path: Path, path: str
) -> None:
    app, server, port = served
    assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
    keys = ensure_dev_keys(tmp_path / "dev-keys")
    tokens = [
        mint_token(keys, sub=f"user-{n}", role="nurse", ttl_seconds=600) for n in range(CONNECTIONS)
    ]
    clients = [
        await websockets.connect(f"ws://127.0.0.1:{port}{path}?token={token}") for token in tokens
    ]
    for client in clients:
        await client.recv()  # CONNECTED on /ws, SyncStep1 on /yjs: the session is set up
    # /ws: uvicorn's protocol and websockets' state machine of every connection; /yjs: the
    # picows socket (picows's own transport and protocol take no weak references: see below)
    wires = [p for p in server.server_state.connections if isinstance(p, WireProtocol)]
    sockets = [p for p in server.server_state.connections if isinstance(p, PicowsSocket)]
    assert len(wires) + len(sockets) == CONNECTIONS
    protocols: list[weakref.ref[Any]] = [weakref.ref(wire) for wire in wires]
    protocols += [weakref.ref(wire.conn) for wire in wires]
    protocols += [weakref.ref(s) for s in sockets]
    # The check below can see them: while open, every /yjs connection has its picows objects.
    picows_objects = [o for o in gc.get_objects() if type(o) in PICOWS_CONNECTION_TYPES]
    assert len(picows_objects) == 2 * len(sockets)
    del wires, sockets, picows_objects
    gateway = app.runtime.gateway
    gc.disable()
    try:
        for client in clients:
            await client.close()
        del clients
        assert await gateway.wait_all_closed(10)
        for _ in range(10):  # the connections' tasks finish on the next turns of the loop
            await asyncio.sleep(0)
        alive = [ref for ref in protocols if ref() is not None]
        assert not alive, f"{len(alive)} closed connections wait for the cyclic collector"
        # The HTTP protocol each connection was upgraded from is gone too, and so are picows's.
        assert not [o for o in gc.get_objects() if issubclass(type(o), HttpToolsProtocol)]
        assert not [o for o in gc.get_objects() if type(o) in PICOWS_CONNECTION_TYPES]
    finally:
        gc.enable()
