"""The lock a gateway holds on its embedded database (collabgate.storage.lockfile)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from collabgate.storage.lockfile import DatabaseInUseError, DatabaseLock


def test_one_holder_at_a_time_named_by_pid_and_free_once_released(tmp_path: Path) -> None:
    database = tmp_path / "collabgate.sqlite3"
    first, second = DatabaseLock(database), DatabaseLock(database)
    with first:
        assert first.held
        with pytest.raises(
            DatabaseInUseError, match=rf"in use by another process \(pid {os.getpid()}\)"
        ):
            second.acquire()
        assert not second.held
    assert not first.held
    with second:  # released: the next holder gets it
        assert second.held
    assert first.path == tmp_path / "collabgate.sqlite3.gateway-lock"
    assert not database.exists()  # the lock never touches the database file itself
