"""Edits whose publish to the other instances failed are published again once the bus is back."""

from __future__ import annotations

import base64
from typing import Any

from pycrdt import Doc, Text

from collabgate.bus.memory import InProcessBus, InProcessHub
from collabgate.bus.port import RoomEvent
from tests.unit.test_gateway import RESOURCE, Harness, read, text_update


class BusThatCanFail(InProcessBus):
    """The in-process bus, refusing every publish while ``down``: a broker that is away."""

    def __init__(self, hub: InProcessHub) -> None:
        super().__init__(hub)
        self.down = False

    async def publish(self, event: RoomEvent) -> None:
        if self.down:
            raise ConnectionError("rabbitmq unavailable: not connected")
        await super().publish(event)


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
    alice, bob = await first.connect("alice"), await second.connect("bob")
    await first.join(alice)
    await second.join(bob)
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
