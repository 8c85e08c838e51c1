"""Private backing services for fault tests: a redis-server, a RabbitMQ node and a PostgreSQL
cluster of the test's own, on free loopback ports, which the test may stop and start at will.

Never the machine's own services (6379/5672/5432): a fault test stops its service on purpose.
Each service can be stopped and started again on the same port and data directory. When the
binary is missing the test skips, except under ``CI=true`` where that is a failure.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tools.monitoring.processes import Daemon, free_port

from tests.support.requirements import require_binary

RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"  # Debian's, without the su wrapper
POSTGRES_BIN = Path(os.environ.get("COLLABGATE_TEST_POSTGRES_BIN", "/usr/lib/postgresql/15/bin"))


def tcp_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_until(predicate, timeout: float, what: str, interval: float = 0.1) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if predicate():
                return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")


# --- Redis ---------------------------------------------------------------------------------------


def _redis_ping(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(16).startswith(b"+PONG")


class PrivateRedis:
    """A throwaway redis-server: no persistence, loopback only, its own port (kept on restart)."""

    def __init__(self, workdir: Path) -> None:
        self.binary = require_binary("redis-server")
        self.workdir = workdir
        self.port = free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        self.daemon = Daemon(
            "redis-server",
            [
                self.binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--daemonize", "no",
                "--dir", str(workdir),
            ],
            workdir / "redis.log",
            probe=lambda: _redis_ping(self.port),
        )  # fmt: skip

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 20.0) -> PrivateRedis:
        self.daemon.start(timeout)
        return self

    def stop(self) -> None:
        self.daemon.stop()
        wait_until(lambda: not tcp_open(self.port), 10, "redis to stop listening")


# --- RabbitMQ ------------------------------------------------------------------------------------


class PrivateRabbitMQ:
    """A private RabbitMQ node: its own node name, AMQP and distribution ports, Mnesia, logs and
    Erlang cookie (HOME). It registers with the machine's epmd under its own name."""

    def __init__(self, workdir: Path) -> None:
        self.binary = require_binary(RABBITMQ_SERVER)
        self.workdir = workdir
        self.amqp_port = free_port()
        self.dist_port = free_port()
        self.nodename = f"collabgate-faults-{os.getpid()}-{self.amqp_port}@localhost"
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "enabled_plugins").write_text("[].\n")
        (workdir / "rabbitmq.conf").write_text(f"listeners.tcp.1 = 127.0.0.1:{self.amqp_port}\n")
        self.daemon = Daemon(
            "rabbitmq",
            [self.binary],
            workdir / "rabbitmq.out",
            env={
                "HOME": str(workdir),
                "RABBITMQ_NODENAME": self.nodename,
                "RABBITMQ_NODE_PORT": str(self.amqp_port),
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
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/"

    def _ready(self) -> bool:
        return tcp_open(self.amqp_port)

    def start(self, timeout: float = 60.0) -> PrivateRabbitMQ:
        self.daemon.start(timeout)
        return self

    def stop(self) -> None:
        self.daemon.stop(timeout=30)
        wait_until(lambda: not tcp_open(self.amqp_port), 15, "RabbitMQ to stop listening")


# --- PostgreSQL ----------------------------------------------------------------------------------


class PrivatePostgres:
    """A private PostgreSQL cluster (initdb into a temp dir owned by the ``postgres`` OS user, as
    initdb refuses root), trust auth, loopback only, its own port and socket directory."""

    def __init__(self) -> None:
        self.initdb = require_binary(str(POSTGRES_BIN / "initdb"))
        self.pg_ctl = require_binary(str(POSTGRES_BIN / "pg_ctl"))
        self.port = free_port()
        # Not under pytest's tmp_path: that is 0700 root, and the server runs as postgres.
        self.root = Path(tempfile.mkdtemp(prefix="collabgate-pg-"))
        self.datadir = self.root / "data"
        self.sockdir = self.root / "sock"
        self.sockdir.mkdir()
        self.logfile = self.root / "postgres.log"
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            user = pwd.getpwnam("postgres")
            for path in (self.root, self.sockdir):
                os.chown(path, user.pw_uid, user.pw_gid)
        self.initialised = False

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *argv: str, timeout: float = 60.0) -> None:
        command = ["runuser", "-u", "postgres", "--", *argv] if self._as_postgres else list(argv)
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
                + (self.logfile.read_text()[-3000:] if self.logfile.exists() else "")
            )

    def start(self, timeout: float = 60.0) -> PrivatePostgres:
        if not self.initialised:
            self._run(
                self.initdb, "-D", str(self.datadir), "-U", "postgres", "--auth=trust",
                "--no-sync", "-E", "UTF8",
            )  # fmt: skip
            self.initialised = True
        self._run(
            self.pg_ctl, "-D", str(self.datadir), "-l", str(self.logfile), "-w",
            "-t", str(int(timeout)),
            "-o", f"-p {self.port} -k {self.sockdir} -c listen_addresses=127.0.0.1 -c fsync=off",
            "start",
        )  # fmt: skip
        return self

    def stop(self) -> None:
        if self.initialised and (self.datadir / "postmaster.pid").exists():
            self._run(self.pg_ctl, "-D", str(self.datadir), "-m", "fast", "-w", "stop")

    def cleanup(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
