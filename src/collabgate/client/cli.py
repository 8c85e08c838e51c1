"""``python -m collabgate.client``: connect, join, print events as JSON lines.

::

    python -m collabgate.client ws://127.0.0.1:8080/ws --token <jwt> --resource patient:demo-1

Prints one JSON object per line on stdout: the ``CONNECTED`` frame, a ``RESOURCE_STATE`` summary
per joined resource (the base64 ``state`` replaced by ``text``, the resource's ``content`` text),
then every event as it arrives (``Y_UPDATE`` lines get ``text`` too, unless ``--raw``), including
the client's own ``CLIENT_*`` events.

Lines typed on stdin are sent: a line starting with ``{`` is a request (``{"type":
"LOCK_ACQUIRE", "resourceId": "patient:demo-1"}``) whose reply — or ``ERROR`` — is printed; any
other line is appended to the first resource's ``content`` text and the ``Y_UPDATE_ACK``
revision is printed as ``{"type": "EDITED", ...}``. A refused request prints its ``ERROR``.

Exit status: 0 after Ctrl-C / SIGTERM, 2 when the token is refused, 1 when the connection could
not be opened or the client closed for good.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any, TextIO

import orjson
from pycrdt import Text

from collabgate.client.connection import CollabClient
from collabgate.client.errors import (
    AuthenticationFailed,
    CollabClientError,
    ConnectionFailed,
    ProtocolError,
)
from collabgate.client.models import Frame


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m collabgate.client",
        description="Connect to a collabgate /ws endpoint, join resources, print events as JSON lines.",
    )
    parser.add_argument("url", help="WebSocket URL, e.g. ws://127.0.0.1:8080/ws")
    parser.add_argument(
        "--token",
        default=os.environ.get("COLLABGATE_TOKEN"),
        help="JWT (default: $COLLABGATE_TOKEN)",
    )
    parser.add_argument(
        "--resource",
        action="append",
        default=[],
        metavar="ID",
        help="resource to join, e.g. patient:1 (repeatable)",
    )
    parser.add_argument("--mode", choices=("editor", "viewer"), default="editor")
    parser.add_argument(
        "--token-in-query", action="store_true", help="also send the token as ?token="
    )
    parser.add_argument(
        "--no-reconnect", action="store_true", help="exit when the connection drops"
    )
    parser.add_argument("--raw", action="store_true", help="print frames exactly as received")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.token:
        print("error: --token (or COLLABGATE_TOKEN) is required", file=sys.stderr)
        return 2
    try:
        return asyncio.run(run(args, sys.stdout))
    except KeyboardInterrupt:
        return 0


def _write(out: TextIO, frame: Frame) -> None:
    out.write(orjson.dumps(frame).decode() + "\n")
    out.flush()


def _stdin_lines(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[str | None]) -> None:
    """Feed stdin lines to ``queue`` from a daemon thread (which does not hold up exit)."""

    def pump() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(queue.put_nowait, line)
        loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=pump, name="collabgate-client-stdin", daemon=True).start()


async def run(args: argparse.Namespace, out: TextIO) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    resources: list[str] = list(args.resource)

    def text_of(resource_id: str) -> str:
        return str(client.text(resource_id)) if resource_id in client.joined else ""

    def on_event(frame: Frame) -> None:
        if not args.raw and frame.get("type") == "Y_UPDATE":
            frame = {**frame, "text": text_of(str(frame.get("resourceId")))}
        _write(out, frame)

    client = CollabClient(
        args.url,
        args.token,
        reconnect=not args.no_reconnect,
        token_in_query=args.token_in_query,
        max_queued_events=0,
    )
    try:
        await client.connect()
    except AuthenticationFailed as exc:
        _write(out, {"type": "CLIENT_ERROR", "error": str(exc), "code": exc.code})
        return 2
    except ConnectionFailed as exc:
        _write(out, {"type": "CLIENT_ERROR", "error": str(exc)})
        return 1
    try:
        if client.connected_frame is not None:
            _write(out, client.connected_frame)
        for resource_id in resources:
            state = await client.join(resource_id, mode=args.mode)
            summary: dict[str, Any] = {
                "type": "RESOURCE_STATE",
                "resourceId": state.resource_id,
                "mode": state.mode,
                "revision": state.revision,
                "users": state.users,
                "locks": state.locks,
                "text": text_of(resource_id),
            }
            _write(out, summary)
        client.on_event = on_event
        lines: asyncio.Queue[str | None] = asyncio.Queue()
        _stdin_lines(loop, lines)
        return await _interact(client, resources, lines, stop, out)
    except CollabClientError as exc:
        _write(out, {"type": "CLIENT_ERROR", "error": str(exc)})
        return 1
    finally:
        await client.close()


async def _interact(
    client: CollabClient,
    resources: list[str],
    lines: asyncio.Queue[str | None],
    stop: asyncio.Event,
    out: TextIO,
) -> int:
    stopped = asyncio.ensure_future(stop.wait())
    closed = asyncio.ensure_future(client.closed.wait())
    next_line: asyncio.Future[str | None] | None = asyncio.ensure_future(lines.get())
    try:
        while True:
            waits: set[asyncio.Future[Any]] = {stopped, closed}
            if next_line is not None:
                waits.add(next_line)
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            if stopped.done():
                return 0
            if closed.done():
                return 1
            if next_line is None or not next_line.done():
                continue
            line = next_line.result()
            next_line = None if line is None else asyncio.ensure_future(lines.get())
            if line is not None and line.strip():
                await _send_line(client, resources, line.strip(), out)
    finally:
        for future in (stopped, closed, next_line):
            if future is not None:
                future.cancel()


async def _send_line(client: CollabClient, resources: list[str], line: str, out: TextIO) -> None:
    try:
        if line.startswith("{"):
            try:
                frame = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                _write(out, {"type": "CLIENT_ERROR", "error": f"not JSON: {exc}"})
                return
            async with asyncio.timeout(30):
                reply = await client.request(frame)
            _write(out, reply)
        elif resources:
            resource_id = resources[0]

            def append(doc: Any) -> None:
                text: Text = doc.get("content", type=Text)
                text += line + "\n"

            revision = await client.edit(resource_id, append)
            _write(out, {"type": "EDITED", "resourceId": resource_id, "revision": revision})
        else:
            _write(out, {"type": "CLIENT_ERROR", "error": "no --resource joined to edit"})
    except ProtocolError as exc:
        _write(
            out,
            {
                "type": "ERROR",
                "code": exc.code,
                "errorType": exc.error_type,
                "message": exc.message,
                "ref": exc.ref,
            },
        )
    except (CollabClientError, TimeoutError) as exc:
        _write(out, {"type": "CLIENT_ERROR", "error": str(exc) or type(exc).__name__})
