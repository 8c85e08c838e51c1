"""An HTTP endpoint standing in for Slack and PagerDuty, recording what Alertmanager sends.

    python -m tools.monitoring.receiver --port 9097 --log var/monitoring/notifications.ndjson

Paths (as tools.monitoring.config points Alertmanager at them):
    POST /slack       Slack incoming-webhook payloads (answers 200 "ok", like Slack)
    POST /pagerduty   PagerDuty Events API v2 events (answers 202, like PagerDuty)
    POST /watchdog    the dead man's switch webhook
    GET  /notifications   everything received so far, as JSON
"""

from __future__ import annotations

import argparse
import json
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

_SLACK_TITLE = re.compile(r"^\[(?P<status>FIRING|RESOLVED)(?::\d+)?\] (?P<alertname>\w+)")


@dataclass(frozen=True)
class Notification:
    """One request received, and what it says."""

    kind: str  # slack | pagerduty | watchdog | other
    received_at: float  # time.time() on arrival
    body: dict[str, Any]
    alertname: str | None
    status: str | None  # firing | resolved
    channel: str | None = None  # Slack only

    @classmethod
    def parse(cls, path: str, body: dict[str, Any], dedup_names: dict[str, str]) -> Notification:
        kind = path.strip("/").split("/")[0] or "other"
        now = time.time()
        if kind == "slack":
            attachments = body.get("attachments") or [{}]
            match = _SLACK_TITLE.match(str(attachments[0].get("title", "")))
            return cls(
                kind,
                now,
                body,
                match["alertname"] if match else None,
                match["status"].lower() if match else None,
                body.get("channel"),
            )
        if kind == "pagerduty":
            dedup_key = str(body.get("dedup_key", ""))
            summary = str((body.get("payload") or {}).get("summary", ""))
            if summary:  # a resolve carries no summary: name it after the incident's first trigger
                dedup_names.setdefault(dedup_key, summary.split()[0].rstrip(":"))
            action = body.get("event_action")
            status = {"trigger": "firing", "resolve": "resolved"}.get(str(action))
            return cls(kind, now, body, dedup_names.get(dedup_key), status)
        if kind == "watchdog":
            alerts = body.get("alerts") or [{}]
            return cls(
                kind, now, body, alerts[0].get("labels", {}).get("alertname"), body.get("status")
            )
        return cls(kind, now, body, None, None)


class NotificationReceiver:
    """The receiver, serving on a thread of this process."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, log: Path | None = None) -> None:
        self.notifications: list[Notification] = []
        self._lock = threading.Lock()
        self._dedup_names: dict[str, str] = {}
        self._log = log
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"{}")
                except json.JSONDecodeError:
                    body = {"raw": raw.decode("utf-8", "replace")}
                note = receiver._record(
                    self.path, body if isinstance(body, dict) else {"raw": body}
                )
                if note.kind == "pagerduty":
                    reply = {
                        "status": "success",
                        "message": "Event processed",
                        "dedup_key": body.get("dedup_key"),
                    }
                    self._answer(202, json.dumps(reply).encode(), "application/json")
                else:
                    self._answer(200, b"ok", "text/plain")

            def do_GET(self) -> None:
                if self.path.rstrip("/") == "/notifications":
                    payload = json.dumps([asdict(n) for n in receiver.snapshot()]).encode()
                    self._answer(200, payload, "application/json")
                else:
                    self._answer(404, b"not found", "text/plain")

            def _answer(self, status: int, payload: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: every request is recorded instead

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def _record(self, path: str, body: dict[str, Any]) -> Notification:
        with self._lock:
            note = Notification.parse(path, body, self._dedup_names)
            self.notifications.append(note)
        if self._log is not None:
            with self._log.open("a") as log:
                log.write(json.dumps(asdict(note)) + "\n")
        return note

    def snapshot(self) -> list[Notification]:
        with self._lock:
            return list(self.notifications)

    def find(
        self, kind: str, alertname: str, status: str, *, after: float = 0.0
    ) -> Notification | None:
        """The first notification of that kind, alert and status received after ``after``."""
        for note in self.snapshot():
            if (
                note.kind == kind
                and note.alertname == alertname
                and note.status == status
                and note.received_at >= after
            ):
                return note
        return None

    def start(self) -> NotificationReceiver:
        self._thread = threading.Thread(
            target=self.server.serve_forever, name="receiver", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> NotificationReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9097)
    parser.add_argument("--log", type=Path, help="append every notification to this NDJSON file")
    args = parser.parse_args(argv)
    receiver = NotificationReceiver(args.host, args.port, args.log)
    print(f"receiver listening on {receiver.url}", flush=True)
    try:
        receiver.server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        receiver.server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
