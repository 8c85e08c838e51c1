"""Edits lost between instances: published again by the sender once the bus is back, and read
from the shared store by a receiver that got an edit building on one it never had."""

from __future__ import annotations

import base64
from typing import Any

from pycrdt import Doc, Text

from collabgate.bus.memory import InProcessBus, InProcessHub
from collabgate.bus.port import PublishUnconfirmed, RoomEvent
from collabgate.documents.memory import MemoryDocumentStore
from collabgate.documents.service import DocumentService
from collabgate.protocol import outbound
from collabgate.session.connection import Connection
from tests.unit.test_gateway import RESOURCE, AuditCollector, Harness, read, text_update


class BusThatCanFail(InProcessBus):
    """The in-process bus, refusing every publish while ``down``: a broker that is away; or,
    while ``unconfirmed``, delivering them but saying the confirm did not come in time."""

    def __init__(self, hub: InProcessHub) -> None:
        super().__init__(hub)
        self.down = False
        self.unconfirmed = False

    async def publish(self, event: RoomEvent) -> None:
        if self.down:
            raise ConnectionError("rabbitmq unavailable: not connected")
        await super().publish(event)
        if self.unconfirmed:
            raise PublishUnconfirmed("rabbitmq unavailable during publish: TimeoutError")


async def two_instances(**settings: Any) -> tuple[Harness, Harness, BusThatCanFail]:
    hub = InProcessHub()
    first = Harness(instance_id="a", bus_republish_retry_seconds=0.01, **settings)
    second = Harness(instance_id="b")
    bus = BusThatCanFail(hub)
    first.gateway.bus = bus
    second.gateway.bus = InProcessBus(hub)
    for harness in (first, second):
        await harness.gateway.bus.start(harness.gateway.instance_id, harness.gateway._on_bus_event)
    return first, second, bus


async def alice_and_bob(first: Harness, second: Harness) -> tuple[Connection, Connection]:
    """Alice in the room on the first instance, Bob on the second, Bob's inbox emptied."""
    alice, bob = await first.connect("alice"), await second.connect("bob")
    await first.join(alice)
    await second.join(bob)
    read(bob)
    return alice, bob


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def text_of_updates(frames: list[dict[str, Any]]) -> str:
    doc: Doc[Any] = Doc()
    for frame in frames:
        if frame["type"] == "Y_UPDATE":
            doc.apply_update(base64.b64decode(frame["update"]))
    return str(doc.get("content", type=Text))


def sample(h: Harness, result: str) -> float:
    value = h.gateway.metrics.registry.get_sample_value(
        "collabgate_bus_republished_total", {"result": result}
    )
    return value or 0.0


async def test_edits_made_while_the_bus_was_away_reach_the_other_instance_once_it_is_back() -> None:
    first, second, bus = await two_instances()
    alice, bob = await alice_and_bob(first, second)
    read(alice)
    read(bob)
    typed: Doc[Any] = Doc()
    bus.down = True
    for ref, text in (("u1", "BP "), ("u2", "120/80")):
        frame = {
            "type": "Y_UPDATE",
            "resourceId": RESOURCE,
            "update": b64(text_update(typed, text)),
        }
        (ack,) = await first.send(alice, **frame, ref=ref)
        assert ack["type"] == "Y_UPDATE_ACK"  # stored and acknowledged without the bus
    assert read(bob) == []
    assert first.gateway._republisher.waiting == 2

    bus.down = False
    await first.gateway.wait_republished()
    assert text_of_updates(read(bob)) == "BP 120/80"
    document = second.gateway.documents.loaded_document(RESOURCE)
    assert document is not None
    probe: Doc[Any] = Doc()
    probe.apply_update(document.full_state())
    assert str(probe.get("content", type=Text)) == "BP 120/80"
    assert (sample(first, "sent"), sample(first, "dropped")) == (2, 0)


async def test_only_edits_are_kept_and_at_most_the_configured_number() -> None:
    first, second, bus = await two_instances(bus_republish_max_events=1)
    bob = await second.connect("bob")
    await second.join(bob)
    read(bob)
    bus.down = True
    alice = await first.connect("alice")
    await first.join(alice)  # its USER_JOINED is not published again: it would be stale later
    assert first.gateway._republisher.waiting == 0
    typed: Doc[Any] = Doc()
    for ref, text in (("u1", "one "), ("u2", "two")):
        frame = {
            "type": "Y_UPDATE",
            "resourceId": RESOURCE,
            "update": b64(text_update(typed, text)),
        }
        await first.send(alice, **frame, ref=ref)
    assert first.gateway._republisher.waiting == 1

    bus.down = False
    await first.gateway.wait_republished()
    frames = read(bob)
    assert [f["type"] for f in frames] == ["Y_UPDATE"]  # the newest edit; the oldest was dropped
    assert (sample(first, "sent"), sample(first, "dropped")) == (1, 1)


async def test_an_edit_whose_confirm_came_late_is_not_published_again() -> None:
    """A late confirm usually means a busy broker, not a lost event: publishing it again would
    add load exactly when there is too much (a receiver that lacks it reads the store)."""
    first, second, bus = await two_instances()
    alice, bob = await alice_and_bob(first, second)
    bus.unconfirmed = True
    frame = {"type": "Y_UPDATE", "resourceId": RESOURCE, "update": b64(text_update(Doc(), "x"))}
    await first.send(alice, **frame, ref="u1")
    assert first.gateway._republisher.waiting == 0
    assert text_of_updates(read(bob)) == "x"


# --- an event lost between instances: the receiver reads what it lacks from the store ------------


class LossyBus(InProcessBus):
    """The in-process bus, losing the events published while ``losing`` (a broker restart
    drops the messages its queues held): the publisher is told nothing."""

    def __init__(self, hub: InProcessHub) -> None:
        super().__init__(hub)
        self.losing = False

    async def publish(self, event: RoomEvent) -> None:
        if not self.losing:
            await super().publish(event)


async def two_instances_on_one_store(**settings: Any) -> tuple[Harness, Harness, LossyBus]:
    """Two instances on one shared document store, as with PostgreSQL."""
    hub, store = InProcessHub(), MemoryDocumentStore(audit=AuditCollector())
    first = Harness(instance_id="a")
    second = Harness(instance_id="b", **{"bus_gap_repair_retry_seconds": 0.01, **settings})
    bus = LossyBus(hub)
    first.gateway.bus, second.gateway.bus = bus, InProcessBus(hub)
    for harness in (first, second):
        harness.store = store
        harness.gateway.documents = DocumentService(
            store, compaction_threshold=1000, shared_store=True
        )
        await harness.gateway.bus.start(harness.gateway.instance_id, harness.gateway._on_bus_event)
    return first, second, bus


async def test_an_edit_lost_between_instances_is_read_from_the_store_and_sent_to_the_room() -> None:
    first, second, bus = await two_instances_on_one_store()
    alice, bob = await alice_and_bob(first, second)
    typed: Doc[Any] = Doc()
    frame = {"type": "Y_UPDATE", "resourceId": RESOURCE}
    bus.losing = True
    await first.send(alice, **frame, update=b64(text_update(typed, "BP ")), ref="u1")
    bus.losing = False
    await first.send(alice, **frame, update=b64(text_update(typed, "120/80")), ref="u2")
    await second.gateway.wait_gaps_repaired()
    relayed, recovered = read(bob)
    assert relayed["userId"] == "alice"  # u2, which Y.js keeps pending without u1
    assert text_of_updates([relayed]) == ""
    assert (recovered["type"], recovered["userId"]) == ("Y_UPDATE", None)  # from the store
    assert text_of_updates([relayed, recovered]) == "BP 120/80"
    counted = second.gateway.metrics.registry.get_sample_value("collabgate_bus_gaps_repaired_total")
    assert counted == 1


async def test_an_event_that_was_only_late_reads_nothing() -> None:
    """The gap fills before the first read is due (the missing event arrives late): no read."""
    first, second, bus = await two_instances_on_one_store(bus_gap_repair_retry_seconds=1.0)
    alice, bob = await alice_and_bob(first, second)
    typed: Doc[Any] = Doc()
    frame = {"type": "Y_UPDATE", "resourceId": RESOURCE}
    bus.losing = True
    late = text_update(typed, "BP ")
    await first.send(alice, **frame, update=b64(late), ref="u1")
    bus.losing = False
    await first.send(alice, **frame, update=b64(text_update(typed, "120/80")), ref="u2")
    assert list(second.gateway._repairing) == [RESOURCE]  # a read is due in a second
    json_frame = outbound.encode(outbound.y_update(RESOURCE, late, 1, "alice"))
    await second.gateway._on_bus_event(RoomEvent(RESOURCE, "a", json_frame, late))  # here it is
    await second.gateway.wait_gaps_repaired()
    assert (
        second.gateway.metrics.registry.get_sample_value("collabgate_bus_gaps_repaired_total") == 0
    )
    assert text_of_updates(read(bob)) == "BP 120/80"


async def test_an_event_that_builds_on_nothing_missing_reads_nothing() -> None:
    first, second, _ = await two_instances_on_one_store()
    alice, bob = await alice_and_bob(first, second)
    typed: Doc[Any] = Doc()
    frame = {"type": "Y_UPDATE", "resourceId": RESOURCE}
    await first.send(alice, **frame, update=b64(text_update(typed, "BP ")), ref="u1")
    content = typed.get("content", type=Text)
    state = typed.get_state()
    del content[0:1]  # a deletion: an update with no inserted content at all
    await first.send(alice, **frame, update=b64(typed.get_update(state)), ref="u2")
    assert second.gateway._repairing == {}
    assert text_of_updates(read(bob)) == "P "


async def test_gaps_shown_while_a_read_is_due_are_checked_by_it() -> None:
    """Two users' first edits are lost. The second edit of one shows a gap and a read is due;
    the other's second edit shows its own gap meanwhile, and the first user's lost edit then
    arrives late. When the read is due, the first gap is closed but the second is not: read."""
    _, second, _ = await two_instances_on_one_store(bus_gap_repair_retry_seconds=0.2)
    bob = await second.connect("bob")
    await second.join(bob)
    read(bob)
    edits: dict[str, list[bytes]] = {}
    for user in ("alice", "carol"):
        typed: Doc[Any] = Doc()
        edits[user] = [text_update(typed, f"<{user}>"), text_update(typed, f"</{user}>")]
    for revision, update in enumerate((edits["alice"][0], edits["carol"][0]), start=1):
        await second.store.append(RESOURCE, revision, update)  # stored; their events are lost

    async def event(user: str, update: bytes) -> None:
        frame = outbound.encode(outbound.y_update(RESOURCE, update, 0, user))
        await second.gateway._on_bus_event(RoomEvent(RESOURCE, "a", frame, update))

    await event("alice", edits["alice"][1])  # a gap: a read is due
    await event("carol", edits["carol"][1])  # another gap, while the read is due
    await event("alice", edits["alice"][0])  # alice's, late: her gap closes
    await second.gateway.wait_gaps_repaired()
    text = text_of_updates(read(bob))
    assert sorted(text.replace(">", "> ").split()) == sorted(
        ["<alice>", "</alice>", "<carol>", "</carol>"]
    )
    assert (
        second.gateway.metrics.registry.get_sample_value("collabgate_bus_gaps_repaired_total") == 1
    )


async def test_a_join_that_finds_a_lost_edit_in_the_store_sends_it_to_the_room() -> None:
    """A join reads the room from the store; the edit whose event was lost is in it. The clients
    already in the room get it too: once the copy has it, no later event shows them a gap."""
    first, second, bus = await two_instances_on_one_store()
    alice, bob = await alice_and_bob(first, second)
    frame = {"type": "Y_UPDATE", "resourceId": RESOURCE}
    bus.losing = True
    await first.send(alice, **frame, update=b64(text_update(Doc(), "lost")), ref="u1")
    bus.losing = False
    carol = await second.connect("carol")
    state = await second.join(carol)
    assert "lost" in text_of_updates([{"type": "Y_UPDATE", "update": state["state"]}])
    frames = [f for f in read(bob) if f["type"] == "Y_UPDATE"]
    assert [f["userId"] for f in frames] == [None]
    assert text_of_updates(frames) == "lost"
