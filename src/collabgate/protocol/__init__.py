"""The `/ws` wire protocol as plain data: parsing inbound frames, building outbound ones.

Nothing here does I/O. :func:`parse_request` turns one frame into a typed request or raises the
:mod:`collabgate.errors` exception that names what is wrong with it; :mod:`.outbound` builds the
frames the server sends.
"""

from collabgate.protocol.inbound import (
    Awareness,
    Heartbeat,
    JoinResource,
    LeaveResource,
    LockAcquire,
    LockExtend,
    LockRelease,
    Request,
    Sync,
    YUpdate,
    parse_request,
)
from collabgate.protocol.resource_ids import validate_resource_id

__all__ = [
    "Awareness",
    "Heartbeat",
    "JoinResource",
    "LeaveResource",
    "LockAcquire",
    "LockExtend",
    "LockRelease",
    "Request",
    "Sync",
    "YUpdate",
    "parse_request",
    "validate_resource_id",
]
