"""Resource ids: ``type:id`` with an optional ``/subType:subId``, at most 256 characters."""

from __future__ import annotations

import re

from collabgate.errors import InvalidPayload

MAX_RESOURCE_ID_LENGTH = 256
_PART = r"[A-Za-z][A-Za-z0-9_.-]*:[\x21-\x2e\x30-\x39\x3b-\x7e]+"
_RESOURCE_ID = re.compile(rf"{_PART}(?:/{_PART})?")


def validate_resource_id(value: object, field: str = "resourceId") -> str:
    """Return ``value`` if it is a well-formed resource id, else raise ``InvalidPayload``."""
    if not isinstance(value, str):
        raise InvalidPayload(f"{field} must be a string")
    if len(value) > MAX_RESOURCE_ID_LENGTH:
        raise InvalidPayload(f"{field} is longer than {MAX_RESOURCE_ID_LENGTH} characters")
    if not _RESOURCE_ID.fullmatch(value):
        raise InvalidPayload(
            f"{field} must look like 'type:id' or 'type:id/subType:subId' "
            "(printable ASCII, no whitespace)"
        )
    return value


def resource_type_of(resource_id: str) -> str:
    """The leading ``type`` of a resource id (``patient`` for ``patient:42/note:7``)."""
    return resource_id.split(":", 1)[0]
