"""The y-websocket wire format (y-protocols), sans I/O: bytes in, messages out, and back.

Stock Yjs providers (``y-websocket``'s ``WebsocketProvider``) speak this on ``/yjs/{resourceId}``.
Every WebSocket frame is one binary message, built from lib0's variable-length encodings::

    message          = varUint(type) payload
    type 0 sync      = varUint(0) varUint8Array(state vector)      SyncStep1
                     | varUint(1) varUint8Array(update)            SyncStep2
                     | varUint(2) varUint8Array(update)            Update
    type 1 awareness = varUint8Array(awareness update)
    type 2 auth      = varUint(0) varString(reason)                permission denied
    type 3 query-awareness (no payload)

    awareness update = varUint(n) n times (varUint(clientID) varUint(clock) varString(JSON state))

``varUint`` is LEB128 (7 bits per byte, low first, high bit = more); ``varUint8Array`` is a varUint
length then the bytes; ``varString`` is a varUint8Array of UTF-8. Only what a y-websocket peer sends
is decoded; anything malformed raises :class:`~collabgate.errors.InvalidPayload`.

:class:`AwarenessRoom` keeps a room's latest awareness entry per client id with the same
"newer clock wins" rule as y-protocols' ``applyAwarenessUpdate``, so the gateway can answer
query-awareness, greet a new peer with everyone's state and relay only what changed.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

import orjson

from collabgate.errors import InvalidPayload

MESSAGE_SYNC: Final = 0
MESSAGE_AWARENESS: Final = 1
MESSAGE_AUTH: Final = 2
MESSAGE_QUERY_AWARENESS: Final = 3

SYNC_STEP1: Final = 0
SYNC_STEP2: Final = 1
SYNC_UPDATE: Final = 2

AUTH_PERMISSION_DENIED: Final = 0

#: Y.js v1 encoding of an update that changes nothing (no structs, empty delete set).
EMPTY_UPDATE: Final = b"\x00\x00"
#: y-protocols drops a remote awareness state that was not renewed for this long.
AWARENESS_OUTDATED_SECONDS: Final = 30.0
#: lib0 decodes varUints into JS numbers: anything above 2**53 cannot come from a real peer.
_MAX_VAR_UINT: Final = 2**53 - 1
#: An awareness null state, as y-protocols writes it.
NULL_STATE: Final = b"null"


# ---------------------------------------------------------------------------------- messages
@dataclass(frozen=True, slots=True)
class SyncStep1:
    """The peer's state vector: answer with SyncStep2 holding what it lacks."""

    state_vector: bytes


@dataclass(frozen=True, slots=True)
class SyncStep2:
    """What the peer has that we lacked (its answer to our SyncStep1): an update."""

    update: bytes


@dataclass(frozen=True, slots=True)
class SyncUpdate:
    """An incremental document update."""

    update: bytes


@dataclass(frozen=True, slots=True)
class AwarenessMessage:
    """An awareness update, kept encoded (``payload``) so it can be relayed byte for byte."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class QueryAwareness:
    """The peer asks for every awareness state we know."""


@dataclass(frozen=True, slots=True)
class AuthMessage:
    """Sent by servers only; a peer that sends one is ignored."""

    reason: str | None


YjsMessage = SyncStep1 | SyncStep2 | SyncUpdate | AwarenessMessage | QueryAwareness | AuthMessage


# ---------------------------------------------------------------------------------- lib0 encoding
def var_uint(value: int) -> bytes:
    """LEB128 encoding of a non-negative integer, as lib0's ``writeVarUint``."""
    if value < 0:
        raise ValueError("varUint cannot encode a negative number")
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def var_uint8_array(data: bytes) -> bytes:
    return var_uint(len(data)) + data


class Reader:
    """A cursor over one message: each ``read_*`` consumes what it returns."""

    __slots__ = ("_data", "pos")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self.pos = 0

    def read_var_uint(self) -> int:
        data, pos, value, shift = self._data, self.pos, 0, 0
        while True:
            if pos >= len(data):
                raise InvalidPayload("y-websocket message ends inside a number")
            byte = data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                break
            shift += 7
            if shift > 56:
                raise InvalidPayload("y-websocket message holds a number too large")
        if value > _MAX_VAR_UINT:
            raise InvalidPayload("y-websocket message holds a number too large")
        self.pos = pos
        return value

    def read_var_uint8_array(self) -> bytes:
        length = self.read_var_uint()
        end = self.pos + length
        if end > len(self._data):
            raise InvalidPayload("y-websocket message is shorter than a length it announces")
        chunk = self._data[self.pos : end]
        self.pos = end
        return chunk

    def read_var_string(self) -> str:
        raw = self.read_var_uint8_array()
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidPayload("y-websocket string is not UTF-8") from None

    @property
    def at_end(self) -> bool:
        return self.pos >= len(self._data)


# ---------------------------------------------------------------------------------- decoding
def decode_message(frame: bytes) -> YjsMessage:
    """Parse one binary frame from a y-websocket peer."""
    if not frame:
        raise InvalidPayload("empty y-websocket message")
    reader = Reader(frame)
    kind = reader.read_var_uint()
    if kind == MESSAGE_SYNC:
        return _decode_sync(reader)
    if kind == MESSAGE_AWARENESS:
        return AwarenessMessage(reader.read_var_uint8_array())
    if kind == MESSAGE_QUERY_AWARENESS:
        return QueryAwareness()
    if kind == MESSAGE_AUTH:
        reason = (
            reader.read_var_string() if not reader.at_end and reader.read_var_uint() == 0 else None
        )
        return AuthMessage(reason)
    raise InvalidPayload(f"unknown y-websocket message type {kind}")


def _decode_sync(reader: Reader) -> YjsMessage:
    step = reader.read_var_uint()
    body = reader.read_var_uint8_array()
    if step == SYNC_STEP1:
        return SyncStep1(body)
    if step == SYNC_STEP2:
        return SyncStep2(body)
    if step == SYNC_UPDATE:
        return SyncUpdate(body)
    raise InvalidPayload(f"unknown y-websocket sync message type {step}")


# ---------------------------------------------------------------------------------- encoding
def sync_step1(state_vector: bytes) -> bytes:
    return b"\x00\x00" + var_uint8_array(state_vector)


def sync_step2(update: bytes) -> bytes:
    return b"\x00\x01" + var_uint8_array(update)


def sync_update(update: bytes) -> bytes:
    """The message every peer gets for a document update (the hot path: two concatenations)."""
    return b"\x00\x02" + var_uint(len(update)) + update


def awareness_message(payload: bytes) -> bytes:
    return b"\x01" + var_uint8_array(payload)


def query_awareness() -> bytes:
    return b"\x03"


def permission_denied(reason: str) -> bytes:
    """Auth message: y-websocket logs ``reason`` and keeps its edits local."""
    return b"\x02\x00" + var_uint8_array(reason.encode("utf-8"))


# ---------------------------------------------------------------------------------- awareness
@dataclass(frozen=True, slots=True)
class AwarenessEntry:
    """One client's awareness: ``state`` is its JSON text, ``b"null"`` once it is gone."""

    client_id: int
    clock: int
    state: bytes

    @property
    def removed(self) -> bool:
        return self.state == NULL_STATE

    def decoded_state(self) -> Any:
        return orjson.loads(self.state)


def decode_awareness(payload: bytes, max_state_bytes: int) -> list[AwarenessEntry]:
    """The entries of an awareness update; each state must be JSON of at most ``max_state_bytes``.

    States are checked here, once per update, because y-protocols peers ``JSON.parse`` every
    state they receive: one bad state relayed as is would break every peer in the room.
    """
    reader = Reader(payload)
    entries = []
    for _ in range(reader.read_var_uint()):
        client_id = reader.read_var_uint()
        clock = reader.read_var_uint()
        state = reader.read_var_uint8_array()
        if len(state) > max_state_bytes:
            raise InvalidPayload(
                f"awareness state is {len(state)} bytes; the limit is {max_state_bytes}"
            )
        try:
            orjson.loads(state)
        except orjson.JSONDecodeError:
            raise InvalidPayload("awareness state is not JSON") from None
        entries.append(AwarenessEntry(client_id, clock, state))
    return entries


def encode_awareness(entries: Iterable[AwarenessEntry]) -> bytes:
    """An awareness update (the payload of an awareness message)."""
    items = list(entries)
    parts = [var_uint(len(items))]
    for entry in items:
        parts += (var_uint(entry.client_id), var_uint(entry.clock), var_uint8_array(entry.state))
    return b"".join(parts)


@dataclass(slots=True)
class _Known:
    entry: AwarenessEntry
    owner: str | None  # the local connection whose client this is, if any
    seen: float  # monotonic time of the last change


class AwarenessRoom:
    """The latest awareness entry of every client in one room, as y-protocols would keep it."""

    __slots__ = ("_known",)

    def __init__(self) -> None:
        self._known: dict[int, _Known] = {}

    def __len__(self) -> int:
        return len(self._known)

    def apply(
        self, entries: Iterable[AwarenessEntry], owner: str | None, owned_id: int | None
    ) -> list[AwarenessEntry]:
        """Record the entries newer than what is known and return them.

        y-protocols' rule: a higher clock wins; at an equal clock a null state removes a live
        one. Only ``owned_id`` (the client id the sending connection speaks for) is recorded as
        owned by ``owner``, so a peer echoing other clients' states cannot get them removed when
        it disconnects.
        """
        now = time.monotonic()
        fresh = []
        for entry in entries:
            known = self._known.get(entry.client_id)
            if known is not None and not _newer(entry, known.entry):
                continue
            fresh.append(entry)
            keeper = owner if entry.client_id == owned_id else (known.owner if known else None)
            self._known[entry.client_id] = _Known(entry, keeper, now)
        return fresh

    def live_entries(self) -> list[AwarenessEntry]:
        """Every state not removed and renewed within y-protocols' outdated timeout."""
        cutoff = time.monotonic() - AWARENESS_OUTDATED_SECONDS
        return [
            known.entry
            for known in self._known.values()
            if not known.entry.removed and known.seen >= cutoff
        ]

    def owned_entries(self) -> list[tuple[str, AwarenessEntry]]:
        """(owner, entry) of every live entry a local connection speaks for."""
        return [
            (known.owner, known.entry)
            for known in self._known.values()
            if known.owner is not None and not known.entry.removed
        ]

    def entry(self, client_id: int) -> AwarenessEntry | None:
        known = self._known.get(client_id)
        return known.entry if known is not None else None

    def remove_owned_by(self, owner: str) -> list[AwarenessEntry]:
        """Forget the clients of a closed connection; return their removal entries to relay.

        The removal keeps the client's clock: y-protocols applies a null state at an equal clock,
        and the client's next renewal (clock + 1) brings it back if it reconnects.
        """
        removed = []
        for client_id, known in list(self._known.items()):
            if known.owner == owner:
                del self._known[client_id]
                if not known.entry.removed:
                    removed.append(AwarenessEntry(client_id, known.entry.clock, NULL_STATE))
        return removed


def _newer(entry: AwarenessEntry, known: AwarenessEntry) -> bool:
    if entry.clock != known.clock:
        return entry.clock > known.clock
    return entry.removed and not known.removed
