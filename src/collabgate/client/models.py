"""Plain data the client returns: replies decoded into dataclasses, and the backoff schedule."""

from __future__ import annotations

import base64
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

#: One decoded frame, as the server sent it (a JSON object).
Frame = dict[str, Any]

Mode = Literal["editor", "viewer"]

#: What :meth:`pycrdt.Doc.get_update` returns when there is nothing to send.
EMPTY_UPDATE = b"\x00\x00"


@dataclass(frozen=True, slots=True)
class ResourceState:
    """The ``RESOURCE_STATE`` reply to a join.

    ``state`` is the whole document as one Y.js v1 update (already applied to the client's local
    document); ``users`` are ``{userId, name?, role, mode, joinedAt}`` objects, oldest first, and
    ``locks`` are ``{target, holder: {userId}, expiresAt}`` objects, both as the server sent them.
    """

    resource_id: str
    mode: str
    revision: int
    state: bytes
    users: list[dict[str, Any]]
    locks: list[dict[str, Any]]

    @classmethod
    def from_frame(cls, frame: Frame) -> ResourceState:
        return cls(
            resource_id=frame["resourceId"],
            mode=frame.get("mode", "editor"),
            revision=int(frame.get("revision", 0)),
            state=b64decode(frame.get("state", "")),
            users=list(frame.get("users", [])),
            locks=list(frame.get("locks", [])),
        )


@dataclass(frozen=True, slots=True)
class LockGrant:
    """A ``LOCK_ACQUIRED`` reply. ``expires_at`` is epoch milliseconds; ``fencing_token`` grows
    with every grant of the same (resource, target)."""

    resource_id: str
    target: str
    lock_id: str
    fencing_token: int
    expires_at: int
    granted: Literal[True] = True

    @classmethod
    def from_frame(cls, frame: Frame) -> LockGrant:
        return cls(
            resource_id=frame["resourceId"],
            target=frame["target"],
            lock_id=frame["lockId"],
            fencing_token=int(frame["fencingToken"]),
            expires_at=int(frame["expiresAt"]),
        )


@dataclass(frozen=True, slots=True)
class LockDenial:
    """A ``LOCK_DENIED`` reply: someone else (``holder_user_id``) holds a conflicting lock until
    ``expires_at`` (epoch milliseconds). ``reason`` is the server's, e.g. ``"held_by_other"``."""

    resource_id: str
    target: str
    reason: str
    holder_user_id: str
    expires_at: int
    granted: Literal[False] = False

    @classmethod
    def from_frame(cls, frame: Frame) -> LockDenial:
        holder = frame.get("holder") or {}
        return cls(
            resource_id=frame["resourceId"],
            target=frame["target"],
            reason=str(frame.get("reason", "")),
            holder_user_id=str(holder.get("userId", "")),
            expires_at=int(frame.get("expiresAt", 0)),
        )


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64decode(text: str) -> bytes:
    return base64.b64decode(text)


def backoff_delay(
    attempt: int,
    *,
    initial: float,
    maximum: float,
    jitter: float = 0.5,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before reconnect attempt number ``attempt`` (0 for the first).

    The nominal delay doubles from ``initial`` and is capped at ``maximum``:
    ``d = min(maximum, initial * 2**attempt)``. Jitter then takes a random part of it away:
    the delay is uniform in ``[d * (1 - jitter), d]``. With the default ``jitter=0.5`` the
    ranges of consecutive attempts touch but do not overlap, so delays never shrink from one
    attempt to the next until the cap is reached; ``jitter=0`` makes the schedule exact.
    """
    nominal = min(maximum, initial * (2.0 ** min(attempt, 62)))
    return nominal * (1.0 - jitter * rand())
