"""Steady, realistic traffic against a gateway, from a thread with its own event loop.

Three clinicians (collabgate.client.CollabClient) share a patient chart and a surgery report:
heartbeats at a fixed rate, and every couple of seconds a cycle of edits (Y_UPDATE), awareness,
a lock contention (one grant, one denial, one grant after release) and a readiness probe like the
load balancer's. ``error_ratio`` (settable at any time) turns that share of the messages into
frames of an unknown type, which the gateway answers with ERROR WS_3003.

The live tests stay synchronous and poll Prometheus; the traffic keeps running in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

import httpx
import websockets
from pycrdt import Doc, Text

from collabgate.client import CollabClient, CollabClientError
from tests.support.gateway_process import GatewayProcess

CHART = "patient:monitoring-1"
REPORT = "surgery:monitoring-2/report:op-note"


def _append(text: str) -> Any:
    def change(doc: Doc[Any]) -> None:
        content: Text = doc.get("content", type=Text)
        content += text

    return change


class Traffic(threading.Thread):
    def __init__(self, gateway: GatewayProcess, rate: float = 25.0, cycle_every: int = 50) -> None:
        super().__init__(name="traffic", daemon=True)
        self.gateway = gateway
        self.rate = rate
        self.cycle_every = cycle_every
        self._error_ratio = 0.0
        self._phase_sent = 0  # messages and errors since error_ratio was last set
        self._phase_errors = 0
        self.sent = 0
        self.errors_sent = 0
        self.failures = 0  # requests that failed other than by the intended ERROR
        self.cycles = 0
        self.ready = threading.Event()
        self.exception: BaseException | None = None
        self._stopping = threading.Event()

    @property
    def error_ratio(self) -> float:
        """Share of messages sent as unknown types (ERROR WS_3003) from now on."""
        return self._error_ratio

    @error_ratio.setter
    def error_ratio(self, ratio: float) -> None:
        self._phase_sent = self._phase_errors = 0
        self._error_ratio = ratio

    # ------------------------------------------------------------------ thread control
    def run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # surfaced to the test through .exception
            self.exception = exc
        finally:
            self.ready.set()

    def stop(self) -> None:
        self._stopping.set()
        self.join(30)

    def wait_ready(self, timeout: float = 60.0) -> None:
        if not self.ready.wait(timeout):
            raise TimeoutError("traffic did not start")
        if self.exception is not None:
            raise RuntimeError("traffic failed to start") from self.exception

    # ------------------------------------------------------------------ the traffic
    def _client(self, sub: str, role: str) -> CollabClient:
        return CollabClient(
            self.gateway.ws_url,
            self.gateway.token(sub, role),
            reconnect=True,
            heartbeat_interval=None,  # we send our own, counted
            max_queued_events=0,
            history_size=0,
        )

    async def _main(self) -> None:
        alice = self._client("monitoring-alice", "nurse")
        bob = self._client("monitoring-bob", "surgeon")
        carol = self._client("monitoring-carol", "viewer")
        clients = [alice, bob, carol]
        async with httpx.AsyncClient(base_url=self.gateway.base_url, timeout=5.0) as http:
            for client in clients:
                await client.connect()
            try:
                await alice.join(CHART, resource_type="patient")
                await bob.join(CHART, resource_type="patient")
                await bob.join(REPORT, resource_type="surgery")
                await carol.join(CHART, mode="viewer", resource_type="patient")
                await self._one_offs(bob)
                await self._cycle(alice, bob, carol, http)
                self.ready.set()
                await self._steady(alice, bob, carol, http)
            finally:
                for client in clients:
                    with contextlib.suppress(Exception):
                        await client.close()

    async def _one_offs(self, bob: CollabClient) -> None:
        """What steady traffic never does: a refused handshake, a closed connection, a SYNC."""
        with contextlib.suppress(websockets.exceptions.WebSocketException, OSError):
            async with websockets.connect(self.gateway.ws_url) as ws:  # no token: WS_2001
                await asyncio.wait_for(ws.recv(), 5)
                await asyncio.wait_for(ws.recv(), 5)
        dave = self._client("monitoring-dave", "nurse")
        await dave.connect()
        await dave.join(REPORT, resource_type="surgery")
        await dave.close()
        await bob.sync(REPORT)

    async def _cycle(
        self, alice: CollabClient, bob: CollabClient, carol: CollabClient, http: httpx.AsyncClient
    ) -> None:
        await alice.edit(CHART, _append("BP 120/80; "))
        await bob.edit(REPORT, _append("incision closed; "))
        await carol.awareness(CHART, {"cursor": self.cycles})
        await alice.acquire_lock(CHART, "vitals", ttl_ms=30_000)  # granted
        await bob.acquire_lock(CHART, "vitals", ttl_ms=30_000)  # denied: held by alice
        await alice.release_lock(CHART, "vitals")
        await bob.acquire_lock(CHART, "vitals", ttl_ms=30_000)  # granted
        await bob.release_lock(CHART, "vitals")
        await http.get("/ready")  # as the load balancer's health check does
        self.sent += 8
        self.cycles += 1

    async def _steady(
        self, alice: CollabClient, bob: CollabClient, carol: CollabClient, http: httpx.AsyncClient
    ) -> None:
        interval = 1.0 / self.rate
        senders = [alice, bob, carol]
        n = 0
        while not self._stopping.is_set():
            client = senders[n % len(senders)]
            n += 1
            try:
                self._phase_sent += 1
                self.sent += 1
                if self._phase_errors < self._error_ratio * self._phase_sent:
                    self._phase_errors += 1
                    self.errors_sent += 1
                    with contextlib.suppress(CollabClientError):
                        async with asyncio.timeout(5):
                            await client.request({"type": "MONITORING_PROBE_UNKNOWN"})
                else:
                    await client.heartbeat()
                if n % self.cycle_every == 0:
                    await self._cycle(alice, bob, carol, http)
            except (CollabClientError, httpx.HTTPError, OSError, TimeoutError):
                self.failures += 1  # e.g. a dependency down; keep the traffic going
            await asyncio.sleep(interval)  # pacing of the traffic, not synchronisation
