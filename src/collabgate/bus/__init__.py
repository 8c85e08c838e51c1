"""Cross-instance delivery of room events."""

from collabgate.bus.port import RoomBus, RoomEvent, RoomEventHandler

__all__ = ["RoomBus", "RoomEvent", "RoomEventHandler"]
