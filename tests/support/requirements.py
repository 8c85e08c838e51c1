"""What a test needs from the machine: fail under CI=true, skip elsewhere, when it is missing.

In CI a missing service or tool is a broken set-up, never a pass; on a developer's machine a
test that cannot run says why and is skipped.
"""

from __future__ import annotations

import os
import shutil
import socket
from typing import NoReturn

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def unavailable(message: str) -> NoReturn:
    """Stop the test: a failure in CI, a skip elsewhere, with ``message`` saying what is missing."""
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def require(condition: bool, message: str) -> None:
    if not condition:
        unavailable(message)


def require_binary(program: str, hint: str = "`make test-setup` installs it") -> str:
    """The path of ``program`` (a name on PATH or an absolute path)."""
    if "/" in program:
        found = program if os.access(program, os.X_OK) else None
    else:
        found = shutil.which(program)
    if found is None:
        unavailable(f"{program} is not installed ({hint})")
    return found


def require_service(name: str, host: str, port: int) -> None:
    """A TCP service the test talks to must be listening."""
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError:
        unavailable(f"{name} is not reachable on {host}:{port}")
