"""picows's log through the gateway: per-connection chatter dropped, a client's bad frame a
warning, a failure inside picows an error (http/picows_wire.PicowsLog)."""

from __future__ import annotations

import logging

import pytest

from collabgate.http.picows_wire import PicowsLog


def records(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    return [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "test.picows"]


def test_what_picows_logs_reaches_the_gateway_log_at_the_right_level(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = PicowsLog(logging.getLogger("test.picows"))
    with caplog.at_level(logging.DEBUG, logger="test.picows"):
        log.info("New connection accepted: %s", "peer")
        log.debug("frame")
        log.error("WS parser error: %s, initiate disconnect", "too big")
        try:
            raise ValueError("inside picows")
        except ValueError:
            log.exception("WS parser failure, initiate disconnect")
    assert records(caplog) == [
        ("WARNING", "WS parser error: too big, initiate disconnect"),
        ("ERROR", "WS parser failure, initiate disconnect"),
    ]
