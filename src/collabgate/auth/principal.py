"""Who is on the other end of a connection, once the token is verified."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    SURGEON = "surgeon"
    ANESTHESIOLOGIST = "anesthesiologist"
    NURSE = "nurse"
    VIEWER = "viewer"
    GUEST = "guest"

    @classmethod
    def from_claim(cls, value: object) -> Role:
        """Map a claim value (a string or a list of strings) to a role; unknown → guest.

        With a list (e.g. Keycloak's ``realm_access.roles``) the most privileged known role wins.
        """
        candidates = value if isinstance(value, list) else [value]
        known = [cls(v.lower()) for v in candidates if isinstance(v, str) and v.lower() in _VALUES]
        if not known:
            return cls.GUEST
        return min(known, key=_PRECEDENCE.index)

    @property
    def can_edit(self) -> bool:
        return self not in (Role.VIEWER, Role.GUEST)


_PRECEDENCE = list(Role)
_VALUES = {role.value for role in Role}


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: str
    role: Role
    name: str | None = None
    expires_at: int | None = None  # epoch seconds, from `exp`
