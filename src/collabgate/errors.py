"""Protocol errors: one exception type per error code of docs/protocol.md.

The core raises these; an endpoint turns one into an ``ERROR {code, type, message, ref?}`` frame.
"""

from __future__ import annotations

from typing import ClassVar


class GatewayError(Exception):
    """An error the client is told about. ``message`` names the problem."""

    code: ClassVar[str] = "WS_5001"
    type: ClassVar[str] = "INTERNAL_SERVER_ERROR"
    #: Close the socket after sending the ERROR frame, with this close code.
    close_code: ClassVar[int | None] = None

    def __init__(self, message: str, *, ref: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        #: The ``ref`` of the request this error answers, when it had one.
        self.ref = ref


class MaxConnectionsExceeded(GatewayError):
    code, type, close_code = "WS_1001", "MAX_CONNECTIONS_EXCEEDED", 1013


class ConnectionTimeout(GatewayError):
    code, type, close_code = "WS_1002", "CONNECTION_TIMEOUT", 4408


class JwtMissing(GatewayError):
    code, type, close_code = "WS_2001", "JWT_MISSING", 4401


class JwtInvalid(GatewayError):
    code, type, close_code = "WS_2002", "JWT_INVALID", 4401


class JwtExpired(GatewayError):
    code, type, close_code = "WS_2003", "JWT_EXPIRED", 4401


class PermissionDenied(GatewayError):
    code, type = "WS_2004", "PERMISSION_DENIED"


class InvalidPayload(GatewayError):
    code, type = "WS_3001", "INVALID_PAYLOAD"


class MissingRequiredField(GatewayError):
    code, type = "WS_3002", "MISSING_REQUIRED_FIELD"


class UnknownMessageType(GatewayError):
    code, type = "WS_3003", "UNKNOWN_MESSAGE_TYPE"


class MessageTooLarge(GatewayError):
    code, type = "WS_3004", "MESSAGE_TOO_LARGE"


class RoomFull(GatewayError):
    code, type = "WS_4001", "ROOM_FULL"


class LockConflict(GatewayError):
    code, type = "WS_4003", "LOCK_CONFLICT"


class ResourceNotFound(GatewayError):
    code, type = "WS_4005", "RESOURCE_NOT_FOUND"


class ResourceAlreadyJoined(GatewayError):
    code, type = "WS_4006", "RESOURCE_ALREADY_JOINED"


class ResourceNotJoined(GatewayError):
    code, type = "WS_4007", "RESOURCE_NOT_JOINED"


class InvalidMode(GatewayError):
    code, type = "WS_4008", "INVALID_MODE"


class LockNotHeld(GatewayError):
    code, type = "WS_4013", "LOCK_NOT_HELD"


class InternalServerError(GatewayError):
    code, type = "WS_5001", "INTERNAL_SERVER_ERROR"


class ServiceUnavailable(GatewayError):
    code, type = "WS_5002", "SERVICE_UNAVAILABLE"


class RateLimitExceeded(GatewayError):
    code, type = "WS_5003", "RATE_LIMIT_EXCEEDED"


ALL_ERRORS: tuple[type[GatewayError], ...] = (
    MaxConnectionsExceeded,
    ConnectionTimeout,
    JwtMissing,
    JwtInvalid,
    JwtExpired,
    PermissionDenied,
    InvalidPayload,
    MissingRequiredField,
    UnknownMessageType,
    MessageTooLarge,
    RoomFull,
    LockConflict,
    ResourceNotFound,
    ResourceAlreadyJoined,
    ResourceNotJoined,
    InvalidMode,
    LockNotHeld,
    InternalServerError,
    ServiceUnavailable,
    RateLimitExceeded,
)
