"""The lock a gateway holds on its embedded database while it serves it.

One gateway process serves one SQLite file. The lock is an ``flock`` on ``<database>.gateway-lock``
(never on the database file itself: closing any other descriptor of that file would drop
SQLite's own POSIX locks). The kernel releases it when the process ends, even by ``kill -9``, so a
stale lock file is harmless. ``collabgate backup restore`` takes the same lock, so it cannot
replace a database under a running gateway, and a second gateway on the same data directory
stops at start-up instead of interleaving its writes and audit chain with the first one's.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path


class DatabaseInUseError(RuntimeError):
    """Another process (a gateway, or a restore) holds the database's lock."""


class DatabaseLock:
    """``acquire()`` or fail at once with :class:`DatabaseInUseError`; ``release()`` when done."""

    def __init__(self, database: Path) -> None:
        self.path = database.with_name(database.name + ".gateway-lock")
        self._descriptor: int | None = None

    @property
    def held(self) -> bool:
        return self._descriptor is not None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(descriptor, 32).decode(errors="replace").strip() or "unknown"
            os.close(descriptor)
            raise DatabaseInUseError(
                f"{self.path.with_suffix('')} is in use by another process (pid {holder})"
            ) from None
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"{os.getpid()}\n".encode())
        self._descriptor = descriptor

    def release(self) -> None:
        if self._descriptor is not None:
            with contextlib.suppress(OSError):
                os.close(self._descriptor)  # closing the descriptor drops the flock
            self._descriptor = None

    def __enter__(self) -> DatabaseLock:
        self.acquire()
        return self

    def __exit__(self, *_: object) -> None:
        self.release()
