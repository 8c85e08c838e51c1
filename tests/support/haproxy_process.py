"""Run the reference HAProxy configuration (deploy/haproxy/haproxy.cfg) in front of gateway
processes, on free loopback ports, as a child process of the test."""

from __future__ import annotations

import csv
import io
import os
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tools.monitoring.processes import free_port

REFERENCE_CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "haproxy" / "haproxy.cfg"


@dataclass
class HAProxyProcess:
    """``haproxy -db -f <config>`` with the config's parameters set through the environment:
    listener and stats page on free ports, one ``COLLABGATE_LB_SERVER<n>`` per backend address,
    plus ``env`` (e.g. short health-check intervals)."""

    binary: str
    servers: Sequence[str]
    workdir: Path
    env: Mapping[str, str] = field(default_factory=dict)
    config: Path = REFERENCE_CONFIG
    port: int = field(default_factory=free_port)
    stats_port: int = field(default_factory=free_port)
    process: subprocess.Popen[str] | None = None
    lines: list[str] = field(default_factory=list)

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def stats_url(self) -> str:
        return f"http://127.0.0.1:{self.stats_port}/stats;csv"

    def environment(self) -> dict[str, str]:
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "COLLABGATE_LB_BIND": f"127.0.0.1:{self.port}",
            "COLLABGATE_LB_STATS_BIND": f"127.0.0.1:{self.stats_port}",
            "COLLABGATE_LB_ADMIN_SOCKET": str(self.workdir / "admin.sock"),
            "COLLABGATE_LB_NO_PRIVDROP": "1",
            **self.env,
        }
        for n, address in enumerate(self.servers, start=1):
            env[f"COLLABGATE_LB_SERVER{n}"] = address
        return env

    def start(self, timeout: float = 15.0) -> HAProxyProcess:
        self.process = subprocess.Popen(
            [self.binary, "-db", "-f", str(self.config)],
            env=self.environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._collect, daemon=True).start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                self.stats()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("haproxy did not start:\n" + "\n".join(self.lines[-40:]))

    def _collect(self) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def stats(self) -> list[dict[str, str]]:
        """The rows of the stats page's CSV (one per frontend, server and backend)."""
        with urllib.request.urlopen(self.stats_url, timeout=5) as response:
            text = response.read().decode()
        return list(csv.DictReader(io.StringIO(text.removeprefix("# "))))

    def server_states(self, backend: str = "collabgate") -> dict[str, tuple[str, str]]:
        """``{server name: (status, last check status)}``, e.g. ``{"gw1": ("UP", "L7OK")}``.

        HAProxy prefixes the last status with ``* `` while the next check runs; left out here.
        """
        return {
            row["svname"]: (row["status"], row["check_status"].removeprefix("* "))
            for row in self.stats()
            if row["pxname"] == backend and row["svname"] not in ("FRONTEND", "BACKEND")
        }

    def backend(self, backend: str = "collabgate") -> dict[str, str]:
        """The backend's summary row: ``wretr`` (retries), ``wredis`` (redispatches) ..."""
        return next(
            row for row in self.stats() if row["pxname"] == backend and row["svname"] == "BACKEND"
        )

    def stop(self) -> None:
        """SIGTERM (HAProxy's hard stop: it closes every connection), SIGKILL if it lingers."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
