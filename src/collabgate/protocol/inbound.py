"""Client → server frames: one dataclass per message type and :func:`parse_request`."""

from __future__ import annotations

import binascii
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from collabgate.errors import (
    GatewayError,
    InvalidMode,
    InvalidPayload,
    MessageTooLarge,
    MissingRequiredField,
    UnknownMessageType,
)
from collabgate.protocol.resource_ids import validate_resource_id

MAX_REF_LENGTH = 64
MAX_TARGET_LENGTH = 128
WHOLE_RESOURCE = "*"

Mode = Literal["editor", "viewer"]


@dataclass(frozen=True, slots=True)
class Heartbeat:
    ref: str | None


@dataclass(frozen=True, slots=True)
class JoinResource:
    ref: str | None
    resource_id: str
    mode: Mode
    resource_type: str | None


@dataclass(frozen=True, slots=True)
class LeaveResource:
    ref: str | None
    resource_id: str


@dataclass(frozen=True, slots=True)
class YUpdate:
    ref: str | None
    resource_id: str
    update: bytes


@dataclass(frozen=True, slots=True)
class Sync:
    ref: str | None
    resource_id: str
    state_vector: bytes


@dataclass(frozen=True, slots=True)
class LockAcquire:
    ref: str | None
    resource_id: str
    target: str
    ttl_ms: int | None


@dataclass(frozen=True, slots=True)
class LockExtend:
    ref: str | None
    resource_id: str
    target: str
    ttl_ms: int | None


@dataclass(frozen=True, slots=True)
class LockRelease:
    ref: str | None
    resource_id: str
    target: str


@dataclass(frozen=True, slots=True)
class Awareness:
    ref: str | None
    resource_id: str
    state: dict[str, Any]


Request = (
    Heartbeat
    | JoinResource
    | LeaveResource
    | YUpdate
    | Sync
    | LockAcquire
    | LockExtend
    | LockRelease
    | Awareness
)

#: Requests that name a resource (everything but HEARTBEAT).
ResourceRequest = (
    JoinResource
    | LeaveResource
    | YUpdate
    | Sync
    | LockAcquire
    | LockExtend
    | LockRelease
    | Awareness
)


def parse_request(frame: str | bytes, max_bytes: int) -> Request:
    """Parse one inbound frame.

    Raises the protocol error naming the problem; the error carries the frame's ``ref`` when the
    frame was readable far enough to have one.
    """
    data = _json_object(frame, max_bytes)
    ref = _ref(data)
    try:
        return _parse_fields(data, ref)
    except GatewayError as exc:
        exc.ref = ref
        raise


def ref_of(frame: str | bytes, max_bytes: int) -> str | None:
    """The frame's ``ref`` when it is a readable JSON object with a valid one, otherwise None.

    Never raises: for errors found before a frame is parsed (the rate limit), so that the
    client can still match the ERROR to the request it sent.
    """
    try:
        return _ref(_json_object(frame, max_bytes))
    except GatewayError:
        return None


def _json_object(frame: str | bytes, max_bytes: int) -> dict[str, Any]:
    if len(frame) > max_bytes:
        raise MessageTooLarge(f"frame of {len(frame)} bytes exceeds the limit of {max_bytes}")
    try:
        data = orjson.loads(frame)
    except orjson.JSONDecodeError as exc:
        raise InvalidPayload(f"frame is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidPayload("frame must be a JSON object")
    return data


def _ref(data: dict[str, Any]) -> str | None:
    ref = data.get("ref")
    if ref is None:
        return None
    if not isinstance(ref, str) or len(ref) > MAX_REF_LENGTH:
        raise InvalidPayload(f"ref must be a string of at most {MAX_REF_LENGTH} characters")
    return ref


def _parse_fields(data: dict[str, Any], ref: str | None) -> Request:
    kind = data.get("type")
    if kind is None:
        raise MissingRequiredField("type is required")
    if not isinstance(kind, str):
        raise InvalidPayload("type must be a string")
    parser = _PARSERS.get(kind)
    if parser is None:
        raise UnknownMessageType(f"unknown message type {kind[:40]!r}")
    return parser(data, ref)


def _required(data: dict[str, Any], field: str) -> Any:
    value = data.get(field)
    if value is None:
        raise MissingRequiredField(f"{field} is required")
    return value


def _resource_id(data: dict[str, Any]) -> str:
    return validate_resource_id(_required(data, "resourceId"))


def _base64(data: dict[str, Any], field: str) -> bytes:
    value = _required(data, field)
    if not isinstance(value, str):
        raise InvalidPayload(f"{field} must be a base64 string")
    try:
        return binascii.a2b_base64(value, strict_mode=True)
    except binascii.Error:
        raise InvalidPayload(f"{field} is not valid base64") from None


def _target(data: dict[str, Any]) -> str:
    target = data.get("target", WHOLE_RESOURCE)
    if target is None:
        return WHOLE_RESOURCE
    if (
        not isinstance(target, str)
        or not 0 < len(target) <= MAX_TARGET_LENGTH
        or not target.isprintable()
        or any(ch.isspace() for ch in target)
    ):
        raise InvalidPayload(
            f"target must be 1 to {MAX_TARGET_LENGTH} printable characters without whitespace"
        )
    return target


def _ttl_ms(data: dict[str, Any]) -> int | None:
    ttl = data.get("ttlMs")
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl <= 0:
        raise InvalidPayload("ttlMs must be a positive integer")
    return ttl


def _parse_heartbeat(data: dict[str, Any], ref: str | None) -> Request:
    return Heartbeat(ref)


def _parse_join(data: dict[str, Any], ref: str | None) -> Request:
    resource_id = _resource_id(data)
    mode = data.get("mode", "editor")
    if mode not in ("editor", "viewer"):
        raise InvalidMode("mode must be 'editor' or 'viewer'")
    resource_type = data.get("resourceType")
    if resource_type is not None and (
        not isinstance(resource_type, str) or len(resource_type) > 64
    ):
        raise InvalidPayload("resourceType must be a string of at most 64 characters")
    return JoinResource(ref, resource_id, mode, resource_type)


def _parse_leave(data: dict[str, Any], ref: str | None) -> Request:
    return LeaveResource(ref, _resource_id(data))


def _parse_update(data: dict[str, Any], ref: str | None) -> Request:
    resource_id = _resource_id(data)
    update = _base64(data, "update")
    if not update:
        raise InvalidPayload("update must not be empty")
    return YUpdate(ref, resource_id, update)


def _parse_sync(data: dict[str, Any], ref: str | None) -> Request:
    return Sync(ref, _resource_id(data), _base64(data, "stateVector"))


def _parse_lock_acquire(data: dict[str, Any], ref: str | None) -> Request:
    return LockAcquire(ref, _resource_id(data), _target(data), _ttl_ms(data))


def _parse_lock_extend(data: dict[str, Any], ref: str | None) -> Request:
    return LockExtend(ref, _resource_id(data), _target(data), _ttl_ms(data))


def _parse_lock_release(data: dict[str, Any], ref: str | None) -> Request:
    return LockRelease(ref, _resource_id(data), _target(data))


def _parse_awareness(data: dict[str, Any], ref: str | None) -> Request:
    resource_id = _resource_id(data)
    state = _required(data, "state")
    if not isinstance(state, dict):
        raise InvalidPayload("state must be a JSON object")
    return Awareness(ref, resource_id, state)


_PARSERS = {
    "HEARTBEAT": _parse_heartbeat,
    "JOIN_RESOURCE": _parse_join,
    "LEAVE_RESOURCE": _parse_leave,
    "Y_UPDATE": _parse_update,
    "SYNC": _parse_sync,
    "LOCK_ACQUIRE": _parse_lock_acquire,
    "LOCK_EXTEND": _parse_lock_extend,
    "LOCK_RELEASE": _parse_lock_release,
    "AWARENESS": _parse_awareness,
}
