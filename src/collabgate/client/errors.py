"""Exceptions raised by :mod:`collabgate.client`.

Every exception the client raises on purpose derives from :class:`CollabClientError`::

    CollabClientError
    ├── ProtocolError            the server answered a request with ERROR
    ├── ConnectionFailed         a connection could not be opened
    │   └── ConnectionRejected   the server refused it (ERROR before CONNECTED, HTTP status)
    │       └── AuthenticationFailed   … because of the token (close 4401, WS_2001-2003, HTTP 401/403)
    ├── ConnectionLost           the connection went away before the reply arrived
    │   └── NotConnected         no connection is open right now (reconnecting or closed)
    └── NotJoined                a local operation names a resource that is not joined

:class:`TimeoutError` (the builtin) is raised when a ``timeout`` given to a call runs out.
"""

from __future__ import annotations

from typing import Any

#: ERROR codes the server sends before closing with 4401.
AUTH_ERROR_CODES = frozenset({"WS_2001", "WS_2002", "WS_2003"})

#: Close code the gateway uses after an authentication failure.
CLOSE_AUTH_FAILED = 4401


class CollabClientError(Exception):
    """Base class of the client's exceptions."""


class ProtocolError(CollabClientError):
    """The server replied ``ERROR`` to a request.

    ``code`` is the protocol error code (``"WS_4013"``), ``error_type`` its name
    (``"LOCK_NOT_HELD"``), ``message`` the server's explanation and ``ref`` the ref of the
    request it answers (``None`` for an ERROR that answers no request).
    """

    def __init__(self, code: str, error_type: str, message: str, *, ref: str | None = None) -> None:
        super().__init__(f"{code} {error_type}: {message}")
        self.code = code
        self.error_type = error_type
        self.message = message
        self.ref = ref

    @classmethod
    def from_frame(cls, frame: dict[str, Any]) -> ProtocolError:
        """Build the exception from an ``ERROR`` frame (tolerating missing fields)."""
        ref = frame.get("ref")
        return cls(
            str(frame.get("code", "WS_5001")),
            str(frame.get("errorType", "UNKNOWN")),
            str(frame.get("message", "")),
            ref=ref if isinstance(ref, str) else None,
        )

    @property
    def transient(self) -> bool:
        """True for ``WS_5xxx`` errors (server trouble, rate limit): retrying may succeed."""
        return self.code.startswith("WS_5")


class ConnectionFailed(CollabClientError):
    """A connection could not be opened: network error, timeout, bad handshake.

    ``status`` is the HTTP status when the server answered the upgrade request with one.
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ConnectionRejected(ConnectionFailed):
    """The server refused the connection.

    Either it sent ``ERROR`` instead of ``CONNECTED`` (``error`` holds it, ``close_code`` the code
    it then closed with), closed before ``CONNECTED``, or answered the upgrade with an HTTP
    status other than 101 (``status``).
    """

    def __init__(
        self,
        message: str,
        *,
        error: ProtocolError | None = None,
        close_code: int | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message, status=status)
        self.error = error
        self.close_code = close_code

    @property
    def code(self) -> str | None:
        """The ERROR code the server sent, if it sent one."""
        return self.error.code if self.error is not None else None


class AuthenticationFailed(ConnectionRejected):
    """The token was refused: close code 4401, ``WS_2001``/``WS_2002``/``WS_2003``, HTTP 401/403.

    The client never reconnects after this.
    """


class ConnectionLost(CollabClientError):
    """The connection a request was sent on closed before its reply arrived.

    ``close_code`` and ``reason`` are those the server closed with (1006 when the connection
    dropped without a close frame, ``None`` when there was no connection to begin with).
    The request may or may not have been processed by the server.
    """

    def __init__(self, close_code: int | None, reason: str = "") -> None:
        detail = f"close code {close_code}" if close_code is not None else "no connection"
        super().__init__(f"connection lost ({detail}){': ' + reason if reason else ''}")
        self.close_code = close_code
        self.reason = reason


class NotConnected(ConnectionLost):
    """A request was made while no connection is open (before connect, while reconnecting,
    or after the client closed)."""


class NotJoined(CollabClientError, LookupError):
    """A local operation (``document``, ``edit``, ``update``…) names a resource that this client
    has not joined, or that it left before an update was acknowledged."""
