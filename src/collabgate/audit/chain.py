"""The audit hash chain: canonical encoding, linking and verification. Pure, no I/O.

Every stored record carries the hash of the one before it, so changing, removing or reordering a
row breaks a link that :func:`verify` names. The exact bytes hashed for record ``seq`` are::

    prev_hash (64 hex chars) + "\\n" + decimal seq + "\\n" + canonical_event(event)

where ``canonical_event`` is orjson with sorted keys over all seven event fields (``None``
included). The first record links to :data:`GENESIS_HASH`. An adapter may store the event in any
form that decodes back to the same canonical bytes (store ``details`` as JSON text, not as a
type that rewrites numbers).

The chain cannot, alone, reveal someone who rewrites every row after a point and the stored head
with it; anchoring the head outside the database (logs, a WORM bucket) closes that gap.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import orjson

from collabgate.audit.port import AuditEvent, AuditEventType, AuditRecord

GENESIS_HASH = "0" * 64
#: Problems listed one by one in a report; the rest are counted.
MAX_LISTED_PROBLEMS = 100

_UNENCODABLE = {"error": "details could not be encoded as JSON"}


# --- encoding ------------------------------------------------------------------------------------


def event_fields(event: AuditEvent) -> dict[str, Any]:
    """The event as plain JSON values (the event type as its string)."""
    return {
        "event_type": str(event.event_type),
        "occurred_at": event.occurred_at,
        "instance_id": event.instance_id,
        "user_id": event.user_id,
        "resource_id": event.resource_id,
        "connection_id": event.connection_id,
        "details": event.details,
    }


def canonical_event(event: AuditEvent) -> bytes:
    """The bytes hashed for ``event``: the same event always gives the same bytes."""
    return orjson.dumps(event_fields(event), option=orjson.OPT_SORT_KEYS)


def parse_event_type(value: str) -> AuditEventType:
    """The enum member, or the raw string when unknown.

    A tampered or future type must reach :func:`verify` as data (whose hash then fails), not
    crash the reader; ``AuditEventType`` is a ``str`` enum, so the raw string encodes the same.
    """
    try:
        return AuditEventType(value)
    except ValueError:
        return cast(AuditEventType, value)


def event_from_fields(fields: Mapping[str, Any]) -> AuditEvent:
    """Inverse of :func:`event_fields`."""
    return AuditEvent(
        event_type=parse_event_type(fields["event_type"]),
        occurred_at=fields["occurred_at"],
        instance_id=fields["instance_id"],
        user_id=fields.get("user_id"),
        resource_id=fields.get("resource_id"),
        connection_id=fields.get("connection_id"),
        details=fields.get("details") or {},
    )


def normalize_event(event: AuditEvent) -> AuditEvent:
    """A copy whose canonical bytes survive a round trip through JSON and SQL columns unchanged.

    ``details`` is passed through JSON (unknown types become strings, NaN becomes null, tuples
    lists) so the stored form hashes like the original; details that JSON can't hold at all are
    replaced by an error marker rather than blocking the trail. Never raises for bad details.
    An event that is already in that form (what the gateway records) is returned as it is.
    """
    if _is_normal(event):
        return event
    try:
        encoded = orjson.dumps(event.details, default=str, option=orjson.OPT_NON_STR_KEYS)
        details = orjson.loads(encoded)
    except orjson.JSONEncodeError:
        details = dict(_UNENCODABLE)
    if not isinstance(details, dict):
        details = {"value": details}

    def optional(value: object) -> str | None:
        return None if value is None else str(value)

    return AuditEvent(
        event_type=parse_event_type(str(event.event_type)),
        occurred_at=int(event.occurred_at),
        instance_id=str(event.instance_id),
        user_id=optional(event.user_id),
        resource_id=optional(event.resource_id),
        connection_id=optional(event.connection_id),
        details=details,
    )


#: JSON ints orjson encodes (64 bits); a bigger one is not "normal" and takes the slow path.
_INT_RANGE = range(-(2**63), 2**64)


def _is_normal(event: AuditEvent) -> bool:
    """True when ``event`` survives the JSON round trip unchanged: flat details of strings,
    in-range ints, booleans and nulls under string keys, and fields of their declared types."""
    if not (
        type(event.event_type) is AuditEventType
        and type(event.occurred_at) is int
        and type(event.instance_id) is str
        and (event.user_id is None or type(event.user_id) is str)
        and (event.resource_id is None or type(event.resource_id) is str)
        and (event.connection_id is None or type(event.connection_id) is str)
        and type(event.details) is dict
    ):
        return False
    for key, value in event.details.items():
        if type(key) is not str:
            return False
        kind = type(value)
        if kind is int:
            if value not in _INT_RANGE:
                return False
        elif value is not None and kind is not str and kind is not bool:
            return False
    return True


# --- linking -------------------------------------------------------------------------------------


def link_canonical(prev_hash: str, seq: int, canonical: bytes) -> str:
    """The hash of record ``seq`` given the canonical bytes of its event."""
    digest = hashlib.sha256()
    digest.update(prev_hash.encode("ascii"))
    digest.update(b"\n%d\n" % seq)
    digest.update(canonical)
    return digest.hexdigest()


def link(prev_hash: str, seq: int, event: AuditEvent) -> str:
    """The hash of record ``seq`` holding ``event`` after a record whose hash is ``prev_hash``."""
    return link_canonical(prev_hash, seq, canonical_event(event))


# --- verification --------------------------------------------------------------------------------


@dataclass(slots=True)
class VerifyReport:
    ok: bool
    records_checked: int
    problems: list[str] = field(default_factory=list)


class ChainVerifier:
    """Checks records fed one at a time, so a trail of any length streams in constant memory.

    ``start_seq``/``start_hash`` continue from a trusted checkpoint instead of the genesis.
    """

    def __init__(self, start_seq: int = 0, start_hash: str = GENESIS_HASH) -> None:
        self.last_seq = start_seq
        self.last_hash = start_hash
        self.records_checked = 0
        self._problems: list[str] = []
        self._unlisted = 0

    def feed(self, record: AuditRecord) -> None:
        self.records_checked += 1
        if record.seq <= self.last_seq:
            self._problem(
                f"record seq {record.seq} comes after seq {self.last_seq}: rows reordered or duplicated"
            )
            self._check_hash(record)
            return  # keep following the chain from the highest record seen
        if record.seq != self.last_seq + 1:
            self._problem(self._gap(record.seq))
        elif record.prev_hash != self.last_hash:
            self._problem(
                f"record seq {record.seq}: prev_hash does not match the hash of seq {self.last_seq}"
                " (a record was removed, replaced or reordered)"
            )
        self._check_hash(record)
        self.last_seq, self.last_hash = record.seq, record.hash

    def finish(self, expected_head: tuple[int, str] | None = None) -> VerifyReport:
        """The report; ``expected_head`` is the (seq, hash) the store recorded at write time."""
        if expected_head is not None:
            self._check_head(*expected_head)
        problems = list(self._problems)
        if self._unlisted:
            problems.append(f"... and {self._unlisted} more problems")
        return VerifyReport(not problems, self.records_checked, problems)

    def _check_hash(self, record: AuditRecord) -> None:
        try:
            expected = link(record.prev_hash, record.seq, record.event)
        except (TypeError, ValueError, AttributeError) as exc:
            self._problem(f"record seq {record.seq}: malformed, cannot be hashed ({exc})")
            return
        if expected != record.hash:
            self._problem(f"record seq {record.seq}: content does not match its hash (altered)")

    def _check_head(self, head_seq: int, head_hash: str) -> None:
        if self.last_seq < head_seq:
            self._problem(
                f"trail truncated: the recorded head is seq {head_seq} but the last record is"
                f" seq {self.last_seq} ({_span(self.last_seq + 1, head_seq)} missing)"
            )
        elif self.last_seq > head_seq:
            self._problem(
                f"records {_span(head_seq + 1, self.last_seq)} lie beyond the recorded head"
                f" (seq {head_seq}): written outside the audit store"
            )
        elif self.last_hash != head_hash:
            self._problem(
                f"the last record (seq {self.last_seq}) does not match the recorded head hash"
            )

    def _gap(self, seq: int) -> str:
        return f"records missing before seq {seq}: {_span(self.last_seq + 1, seq - 1)} (deleted)"

    def _problem(self, text: str) -> None:
        if len(self._problems) < MAX_LISTED_PROBLEMS:
            self._problems.append(text)
        else:
            self._unlisted += 1


def _span(first: int, last: int) -> str:
    return f"seq {first}" if first == last else f"seq {first}..{last}"


def verify(
    records: Iterable[AuditRecord], expected_head: tuple[int, str] | None = None
) -> VerifyReport:
    """Check a whole chain from the genesis; see :class:`ChainVerifier`."""
    verifier = ChainVerifier()
    for record in records:
        verifier.feed(record)
    return verifier.finish(expected_head)


#: An event ready to store: its column values (occurred_at, event_type, instance_id, user_id,
#: resource_id, connection_id, details as sorted JSON) and the canonical bytes its hash covers.
PreparedEvent = tuple[tuple[Any, ...], bytes]


def prepare_event(event: AuditEvent) -> PreparedEvent:
    """Column values and canonical bytes of ``event``, identical for every store."""
    event = normalize_event(event)
    columns = (
        event.occurred_at,
        str(event.event_type),
        event.instance_id,
        event.user_id,
        event.resource_id,
        event.connection_id,
        orjson.dumps(event.details, option=orjson.OPT_SORT_KEYS).decode(),
    )
    return columns, canonical_event(event)
