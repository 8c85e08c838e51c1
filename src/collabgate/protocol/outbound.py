"""Server → client frames.

Each builder returns the frame as a ``dict``; :func:`encode` turns it into the text sent on the
wire. Frames that go to many recipients are encoded once and the same text is sent to each.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson

from collabgate.errors import GatewayError

Frame = dict[str, Any]


def encode(frame: Frame) -> str:
    return orjson.dumps(frame).decode()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _with_ref(frame: Frame, ref: str | None) -> Frame:
    if ref is not None:
        frame["ref"] = ref
    return frame


def connected(*, connection_id: str, user: Frame, server_time: int, heartbeat_ms: int) -> Frame:
    return {
        "type": "CONNECTED",
        "connectionId": connection_id,
        "user": user,
        "serverTime": server_time,
        "heartbeatIntervalMs": heartbeat_ms,
        "protocolVersion": 1,
    }


def error(exc: GatewayError, ref: str | None = None) -> Frame:
    # `type` is already the frame type, so the error's type name travels as `errorType`.
    frame = {"type": "ERROR", "code": exc.code, "errorType": exc.type, "message": exc.message}
    return _with_ref(frame, ref if ref is not None else exc.ref)


def heartbeat_ack(ref: str | None, server_time: int) -> Frame:
    return _with_ref({"type": "HEARTBEAT_ACK", "serverTime": server_time}, ref)


def resource_state(
    ref: str | None,
    *,
    resource_id: str,
    mode: str,
    revision: int,
    state: bytes,
    users: list[Frame],
    locks: list[Frame],
) -> Frame:
    return _with_ref(
        {
            "type": "RESOURCE_STATE",
            "resourceId": resource_id,
            "mode": mode,
            "revision": revision,
            "state": b64(state),
            "users": users,
            "locks": locks,
        },
        ref,
    )


def resource_left(ref: str | None, resource_id: str) -> Frame:
    return _with_ref({"type": "RESOURCE_LEFT", "resourceId": resource_id}, ref)


def user_joined(resource_id: str, user: Frame) -> Frame:
    return {"type": "USER_JOINED", "resourceId": resource_id, "user": user}


def user_left(resource_id: str, user_id: str, reason: str) -> Frame:
    return {"type": "USER_LEFT", "resourceId": resource_id, "userId": user_id, "reason": reason}


def y_update_ack(ref: str | None, resource_id: str, revision: int) -> Frame:
    return _with_ref({"type": "Y_UPDATE_ACK", "resourceId": resource_id, "revision": revision}, ref)


def y_update(resource_id: str, update: bytes, revision: int, user_id: str | None) -> Frame:
    return {
        "type": "Y_UPDATE",
        "resourceId": resource_id,
        "update": b64(update),
        "revision": revision,
        "userId": user_id,
    }


def sync_reply(ref: str | None, resource_id: str, update: bytes, revision: int) -> Frame:
    return _with_ref(
        {
            "type": "SYNC_REPLY",
            "resourceId": resource_id,
            "update": b64(update),
            "revision": revision,
        },
        ref,
    )


def lock_acquired(
    ref: str | None,
    *,
    resource_id: str,
    target: str,
    lock_id: str,
    fencing_token: int,
    expires_at: int,
) -> Frame:
    return _with_ref(
        {
            "type": "LOCK_ACQUIRED",
            "resourceId": resource_id,
            "target": target,
            "lockId": lock_id,
            "fencingToken": fencing_token,
            "expiresAt": expires_at,
        },
        ref,
    )


def lock_denied(
    ref: str | None,
    *,
    resource_id: str,
    target: str,
    reason: str,
    holder_user_id: str,
    expires_at: int,
) -> Frame:
    return _with_ref(
        {
            "type": "LOCK_DENIED",
            "resourceId": resource_id,
            "target": target,
            "reason": reason,
            "holder": {"userId": holder_user_id},
            "expiresAt": expires_at,
        },
        ref,
    )


def lock_extended(ref: str | None, resource_id: str, target: str, expires_at: int) -> Frame:
    return _with_ref(
        {
            "type": "LOCK_EXTENDED",
            "resourceId": resource_id,
            "target": target,
            "expiresAt": expires_at,
        },
        ref,
    )


def lock_released(ref: str | None, resource_id: str, target: str) -> Frame:
    return _with_ref({"type": "LOCK_RELEASED", "resourceId": resource_id, "target": target}, ref)


def lock_status_locked(
    resource_id: str, target: str, holder_user_id: str, expires_at: int
) -> Frame:
    return {
        "type": "LOCK_STATUS_CHANGED",
        "resourceId": resource_id,
        "target": target,
        "locked": True,
        "holder": {"userId": holder_user_id},
        "expiresAt": expires_at,
    }


def lock_status_unlocked(resource_id: str, target: str, holder_user_id: str, reason: str) -> Frame:
    return {
        "type": "LOCK_STATUS_CHANGED",
        "resourceId": resource_id,
        "target": target,
        "locked": False,
        "holder": {"userId": holder_user_id},
        "reason": reason,
    }


def awareness(resource_id: str, user_id: str, state: dict[str, Any]) -> Frame:
    return {"type": "AWARENESS", "resourceId": resource_id, "userId": user_id, "state": state}


def server_shutdown(reconnect_after_ms: int) -> Frame:
    return {"type": "SERVER_SHUTDOWN", "reconnectAfterMs": reconnect_after_ms}
