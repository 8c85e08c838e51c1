"""Deployment messages to Slack (an incoming webhook), or to stdout without one."""

from __future__ import annotations

import sys
from collections.abc import Callable

import httpx


def notifier(webhook_url: str | None) -> Callable[[str], None]:
    def notify(text: str) -> None:
        print(f"deploy: {text}", flush=True)
        if webhook_url is None:
            return
        try:
            httpx.post(
                webhook_url, json={"text": f"collabgate: {text}"}, timeout=10
            ).raise_for_status()
        except httpx.HTTPError as exc:  # a message that does not arrive never stops a rollback
            print(f"deploy: Slack notification failed: {exc!r}", file=sys.stderr, flush=True)

    return notify
