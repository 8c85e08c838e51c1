"""``collabgate.client``: the asyncio client for the gateway's ``/ws`` protocol.

Used by the tests, the smoke tests and the benchmarks, and by developers from the command line::

    python -m collabgate.client ws://127.0.0.1:8080/ws --token <jwt> --resource patient:demo-1

See :class:`CollabClient` for the behaviour (requests by ``ref``, events, local pycrdt documents,
reconnects with re-join / SYNC / resend of unacknowledged updates, heartbeats).
"""

from collabgate.client.connection import (
    CLOSE_SERVICE_RESTART,
    CollabClient,
    EventCallback,
    Predicate,
    TokenSource,
    UpdateCallback,
)
from collabgate.client.errors import (
    CLOSE_AUTH_FAILED,
    AuthenticationFailed,
    CollabClientError,
    ConnectionFailed,
    ConnectionLost,
    ConnectionRejected,
    NotConnected,
    NotJoined,
    ProtocolError,
)
from collabgate.client.models import (
    Frame,
    LockDenial,
    LockGrant,
    Mode,
    ResourceState,
    backoff_delay,
)

__all__ = [
    "CLOSE_AUTH_FAILED",
    "CLOSE_SERVICE_RESTART",
    "AuthenticationFailed",
    "CollabClient",
    "CollabClientError",
    "ConnectionFailed",
    "ConnectionLost",
    "ConnectionRejected",
    "EventCallback",
    "Frame",
    "LockDenial",
    "LockGrant",
    "Mode",
    "NotConnected",
    "NotJoined",
    "Predicate",
    "ProtocolError",
    "ResourceState",
    "TokenSource",
    "UpdateCallback",
    "backoff_delay",
]
