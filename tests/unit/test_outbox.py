"""A connection's outbox: queued frames in order, a bound on unsent bytes, direct writes."""

from __future__ import annotations

from collabgate.session.outbox import Frame, Outbox


class Socket:
    """Stands in for the transport: records writes, reports unsent bytes."""

    def __init__(self, unsent: int = 0) -> None:
        self.written: list[Frame] = []
        self.unsent = unsent
        self.notified = 0

    def notify(self) -> None:
        self.notified += 1

    def write_now(self, frame: Frame) -> int:
        self.written.append(frame)
        return self.unsent


def attached(socket: Socket, max_bytes: int = 1024) -> Outbox:
    outbox = Outbox(max_bytes)
    outbox.attach(socket.notify, socket.write_now)
    return outbox


def test_push_now_writes_at_once_when_nothing_waits() -> None:
    socket = Socket()
    outbox = attached(socket)
    assert outbox.push_now(b"update")
    assert socket.written == [b"update"]
    assert len(outbox) == 0
    assert socket.notified == 0  # nothing queued, so no flush is asked for


def test_push_now_queues_behind_a_waiting_frame_so_the_order_holds() -> None:
    socket = Socket()
    outbox = attached(socket)
    assert outbox.push("awareness")
    assert outbox.push_now(b"update")
    assert socket.written == []
    assert outbox.take_all() == ["awareness", b"update"]
    assert socket.notified == 1


def test_push_now_to_a_reader_too_slow_overflows_the_outbox() -> None:
    socket = Socket(unsent=2048)
    outbox = attached(socket, max_bytes=1024)
    assert not outbox.push_now(b"update")
    assert outbox.overflowed
    assert not outbox.push_now(b"next")  # nothing more is written to it
    assert socket.written == [b"update"]


def test_push_now_to_a_closing_socket_reports_it_unsent() -> None:
    socket = Socket(unsent=-1)
    assert not attached(socket).push_now(b"update")


def test_push_now_after_close_writes_nothing() -> None:
    socket = Socket()
    outbox = attached(socket)
    outbox.close()
    assert not outbox.push_now(b"update")
    assert socket.written == []


def test_without_a_direct_writer_push_now_queues() -> None:
    outbox = Outbox(1024)
    assert outbox.push_now(b"update")
    assert outbox.take_all() == [b"update"]
