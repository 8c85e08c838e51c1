"""Wire format of a :class:`~collabgate.bus.port.RoomEvent` on the broker.

A fixed 16-byte header followed by the fields' bytes, rather than JSON, because the update is
binary (JSON would need base64: a third bigger and an encode/decode per message) and the frame is
already an encoded JSON string that only has to be passed through::

    offset  size  field
    0       1     version (2)
    1       1     flags: bit 0 = update present, bit 1 = exclude_connection present,
                  bit 2 = yjs_frame present
    2       2     length of resource_id (UTF-8), big-endian
    4       2     length of origin_instance (UTF-8)
    6       2     length of exclude_connection (UTF-8; 0 when absent)
    8       4     length of frame (UTF-8)
    12      4     length of update (0 when absent)
    16      4     length of yjs_frame (0 when absent)
    20      ...   resource_id, origin_instance, exclude_connection, frame, update, yjs_frame

Version 1 (the same without the yjs_frame length, a 16-byte header) is still read, so instances
of the previous release keep talking to this one during a blue-green deploy.

The flags distinguish an absent update from an empty one. A new version number is the way to
change the layout; a receiver drops versions it does not know (and says so in its log) instead of
guessing.
"""

from __future__ import annotations

import struct
from typing import Final

from collabgate.bus.port import RoomEvent

VERSION: Final = 2
CONTENT_TYPE: Final = "application/x-collabgate-room-event"

_HEADER: Final = struct.Struct(">BBHHHIII")
_HEADER_V1: Final = struct.Struct(">BBHHHII")
_HAS_UPDATE: Final = 0x01
_HAS_EXCLUDE: Final = 0x02
_HAS_YJS: Final = 0x04
_MAX_SHORT: Final = 0xFFFF
_MAX_LONG: Final = 0xFFFF_FFFF


class EnvelopeError(ValueError):
    """A message body is not a room event this version understands."""


def encode(event: RoomEvent) -> bytes:
    """The message body for ``event``."""
    resource_id = event.resource_id.encode("utf-8")
    origin = event.origin_instance.encode("utf-8")
    exclude = (event.exclude_connection or "").encode("utf-8")
    frame = event.frame.encode("utf-8")
    update = event.update or b""
    yjs = event.yjs_frame or b""
    flags = (
        (_HAS_UPDATE if event.update is not None else 0)
        | (_HAS_EXCLUDE if event.exclude_connection is not None else 0)
        | (_HAS_YJS if event.yjs_frame is not None else 0)
    )
    _check_lengths(resource_id, origin, exclude, frame, update + yjs)
    header = _HEADER.pack(
        VERSION,
        flags,
        len(resource_id),
        len(origin),
        len(exclude),
        len(frame),
        len(update),
        len(yjs),
    )
    return b"".join((header, resource_id, origin, exclude, frame, update, yjs))


def decode(body: bytes) -> RoomEvent:
    """The event encoded in ``body``; :class:`EnvelopeError` when it is not a valid one."""
    header_size, flags, lengths = _unpack_header(body)
    view = memoryview(body)
    offset = header_size
    fields: list[bytes] = []
    for length in lengths:
        fields.append(bytes(view[offset : offset + length]))
        offset += length
    resource_id, origin, exclude, frame, update, yjs = fields
    return RoomEvent(
        resource_id=_text(resource_id, "resource_id"),
        origin_instance=_text(origin, "origin_instance"),
        frame=_text(frame, "frame"),
        update=update if flags & _HAS_UPDATE else None,
        exclude_connection=_text(exclude, "exclude_connection") if flags & _HAS_EXCLUDE else None,
        yjs_frame=yjs if flags & _HAS_YJS else None,
    )


def _unpack_header(body: bytes) -> tuple[int, int, tuple[int, ...]]:
    """(header size, flags, the six field lengths), for either version."""
    if not body:
        raise EnvelopeError("room event is empty")
    version = body[0]
    if version == VERSION:
        header = _HEADER
    elif version == 1:
        header = _HEADER_V1
    else:
        raise EnvelopeError(f"unknown room event version {version}")
    if len(body) < header.size:
        raise EnvelopeError(f"room event too short: {len(body)} bytes")
    _, flags, *lengths = header.unpack_from(body)
    if version == 1:
        lengths.append(0)
    if header.size + sum(lengths) != len(body):
        raise EnvelopeError("room event lengths do not match its size")
    return header.size, flags, tuple(lengths)


def _check_lengths(
    resource_id: bytes, origin: bytes, exclude: bytes, frame: bytes, update: bytes
) -> None:
    for name, value in (
        ("resource_id", resource_id),
        ("origin_instance", origin),
        ("exclude_connection", exclude),
    ):
        if len(value) > _MAX_SHORT:
            raise EnvelopeError(f"{name} longer than {_MAX_SHORT} bytes")
    if len(frame) > _MAX_LONG or len(update) > _MAX_LONG:
        raise EnvelopeError(f"frame or update longer than {_MAX_LONG} bytes")


def _text(raw: bytes, name: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EnvelopeError(f"room event {name} is not UTF-8") from exc
