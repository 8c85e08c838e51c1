"""Start and stop real gateway processes for end-to-end tests and benchmarks."""

from __future__ import annotations

import atexit
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from collabgate.auth.devkeys import DevKeys, ensure_dev_keys, mint_token

_LISTENING = re.compile(r"Uvicorn running on http://([\d.]+):(\d+)")

#: Every gateway started by this process. A test that fails (or skips) between ``start()`` and
#: its ``terminate()`` would otherwise leave its gateway running after pytest exits.
_STARTED: list[subprocess.Popen[str]] = []


@atexit.register
def _kill_leftovers() -> None:
    for process in _STARTED:
        if process.poll() is None:
            process.kill()
            process.wait(10)


@dataclass
class GatewayProcess:
    """One `collabgate serve` child process, with its log lines collected as they arrive."""

    data_dir: Path
    env: Mapping[str, str] = field(default_factory=dict)
    #: The interpreter that runs it (a benchmark may compare another one with collabgate installed).
    python: str = sys.executable
    port: int = 0
    process: subprocess.Popen[str] | None = None
    lines: list[str] = field(default_factory=list)
    _started: threading.Event = field(default_factory=threading.Event)
    _exited: threading.Event = field(default_factory=threading.Event)
    _new_line: threading.Condition = field(default_factory=threading.Condition)

    @property
    def keys(self) -> DevKeys:
        return ensure_dev_keys(self.data_dir / "dev-keys")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def token(self, sub: str, role: str = "nurse", ttl: int = 3600, **claims: object) -> str:
        return mint_token(
            self.keys, sub=sub, role=role, ttl_seconds=ttl, name=sub, extra_claims=claims or None
        )

    def start(self, timeout: float = 30.0) -> GatewayProcess:
        self.keys  # noqa: B018 - generate the key pair before the server reads it
        env = {
            **os.environ,
            "COLLABGATE_HOST": "127.0.0.1",
            "COLLABGATE_PORT": str(self.port),
            "COLLABGATE_DATA_DIR": str(self.data_dir),
            "COLLABGATE_DEV_KEYS": "true",
            **self.env,
        }
        self._started.clear()
        self._exited.clear()
        self.process = subprocess.Popen(
            [self.python, "-m", "collabgate", "serve"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        _STARTED[:] = [process for process in _STARTED if process.poll() is None]
        _STARTED.append(self.process)
        threading.Thread(target=self._collect, daemon=True).start()
        if not self._started.wait(timeout) or self._exited.is_set():
            self.kill()
            raise RuntimeError("gateway did not start:\n" + "\n".join(self.lines[-40:]))
        return self

    def _collect(self) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._new_line:
                self.lines.append(line.rstrip("\n"))
                self._new_line.notify_all()
            match = _LISTENING.search(line)
            if match:
                self.port = int(match.group(2))
                self._started.set()
        self._exited.set()
        self._started.set()

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait for the exit code; a gateway that has not exited by ``timeout`` is
        killed (and TimeoutExpired raised), so no stuck process outlives its test and skews the
        timings of every test after it."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        """SIGKILL: nothing gets flushed."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def logs_containing(self, text: str) -> list[str]:
        return [line for line in self.lines if text in line]

    def warnings(self, quiet: tuple[str, ...] = ("jwt_development_key_trusted",)) -> list[str]:
        """Its warning and error lines, but for the expected ones named in ``quiet``."""
        return [
            line
            for line in self.lines
            if ('"level":"warning"' in line or '"level":"error"' in line)
            and not any(name in line for name in quiet)
        ]

    def wait_for_log(self, text: str, timeout: float = 10.0) -> str:
        """Block until a log line containing ``text`` arrives (or was already there)."""
        with self._new_line:
            found = self._new_line.wait_for(lambda: self.logs_containing(text), timeout)
        if not found:
            raise TimeoutError(f"no log line containing {text!r} within {timeout} s")
        return found[0]
