"""Sessions: every open connection of a user, across instances, for the per-user cap."""

from collabgate.sessions.port import SessionStore

__all__ = ["SessionStore"]
