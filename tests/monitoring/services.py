"""Backing services the live monitoring test starts for itself, on free loopback ports.

Never the machine's own services: the Redis test stops its Redis on purpose, and RabbitMQ's
metrics need the rabbitmq_prometheus plugin, which we do not enable on the shared broker. The
PostgreSQL exporter only reads statistics, so it watches the machine's PostgreSQL.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import httpx
from tools.monitoring.processes import Daemon, free_port

RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"  # Debian's, without the su wrapper
POSTGRES_DSN = os.environ.get(
    "COLLABGATE_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres?sslmode=disable"
)


def tcp_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def redis_ping(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(16).startswith(b"+PONG")


def redis_server(workdir: Path, port: int) -> Daemon:
    """A throwaway redis-server: no persistence, loopback only, its own port."""
    workdir.mkdir(parents=True, exist_ok=True)
    return Daemon(
        "redis-server",
        [
            "redis-server",
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--dir", str(workdir),
        ],
        workdir / "redis.log",
        probe=lambda: redis_ping(port),
    )  # fmt: skip


class RabbitMQNode:
    """A private RabbitMQ node (its own name, ports, Mnesia dir and cookie) with rabbitmq_prometheus."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.amqp_port = free_port()
        self.dist_port = free_port()
        self.prometheus_port = free_port()
        self.nodename = f"collabgate-monitoring-{os.getpid()}@localhost"
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "enabled_plugins").write_text("[rabbitmq_prometheus].\n")
        (workdir / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = 127.0.0.1:{self.amqp_port}\n"
            f"prometheus.tcp.port = {self.prometheus_port}\n"
            "prometheus.tcp.ip = 127.0.0.1\n"
        )
        self.daemon = Daemon(
            "rabbitmq",
            [RABBITMQ_SERVER],
            workdir / "rabbitmq.out",
            env={
                "HOME": str(workdir),  # its own Erlang cookie
                "RABBITMQ_NODENAME": self.nodename,
                "RABBITMQ_DIST_PORT": str(self.dist_port),
                "RABBITMQ_MNESIA_BASE": str(workdir / "mnesia"),
                "RABBITMQ_LOG_BASE": str(workdir / "log"),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(workdir / "enabled_plugins"),
                "RABBITMQ_CONFIG_FILE": str(workdir / "rabbitmq.conf"),
                "RABBITMQ_PLUGINS_EXPAND_DIR": str(workdir / "plugins-expand"),
                "RABBITMQ_PID_FILE": str(workdir / "rabbitmq.pid"),
            },
            probe=self._ready,
        )

    @property
    def metrics_target(self) -> str:
        return f"127.0.0.1:{self.prometheus_port}"

    def _ready(self) -> bool:
        if not tcp_open(self.amqp_port):
            return False
        return httpx.get(f"http://{self.metrics_target}/metrics", timeout=2.0).status_code == 200
