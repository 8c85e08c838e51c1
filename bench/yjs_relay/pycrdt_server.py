"""pycrdt-websocket as its documentation serves it (ASGIServer under uvicorn), for bench/yjs_relay.

Runs only in bench/yjs_relay/.venv (requirements.txt): ``python pycrdt_server.py PORT``. uvicorn is
configured as the gateway's is (uvloop, httptools, websockets-sansio) so that the two Python
servers differ only in what they do with a message.
"""

from __future__ import annotations

import sys

import uvicorn
from pycrdt.websocket import ASGIServer, WebsocketServer


def main(port: int) -> None:
    websocket_server = WebsocketServer(auto_clean_rooms=False)
    app = ASGIServer(websocket_server)

    async def lifespan_app(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    # the documented `async with websocket_server`, held open across the lifespan
                    await websocket_server.__aenter__()
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await websocket_server.__aexit__(None, None, None)
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        await app(scope, receive, send)

    uvicorn.run(
        lifespan_app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        ws="websockets-sansio",
        ws_ping_interval=None,
        log_level="warning",
    )


if __name__ == "__main__":
    main(int(sys.argv[1]))
