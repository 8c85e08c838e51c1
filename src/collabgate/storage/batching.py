"""What the group-commit writers of both databases share."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeVar

W = TypeVar("W")


def consecutive_runs(batch: list[W], kind: Callable[[W], object]) -> Iterator[list[W]]:
    """Split ``batch`` into runs of consecutive writes of one ``kind``, keeping their order.

    Writes of one kind queued back to back are stored together by one bulk operation; the order
    between kinds is kept, so a write never overtakes one queued before it.
    """
    start = 0
    for index in range(1, len(batch) + 1):
        if index == len(batch) or kind(batch[index]) != kind(batch[start]):
            yield batch[start:index]
            start = index
