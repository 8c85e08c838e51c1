"""moto's server on loopback: the AWS APIs the tests need, since AWS itself is unreachable."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

from moto.server import ThreadedMotoServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def moto_endpoint() -> Iterator[str]:
    """A running moto server; yields its endpoint URL (http://127.0.0.1:port)."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()
