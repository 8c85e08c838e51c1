"""The in-process bus knows whether an edit has another instance to reach."""

from __future__ import annotations

from collabgate.bus.memory import InProcessBus, InProcessHub
from collabgate.bus.port import RoomEvent


async def _ignore(_: RoomEvent) -> None:
    return None


async def test_reaches_other_instances_follows_the_instances_on_the_hub() -> None:
    hub = InProcessHub()
    first, second = InProcessBus(hub), InProcessBus(hub)
    assert not first.reaches_other_instances  # not started: no one on the hub
    await first.start("a", _ignore)
    assert not first.reaches_other_instances  # only itself
    await second.start("b", _ignore)
    assert first.reaches_other_instances
    assert second.reaches_other_instances
    await second.close()
    assert not first.reaches_other_instances
    assert second.reaches_other_instances  # closed, it is no longer on the hub; "a" is


async def test_a_bus_that_never_started_sees_every_instance_as_another() -> None:
    hub = InProcessHub()
    await InProcessBus(hub).start("a", _ignore)
    assert InProcessBus(hub).reaches_other_instances
