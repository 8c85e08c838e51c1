"""The sans-I/O protocol layer: every inbound message, every validation error."""

from __future__ import annotations

import base64

import orjson
import pytest

from collabgate import errors
from collabgate.protocol import inbound, outbound, parse_request, validate_resource_id

MAX = 65_536


def frame(**fields: object) -> bytes:
    return orjson.dumps(fields)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"type": "HEARTBEAT"}, inbound.Heartbeat(None)),
        (
            {"type": "JOIN_RESOURCE", "resourceId": "patient:1", "mode": "viewer", "ref": "r1"},
            inbound.JoinResource("r1", "patient:1", "viewer", None),
        ),
        (
            {"type": "LEAVE_RESOURCE", "resourceId": "surgery:9/report:2"},
            inbound.LeaveResource(None, "surgery:9/report:2"),
        ),
        (
            {"type": "Y_UPDATE", "resourceId": "patient:1", "update": b64(b"\x01\x02")},
            inbound.YUpdate(None, "patient:1", b"\x01\x02"),
        ),
        (
            {"type": "SYNC", "resourceId": "patient:1", "stateVector": b64(b"\x00")},
            inbound.Sync(None, "patient:1", b"\x00"),
        ),
        (
            {"type": "LOCK_ACQUIRE", "resourceId": "patient:1", "ttlMs": 5000},
            inbound.LockAcquire(None, "patient:1", "*", 5000),
        ),
        (
            {"type": "LOCK_EXTEND", "resourceId": "patient:1", "target": "allergies"},
            inbound.LockExtend(None, "patient:1", "allergies", None),
        ),
        (
            {"type": "LOCK_RELEASE", "resourceId": "patient:1", "target": "allergies"},
            inbound.LockRelease(None, "patient:1", "allergies"),
        ),
        (
            {"type": "AWARENESS", "resourceId": "patient:1", "state": {"cursor": 3}},
            inbound.Awareness(None, "patient:1", {"cursor": 3}),
        ),
    ],
)
def test_every_message_type_parses(payload: dict[str, object], expected: inbound.Request) -> None:
    assert parse_request(frame(**payload), MAX) == expected


@pytest.mark.parametrize(
    ("raw", "error", "names"),
    [
        (b"{not json", errors.InvalidPayload, "JSON"),
        (b"[1, 2]", errors.InvalidPayload, "object"),
        (frame(resourceId="patient:1"), errors.MissingRequiredField, "type"),
        (frame(type=7), errors.InvalidPayload, "type"),
        (frame(type="DANCE"), errors.UnknownMessageType, "DANCE"),
        (frame(type="JOIN_RESOURCE"), errors.MissingRequiredField, "resourceId"),
        (
            frame(type="JOIN_RESOURCE", resourceId="patient:1", mode="owner"),
            errors.InvalidMode,
            "mode",
        ),
        (frame(type="JOIN_RESOURCE", resourceId="no-colon"), errors.InvalidPayload, "resourceId"),
        (
            frame(type="JOIN_RESOURCE", resourceId="patient:has space"),
            errors.InvalidPayload,
            "resourceId",
        ),
        (
            frame(type="JOIN_RESOURCE", resourceId="patient:" + "x" * 300),
            errors.InvalidPayload,
            "256",
        ),
        (frame(type="Y_UPDATE", resourceId="patient:1"), errors.MissingRequiredField, "update"),
        (
            frame(type="Y_UPDATE", resourceId="patient:1", update="***"),
            errors.InvalidPayload,
            "base64",
        ),
        (frame(type="Y_UPDATE", resourceId="patient:1", update=""), errors.InvalidPayload, "empty"),
        (
            frame(type="SYNC", resourceId="patient:1", stateVector=3),
            errors.InvalidPayload,
            "stateVector",
        ),
        (
            frame(type="LOCK_ACQUIRE", resourceId="patient:1", ttlMs=-5),
            errors.InvalidPayload,
            "ttlMs",
        ),
        (
            frame(type="LOCK_ACQUIRE", resourceId="patient:1", ttlMs=True),
            errors.InvalidPayload,
            "ttlMs",
        ),
        (
            frame(type="LOCK_ACQUIRE", resourceId="patient:1", target="a b"),
            errors.InvalidPayload,
            "target",
        ),
        (
            frame(type="AWARENESS", resourceId="patient:1", state=[1]),
            errors.InvalidPayload,
            "state",
        ),
        (frame(type="HEARTBEAT", ref="x" * 65), errors.InvalidPayload, "ref"),
    ],
)
def test_bad_frames_raise_the_error_that_names_the_problem(
    raw: bytes, error: type[errors.GatewayError], names: str
) -> None:
    with pytest.raises(error) as caught:
        parse_request(raw, MAX)
    assert names in caught.value.message


def test_oversized_frame_is_refused_before_parsing() -> None:
    with pytest.raises(errors.MessageTooLarge, match="exceeds the limit of 100"):
        parse_request(b"x" * 101, 100)


def test_errors_carry_the_ref_of_the_request() -> None:
    with pytest.raises(errors.MissingRequiredField) as caught:
        parse_request(frame(type="SYNC", ref="abc", resourceId="patient:1"), MAX)
    assert caught.value.ref == "abc"
    encoded = outbound.error(caught.value)
    assert encoded["ref"] == "abc"
    assert encoded["code"] == "WS_3002"
    assert encoded["errorType"] == "MISSING_REQUIRED_FIELD"


@pytest.mark.parametrize(
    "resource_id", ["patient:1", "surgery:2024-05/report:op-7", "chart:a.b_c-d", "x:" + "9" * 254]
)
def test_valid_resource_ids(resource_id: str) -> None:
    assert validate_resource_id(resource_id) == resource_id


@pytest.mark.parametrize(
    "resource_id",
    [
        "",
        "patient",
        ":1",
        "patient:",
        "patient:1/",
        "patient:1/note",
        "a:1/b:2/c:3",
        "pa tient:1",
        "p:é",
        "p:1\n",
    ],
)
def test_invalid_resource_ids(resource_id: str) -> None:
    with pytest.raises(errors.InvalidPayload):
        validate_resource_id(resource_id)


def test_every_error_code_is_unique_and_documented() -> None:
    codes = [error.code for error in errors.ALL_ERRORS]
    assert len(codes) == len(set(codes)) == 20
    assert all(code.startswith("WS_") for code in codes)
