"""The SQLite writer thread's CPU priority (``COLLABGATE_SQLITE_WRITER_NICE``).

The niceness is read from inside the writer thread by a write operation, so what is checked is
the thread that commits, as the kernel sees it; the event loop's thread must keep its own.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import threading
from pathlib import Path

import pytest

from collabgate.storage.sqlite import SqliteDatabase

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="a thread's own niceness is a Linux feature"
)


def own_niceness(_: sqlite3.Connection | None = None) -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


async def test_the_writer_thread_runs_at_the_configured_niceness(tmp_path: Path) -> None:
    loop_niceness = own_niceness()
    database = SqliteDatabase(tmp_path / "nice.sqlite3", writer_nice=7)
    await database.open()
    try:
        assert await database.write(own_niceness) == min(loop_niceness + 7, 19)
        assert own_niceness() == loop_niceness, "the event loop's thread was lowered too"
    finally:
        await database.close()


async def test_by_default_the_writer_thread_keeps_the_process_niceness(tmp_path: Path) -> None:
    database = SqliteDatabase(tmp_path / "default.sqlite3")
    await database.open()
    try:
        assert await database.write(own_niceness) == own_niceness()
    finally:
        await database.close()


@pytest.mark.parametrize("nice", [-1, 20])
def test_a_niceness_outside_0_to_19_is_refused(tmp_path: Path, nice: int) -> None:
    with pytest.raises(ValueError, match="writer_nice must be between 0 and 19"):
        SqliteDatabase(tmp_path / "refused.sqlite3", writer_nice=nice)
