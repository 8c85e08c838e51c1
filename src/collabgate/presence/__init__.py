"""Presence: who is on which resource."""

from collabgate.presence.port import Member, PresenceStore

__all__ = ["Member", "PresenceStore"]
