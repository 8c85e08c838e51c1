"""Start and stop the monitoring daemons as child processes, each in its own process group."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from tools.monitoring import ALERTMANAGER, POSTGRES_EXPORTER, PROMETHEUS, REDIS_EXPORTER
from tools.monitoring.wait import Timeout, poll_until


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def which(binary: str) -> str | None:
    return shutil.which(binary)


@dataclass
class Daemon:
    """One long-running child process, logging to a file.

    It is ready when ``ready_url`` answers 200, or when ``probe()`` returns True.
    """

    name: str
    argv: Sequence[str]
    log_path: Path
    ready_url: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    probe: Callable[[], bool] | None = None
    process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> Daemon:
        """Launch and wait until ready."""
        return self.launch().wait_ready(timeout)

    def launch(self) -> Daemon:
        """Start the process without waiting for it (see :meth:`wait_ready`)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                list(self.argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
                start_new_session=True,  # its own process group: stop() ends it and its children
            )
        return self

    def wait_ready(self, timeout: float = 30.0) -> Daemon:
        """Poll until ready; stop the daemon and raise if it never gets there."""
        if self.ready_url is not None or self.probe is not None:
            try:
                poll_until(
                    self._ready,
                    timeout=timeout,
                    interval=0.1,
                    what=f"{self.name} to be ready",
                )
            except Timeout as exc:
                self.stop()
                raise RuntimeError(
                    f"{self.name} did not become ready: {exc}\n{self.log_tail()}"
                ) from exc
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(
                f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}"
            )
        if self.probe is not None:
            return self.probe()
        assert self.ready_url is not None
        return httpx.get(self.ready_url, timeout=1.0).status_code == 200

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM to the daemon's process group, SIGKILL if it is still there after ``timeout``."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


# ----------------------------------------------------------------------------- the daemons
def prometheus(
    config: Path, data_dir: Path, port: int, log: Path, resend_delay: str = "1m"
) -> Daemon:
    return Daemon(
        "prometheus",
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={data_dir}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=2d",
            "--web.enable-lifecycle",
            f"--rules.alert.resend-delay={resend_delay}",
            "--log.level=warn",
        ],
        log,
        ready_url=f"http://127.0.0.1:{port}/-/ready",
    )


def alertmanager(config: Path, data_dir: Path, port: int, log: Path) -> Daemon:
    return Daemon(
        "alertmanager",
        [
            ALERTMANAGER,
            f"--config.file={config}",
            f"--storage.path={data_dir}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",  # no gossip: a single, private instance
            "--log.level=warn",
        ],
        log,
        ready_url=f"http://127.0.0.1:{port}/-/ready",
    )


def redis_exporter(redis_addr: str, port: int, log: Path) -> Daemon:
    return Daemon(
        "redis-exporter",
        [
            REDIS_EXPORTER,
            f"-redis.addr={redis_addr}",
            f"-web.listen-address=127.0.0.1:{port}",
            "-connection-timeout=2s",
        ],
        log,
        ready_url=f"http://127.0.0.1:{port}/metrics",
    )


def postgres_exporter(dsn: str, port: int, log: Path) -> Daemon:
    return Daemon(
        "postgres-exporter",
        [POSTGRES_EXPORTER, f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        log,
        ready_url=f"http://127.0.0.1:{port}/metrics",
        env={"DATA_SOURCE_NAME": dsn},
    )
