"""Run the Node side of the interop and browser tests: tool checks and the stock-Yjs driver.

Tests that need Node, the pinned npm packages (``make test-setup`` runs ``npm ci`` here) or
Debian's chromium FAIL in CI (``CI=true``) when one is missing, and are skipped elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import shutil
from pathlib import Path
from typing import Any

import orjson

from tests.support.requirements import require

HERE = Path(__file__).resolve().parent
NODE_MODULES = HERE / "node_modules"
CHROMIUM = Path("/usr/bin/chromium")


def node_binary() -> str:
    node = shutil.which("node")
    require(node is not None, "node is not installed (Node 20+ is needed for tests/interop)")
    assert node is not None
    require(
        (NODE_MODULES / "yjs").is_dir() and (NODE_MODULES / "y-websocket").is_dir(),
        "tests/interop/node_modules is missing: run `make test-setup` (npm ci)",
    )
    return node


class NodePeers:
    """``yjs-peers.mjs``: stock WebsocketProviders, one JSON request and reply per line."""

    def __init__(self, process: asyncio.subprocess.Process, versions: dict[str, str]) -> None:
        self._process = process
        self.versions = versions
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def start(cls) -> NodePeers:
        process = await asyncio.create_subprocess_exec(
            node_binary(),
            str(HERE / "yjs-peers.mjs"),
            cwd=HERE,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=2**24,
        )
        assert process.stdout is not None
        first = await asyncio.wait_for(process.stdout.readline(), 20)
        hello = orjson.loads(first)
        assert hello.get("ready"), hello
        return cls(process, hello["versions"])

    async def call(self, op: str, **fields: Any) -> dict[str, Any]:
        """Run one operation; raise AssertionError with the driver's message when it fails."""
        assert self._process.stdin is not None
        request_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        self._process.stdin.write(orjson.dumps({"id": request_id, "op": op, **fields}) + b"\n")
        await self._process.stdin.drain()
        reply = await asyncio.wait_for(future, 30)
        assert reply["ok"], f"{op} {fields.get('peer', '')}: {reply.get('error')}"
        return reply

    async def _read(self) -> None:
        assert self._process.stdout is not None
        async for line in self._process.stdout:
            reply = orjson.loads(line)
            future = self._waiting.pop(reply.get("id"), None)
            if future is not None and not future.done():
                future.set_result(reply)
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(AssertionError("the Node driver exited"))

    async def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            await asyncio.wait_for(self._process.wait(), 10)
        except TimeoutError:
            self._process.kill()
            await self._process.wait()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
