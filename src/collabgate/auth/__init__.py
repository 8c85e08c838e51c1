"""Authentication: JWT verification and the principal a connection acts as."""

from collabgate.auth.principal import Principal, Role

__all__ = ["Principal", "Role"]
