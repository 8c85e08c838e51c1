"""Waiting for a condition by polling, with a deadline (never a fixed sleep)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class Timeout(AssertionError):
    """The condition did not hold before the deadline."""


def poll_until(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = 0.25,
    what: str = "condition",
) -> T:
    """Call ``probe`` every ``interval`` seconds until it returns a truthy value; return it.

    Exceptions raised by the probe (a server not listening yet) count as "not yet". After
    ``timeout`` seconds, raise :class:`Timeout` naming ``what`` and the last error seen.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            result = probe()
        except Exception as exc:
            last_error = exc
        else:
            if result:
                return result
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise Timeout(f"timed out after {timeout:g} s waiting for {what}{detail}")
        time.sleep(interval)
