"""The audit hash chain: every way of tampering with stored records is detected and named."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collabgate.audit.chain import (
    GENESIS_HASH,
    ChainVerifier,
    canonical_event,
    link,
    normalize_event,
    verify,
)
from collabgate.audit.port import AuditEvent, AuditEventType, AuditRecord

TYPES = list(AuditEventType)
EVENT_FIELDS = [
    "event_type",
    "occurred_at",
    "instance_id",
    "user_id",
    "resource_id",
    "connection_id",
    "details",
]


def make_event(n: int) -> AuditEvent:
    return AuditEvent(
        event_type=TYPES[n % len(TYPES)],
        occurred_at=1_700_000_000_000 + n,
        instance_id="gw-1",
        user_id=f"user-{n % 3}" if n % 4 else None,
        resource_id=f"patient:{n % 5}",
        connection_id=f"conn-{n}",
        details={"n": n, "reason": "test", "sizes": [n, n + 1]},
    )


def build_chain(events: list[AuditEvent]) -> list[AuditRecord]:
    records, prev = [], GENESIS_HASH
    for seq, event in enumerate(events, start=1):
        digest = link(prev, seq, event)
        records.append(AuditRecord(seq=seq, event=event, prev_hash=prev, hash=digest))
        prev = digest
    return records


def head_of(records: list[AuditRecord]) -> tuple[int, str]:
    return (records[-1].seq, records[-1].hash) if records else (0, GENESIS_HASH)


def changed(value: Any, field: str) -> Any:
    """A value different from ``value`` for ``field``."""
    if field == "event_type":
        return TYPES[(TYPES.index(value) + 1) % len(TYPES)]
    if field in ("occurred_at", "seq"):
        return value + 1
    if field == "details":
        return {**value, "tampered": True}
    if field in ("hash", "prev_hash"):
        return hashlib.sha256(value.encode()).hexdigest()
    return "mallory" if value is None else value + "x"


def alter(record: AuditRecord, field: str) -> AuditRecord:
    if field in EVENT_FIELDS:
        event = dataclasses.replace(
            record.event, **{field: changed(getattr(record.event, field), field)}
        )
        return dataclasses.replace(record, event=event)
    return dataclasses.replace(record, **{field: changed(getattr(record, field), field)})


# --- encoding and linking -------------------------------------------------------------------------


def test_link_hashes_prev_hash_seq_and_sorted_canonical_event() -> None:
    event = make_event(7)
    canonical = orjson.dumps(
        {
            "connection_id": "conn-7",
            "details": {"n": 7, "reason": "test", "sizes": [7, 8]},
            "event_type": str(event.event_type),
            "instance_id": "gw-1",
            "occurred_at": 1_700_000_000_007,
            "resource_id": "patient:2",
            "user_id": "user-1",
        }
    )
    assert canonical_event(event) == canonical
    expected = hashlib.sha256(GENESIS_HASH.encode() + b"\n1\n" + canonical).hexdigest()
    assert link(GENESIS_HASH, 1, event) == expected


def test_canonical_encoding_ignores_key_order_of_details() -> None:
    one = dataclasses.replace(make_event(1), details={"b": 1, "a": {"y": 2, "x": 3}})
    two = dataclasses.replace(make_event(1), details={"a": {"x": 3, "y": 2}, "b": 1})
    assert canonical_event(one) == canonical_event(two)


def test_normalize_makes_details_json_stable_and_never_raises() -> None:
    details: dict[Any, Any] = {"t": (1, 2), 3: "int key", "nan": float("nan"), "o": object}
    event = dataclasses.replace(make_event(1), details=details)
    normal = normalize_event(event)
    assert normal.details["t"] == [1, 2]
    assert normal.details["3"] == "int key"
    assert normal.details["nan"] is None
    assert isinstance(normal.details["o"], str)
    assert orjson.loads(orjson.dumps(normal.details)) == normal.details
    huge = normalize_event(dataclasses.replace(make_event(1), details={"n": 2**70}))
    assert huge.details == {"error": "details could not be encoded as JSON"}


_FLAT_VALUES = (
    st.none()
    | st.booleans()
    | st.text(max_size=20)
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
)


@given(st.dictionaries(st.text(max_size=10), _FLAT_VALUES, max_size=6))
def test_an_event_already_json_stable_is_kept_as_it_is(details: dict[str, Any]) -> None:
    event = dataclasses.replace(make_event(1), details=details)
    assert normalize_event(event) is event  # the gateway's own events skip the round trip
    assert orjson.loads(orjson.dumps(details)) == details  # ... which would change nothing


@pytest.mark.parametrize(
    "details", [{"n": 2**64}, {"f": 1.5}, {"nested": {"a": 1}}, {"t": (1,)}, {1: "x"}]
)
def test_anything_else_takes_the_json_round_trip(details: dict[Any, Any]) -> None:
    event = dataclasses.replace(make_event(1), details=details)
    normal = normalize_event(event)
    assert normal is not event
    assert orjson.loads(orjson.dumps(normal.details)) == normal.details


# --- verification ---------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [0, 1, 2, 50])
def test_an_untouched_chain_verifies(count: int) -> None:
    records = build_chain([make_event(n) for n in range(count)])
    report = verify(records, head_of(records))
    assert report.ok, report.problems
    assert report.records_checked == count
    assert report.problems == []


@pytest.mark.parametrize("index", [0, 4, 9])
@pytest.mark.parametrize("field", [*EVENT_FIELDS, "prev_hash", "hash"])
def test_altering_any_field_of_any_record_is_detected_and_named(index: int, field: str) -> None:
    records = build_chain([make_event(n) for n in range(10)])
    head = head_of(records)
    records[index] = alter(records[index], field)
    report = verify(records, head)
    assert not report.ok
    assert any(f"seq {index + 1}" in problem for problem in report.problems), report.problems


def test_an_altered_record_with_a_recomputed_hash_breaks_the_next_link() -> None:
    records = build_chain([make_event(n) for n in range(5)])
    head = head_of(records)
    forged_event = dataclasses.replace(records[2].event, user_id="mallory")
    records[2] = dataclasses.replace(
        records[2], event=forged_event, hash=link(records[2].prev_hash, 3, forged_event)
    )
    report = verify(records, head)
    assert not report.ok
    assert any("seq 4: prev_hash" in problem for problem in report.problems), report.problems


def test_deleting_a_middle_record_is_detected_and_named() -> None:
    records = build_chain([make_event(n) for n in range(10)])
    head = head_of(records)
    del records[4]
    report = verify(records, head)
    assert not report.ok
    assert report.problems == ["records missing before seq 6: seq 5 (deleted)"]


def test_deleting_the_first_record_is_detected() -> None:
    records = build_chain([make_event(n) for n in range(3)])
    report = verify(records[1:], head_of(records))
    assert report.problems == ["records missing before seq 2: seq 1 (deleted)"]


def test_deleting_the_last_records_is_detected_through_the_head() -> None:
    records = build_chain([make_event(n) for n in range(10)])
    head = head_of(records)
    assert verify(records[:-2]).ok  # without the head a truncated chain looks whole
    report = verify(records[:-2], head)
    assert not report.ok
    assert report.problems == [
        "trail truncated: the recorded head is seq 10 but the last record is seq 8"
        " (seq 9..10 missing)"
    ]


def test_deleting_every_record_is_detected_through_the_head() -> None:
    records = build_chain([make_event(n) for n in range(3)])
    report = verify([], head_of(records))
    assert not report.ok
    assert "seq 1..3 missing" in report.problems[0]


def test_records_beyond_the_head_are_reported() -> None:
    records = build_chain([make_event(n) for n in range(4)])
    report = verify(records, head_of(records[:3]))
    assert report.problems == [
        "records seq 4 lie beyond the recorded head (seq 3): written outside the audit store"
    ]


def test_a_head_hash_that_differs_is_reported() -> None:
    records = build_chain([make_event(n) for n in range(3)])
    report = verify(records, (3, GENESIS_HASH))
    assert report.problems == [
        "the last record (seq 3) does not match the recorded head hash",
    ]


def test_swapping_two_records_is_detected() -> None:
    records = build_chain([make_event(n) for n in range(6)])
    head = head_of(records)
    records[2], records[3] = records[3], records[2]
    report = verify(records, head)
    assert not report.ok
    assert any("seq 3" in problem for problem in report.problems), report.problems


def test_swapping_the_contents_of_two_rows_keeping_seq_is_detected() -> None:
    records = build_chain([make_event(n) for n in range(6)])
    head = head_of(records)
    a, b = records[1], records[4]
    records[1] = dataclasses.replace(b, seq=a.seq)
    records[4] = dataclasses.replace(a, seq=b.seq)
    report = verify(records, head)
    assert not report.ok
    named = " ".join(report.problems)
    assert "seq 2:" in named
    assert "seq 5:" in named


def test_a_malformed_record_is_reported_not_raised() -> None:
    records = build_chain([make_event(n) for n in range(3)])
    records[1] = dataclasses.replace(records[1], prev_hash=None)  # type: ignore[arg-type]
    report = verify(records, head_of(records))
    assert not report.ok
    assert any("seq 2" in problem for problem in report.problems)


def test_problem_list_is_capped() -> None:
    records = build_chain([make_event(n) for n in range(300)])
    tampered = [alter(record, "instance_id") for record in records]
    report = verify(tampered, head_of(records))
    assert len(report.problems) == 101
    assert report.problems[-1] == "... and 200 more problems"


def test_verification_can_continue_from_a_trusted_checkpoint() -> None:
    records = build_chain([make_event(n) for n in range(10)])
    verifier = ChainVerifier(start_seq=records[4].seq, start_hash=records[4].hash)
    for record in records[5:]:
        verifier.feed(record)
    report = verifier.finish(head_of(records))
    assert report.ok
    assert report.records_checked == 5


# --- property: any single mutation is detected ----------------------------------------------------

MUTABLE_FIELDS = [*EVENT_FIELDS, "seq", "prev_hash", "hash"]


@st.composite
def chain_and_mutation(draw: st.DrawFn) -> tuple[list[AuditRecord], tuple[int, str]]:
    size = draw(st.integers(min_value=1, max_value=25))
    records = build_chain([make_event(draw(st.integers(0, 1000))) for _ in range(size)])
    head = head_of(records)
    kind = draw(st.sampled_from(["alter", "delete", "swap", "duplicate", "truncate"]))
    if kind == "alter":
        index = draw(st.integers(0, size - 1))
        records[index] = alter(records[index], draw(st.sampled_from(MUTABLE_FIELDS)))
    elif kind == "delete":
        del records[draw(st.integers(0, size - 1))]
    elif kind == "swap" and size >= 2:  # (a one-record chain is truncated instead)
        i, j = draw(st.lists(st.integers(0, size - 1), min_size=2, max_size=2, unique=True))
        records[i], records[j] = records[j], records[i]
    elif kind == "duplicate":
        index = draw(st.integers(0, size - 1))
        records.insert(draw(st.integers(0, size)), records[index])
    else:
        records = records[: draw(st.integers(0, size - 1))]
    return records, head


@settings(max_examples=400, deadline=None)
@given(chain_and_mutation())
def test_any_single_mutation_of_a_chain_is_detected(
    case: tuple[list[AuditRecord], tuple[int, str]],
) -> None:
    records, head = case
    report = verify(records, head)
    assert not report.ok
    assert report.problems
