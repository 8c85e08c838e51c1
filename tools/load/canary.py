"""A canary: one extra connection, outside the load generator, timing HEARTBEAT round trips.

Artillery's latencies include the load generator's own pauses. The canary runs in the runner's
process (not Artillery's), sends a HEARTBEAT five times a second and times each reply, so the
report can tell a slow gateway (the canary slows down too) from a stalled generator (the canary
stays fast while Artillery's figures climb).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from pathlib import Path

import jwt
from websockets.sync.client import ClientConnection, connect

from collabgate.auth.devkeys import ec_thumbprint, load_dev_private_key

INTERVAL_SECONDS = 0.2
REPLY_TIMEOUT_SECONDS = 5.0


def canary_token(key_file: Path, issuer: str | None = None, audience: str | None = None) -> str:
    """An ES256 token for the canary user, signed with the key the load users' tokens use."""
    key = load_dev_private_key(key_file)
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": "load-canary",
        "name": "load canary",
        "role": "viewer",
        "iat": now,
        "exp": now + 24 * 3600,
    }
    if issuer:
        claims["iss"] = issuer
    if audience:
        claims["aud"] = audience
    return jwt.encode(
        claims, key, algorithm="ES256", headers={"kid": ec_thumbprint(key.public_key())}
    )


class Canary(threading.Thread):
    def __init__(self, ws_url: str, token: str) -> None:
        super().__init__(daemon=True, name="load-canary")
        self.ws_url = ws_url
        self.token = token
        self.failures = 0
        #: True while the canary's own connection is open (the gateway's gauge counts it).
        self.connected = False
        self._window: list[float] = []
        self._lock = threading.Lock()
        self._stop_event = threading.Event()

    def take_window(self) -> dict[str, float]:
        """Round trips since the last call: worst, median and count (for one sample)."""
        with self._lock:
            window, self._window = self._window, []
            failures, self.failures = self.failures, 0
        result: dict[str, float] = {"canary_failures": failures}
        if window:
            ordered = sorted(window)
            result["canary_rtt_max_ms"] = round(ordered[-1], 2)
            result["canary_rtt_p50_ms"] = round(ordered[len(ordered) // 2], 2)
        return result

    def stop(self) -> None:
        self._stop_event.set()
        self.join(REPLY_TIMEOUT_SECONDS + 5)

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                with connect(
                    self.ws_url,
                    additional_headers={"Authorization": f"Bearer {self.token}"},
                    compression=None,
                    ping_interval=None,
                    proxy=None,
                    open_timeout=REPLY_TIMEOUT_SECONDS,
                ) as ws:
                    ws.recv(timeout=REPLY_TIMEOUT_SECONDS)  # CONNECTED
                    self.connected = True
                    try:
                        self._beat(ws)
                    finally:
                        self.connected = False
            except Exception:  # refused, dropped, timed out: counted, then try again
                with self._lock:
                    self.failures += 1
                self._stop_event.wait(1.0)

    def _beat(self, ws: ClientConnection) -> None:
        ref = 0
        next_at = time.monotonic()
        while not self._stop_event.is_set():
            ref += 1
            started = time.perf_counter()
            ws.send(json.dumps({"type": "HEARTBEAT", "ref": str(ref)}))
            while True:
                frame = json.loads(ws.recv(timeout=REPLY_TIMEOUT_SECONDS))
                if frame.get("ref") == str(ref):
                    break
            with self._lock:
                self._window.append((time.perf_counter() - started) * 1000)
            next_at += INTERVAL_SECONDS
            self._stop_event.wait(max(0.0, next_at - time.monotonic()))
        with contextlib.suppress(Exception):
            ws.close()
