"""Durable file operations shared by the stores, the audit spool and backups."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def fsync_directory(directory: Path) -> None:
    """Make a file's creation, rename or removal in ``directory`` durable (its directory entry).

    Best effort: where a platform or filesystem cannot fsync a directory, the files' own fsyncs
    still apply.
    """
    with contextlib.suppress(OSError):
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
