"""The smoke test a new colour must pass before it takes traffic (EPIC-003 DEVOPS-001.2).

Through the public host name, pinned to one colour by the ``X-Collabgate-Color`` header (the
listener rules terraform creates): ``GET /health``, ``GET /metrics``, and a WebSocket on ``/ws``
with a test user's JWT that must be greeted with ``CONNECTED``, all within ``timeout`` seconds.
"""

from __future__ import annotations

import json
import time

import httpx
from websockets.sync.client import connect

COLOUR_HEADER = "X-Collabgate-Color"


class SmokeTestFailed(RuntimeError):
    """One check failed; the message names it."""


def smoke_test(base_url: str, token: str, colour: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    headers = {COLOUR_HEADER: colour}

    def left() -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise SmokeTestFailed(f"{colour}: the smoke test took longer than {timeout:g} s")
        return remaining

    with httpx.Client(base_url=base_url, headers=headers) as http:
        for path, expected in (("/health", None), ("/metrics", "websocket_connections_total")):
            try:
                response = http.get(path, timeout=left())
            except httpx.HTTPError as exc:
                raise SmokeTestFailed(f"{colour}: GET {path} failed: {exc!r}") from exc
            if response.status_code != 200 or (expected and expected not in response.text):
                raise SmokeTestFailed(f"{colour}: GET {path} answered {response.status_code}")
    ws_url = base_url.replace("https://", "wss://", 1).replace("http://", "ws://", 1) + "/ws"
    try:
        with connect(
            ws_url,
            additional_headers={**headers, "Authorization": f"Bearer {token}"},
            open_timeout=left(),
        ) as socket:
            frame = json.loads(socket.recv(timeout=left()))
    except Exception as exc:  # refused, timed out, closed, not JSON: all the same verdict
        raise SmokeTestFailed(f"{colour}: WebSocket /ws failed: {exc!r}") from exc
    if frame.get("type") != "CONNECTED":
        raise SmokeTestFailed(f"{colour}: /ws answered {frame.get('type')} {frame.get('code', '')}")
