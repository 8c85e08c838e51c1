"""``make monitoring`` / ``make monitoring-stop``: the monitoring stack for a developer to look at.

    python -m tools.monitoring up [--gateway 127.0.0.1:8080] [--dir var/monitoring] [...]
    python -m tools.monitoring status [--dir var/monitoring]
    python -m tools.monitoring down [--dir var/monitoring]

`up` starts, on 127.0.0.1, Alertmanager and Prometheus configured from deploy/ (production
timings: 15 s scrape and evaluation) against a running gateway, plus a local receiver standing in
for Slack and PagerDuty whose notifications are appended to <dir>/notifications.ndjson.
Optionally it also runs the Redis and PostgreSQL exporters (--redis-addr, --postgres-dsn) and
scrapes RabbitMQ's plugin (--rabbitmq). The processes outlive this command; their PIDs are kept
in <dir>/state.json, and `down` stops exactly those.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tools.monitoring import ROOT

STATE = "state.json"


def _pid_alive(pid: int, binary: str) -> bool:
    """True when ``pid`` runs and is still the program we started (not a recycled pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return any(binary.encode() in part for part in cmdline[:4])


def _marker(argv: Sequence[str]) -> str:
    """What identifies the process in /proc/<pid>/cmdline: the program, or the Python module."""
    if "-m" in argv[:2]:
        return argv[argv.index("-m") + 1]
    return Path(argv[0]).name


def _load_state(directory: Path) -> dict[str, Any] | None:
    path = directory / STATE
    if not path.exists():
        return None
    state: dict[str, Any] = json.loads(path.read_text())
    return state


def _pick_port(wanted: int) -> int:
    from tools.monitoring import processes

    return wanted if wanted and processes.port_is_free(wanted) else processes.free_port()


def _print_urls(state: dict[str, Any]) -> None:
    urls = state["urls"]
    print(
        "\nmonitoring is running (stop it with: make monitoring-stop)\n"
        f"  Prometheus    {urls['prometheus']}            targets: {urls['prometheus']}/targets\n"
        f"                alerts: {urls['prometheus']}/alerts   rules: {urls['prometheus']}/rules\n"
        f"  Alertmanager  {urls['alertmanager']}\n"
        f"  Receiver      {urls['receiver']}/notifications  (Slack/PagerDuty stand-in; log: {state['notifications_log']})\n"
        f"  Gateway       {state['gateway']}/metrics\n"
        f"  Files         {state['dir']}  (generated prometheus.yml, alertmanager.yml, logs, PIDs)\n"
    )


def up(args: argparse.Namespace) -> int:
    import httpx
    from tools.monitoring import processes
    from tools.monitoring.stack import MonitoringStack

    directory: Path = args.dir.resolve()
    state = _load_state(directory)
    if state and all(_pid_alive(p["pid"], p["binary"]) for p in state["processes"]):
        print("monitoring is already running")
        _print_urls(state)
        return 0
    if state:
        down(args)  # leftovers of a stack that half-died: clear them first

    for tool in ("prometheus", "prometheus-alertmanager"):
        if processes.which(tool) is None:
            print(
                f"{tool} is not installed: run `make monitoring-tools` (Debian packages)",
                file=sys.stderr,
            )
            return 1

    directory.mkdir(parents=True, exist_ok=True)
    gateway = args.gateway
    try:
        httpx.get(f"http://{gateway}/metrics", timeout=2.0).raise_for_status()
    except httpx.HTTPError as exc:
        print(
            f"warning: no gateway answers at http://{gateway}/metrics ({exc}); start one with `make run`."
        )
        print(
            "         Prometheus will keep trying; CollabgateNoHealthyInstances fires until it is up."
        )

    started: list[processes.Daemon] = []
    try:
        receiver_port = _pick_port(args.receiver_port)
        receiver = processes.Daemon(
            "receiver",
            [
                sys.executable,
                "-m",
                "tools.monitoring.receiver",
                f"--port={receiver_port}",
                f"--log={directory / 'notifications.ndjson'}",
            ],
            directory / "receiver.log",
            ready_url=f"http://127.0.0.1:{receiver_port}/notifications",
            env={"PYTHONPATH": str(ROOT)},
        ).start()
        started.append(receiver)

        targets: dict[str, list[str]] = {"collabgate-gateway": [gateway]}
        if args.redis_addr:
            port = processes.free_port()
            started.append(
                processes.redis_exporter(
                    args.redis_addr, port, directory / "redis-exporter.log"
                ).start()
            )
            targets["redis"] = [f"127.0.0.1:{port}"]
        if args.postgres_dsn:
            port = processes.free_port()
            started.append(
                processes.postgres_exporter(
                    args.postgres_dsn, port, directory / "postgres-exporter.log"
                ).start()
            )
            targets["postgres"] = [f"127.0.0.1:{port}"]
        if args.rabbitmq:
            targets["rabbitmq"] = [args.rabbitmq]

        stack = MonitoringStack(
            directory,
            targets=targets,
            receiver_url=f"http://127.0.0.1:{receiver_port}",
            prometheus_port=_pick_port(args.prometheus_port),
            alertmanager_port=_pick_port(args.alertmanager_port),
        ).start()
        started.extend(stack.daemons)
    except Exception as exc:
        for daemon in reversed(started):
            daemon.stop()
        print(f"monitoring failed to start: {exc}", file=sys.stderr)
        return 1

    state = {
        "dir": str(directory),
        "gateway": f"http://{gateway}",
        "notifications_log": str(directory / "notifications.ndjson"),
        "urls": {
            "prometheus": stack.prometheus_url,
            "alertmanager": stack.alertmanager_url,
            "receiver": f"http://127.0.0.1:{receiver_port}",
        },
        "processes": [
            {"name": d.name, "pid": d.pid, "binary": _marker(d.argv), "log": str(d.log_path)}
            for d in started
        ],
    }
    (directory / STATE).write_text(json.dumps(state, indent=2) + "\n")
    for daemon in started:
        (directory / f"{daemon.name}.pid").write_text(f"{daemon.pid}\n")
    _print_urls(state)
    return 0


def down(args: argparse.Namespace) -> int:
    directory: Path = args.dir.resolve()
    state = _load_state(directory)
    if state is None:
        print(f"monitoring is not running (no {directory / STATE})")
        return 0
    procs = [p for p in state["processes"] if _pid_alive(p["pid"], p["binary"])]
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc["pid"], signal.SIGTERM)  # each was started as its own process group
    deadline = time.monotonic() + 15
    while any(_pid_alive(p["pid"], p["binary"]) for p in procs) and time.monotonic() < deadline:
        time.sleep(0.1)  # polling the processes' exit, with a deadline
    for proc in procs:
        if _pid_alive(proc["pid"], proc["binary"]):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc["pid"], signal.SIGKILL)
        print(f"stopped {proc['name']} (pid {proc['pid']})")
    (directory / STATE).unlink()
    for proc in state["processes"]:
        (directory / f"{proc['name']}.pid").unlink(missing_ok=True)
    return 0


def status(args: argparse.Namespace) -> int:
    from tools.monitoring.api import Prometheus

    state = _load_state(args.dir.resolve())
    if state is None:
        print("monitoring is not running")
        return 1
    for proc in state["processes"]:
        alive = "running" if _pid_alive(proc["pid"], proc["binary"]) else "GONE"
        print(f"{proc['name']:<18} pid {proc['pid']:<8} {alive}")
    prometheus = Prometheus(state["urls"]["prometheus"])
    try:
        for target in prometheus.targets():
            print(
                f"target {target['labels']['job']:<13} {target['scrapeUrl']:<45} {target['health']}"
            )
        for alert in prometheus.alerts():
            print(f"alert  {alert['labels']['alertname']:<32} {alert['state']}")
    except Exception as exc:
        print(f"cannot query Prometheus: {exc}")
    _print_urls(state)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.monitoring",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--dir", type=Path, default=ROOT / "var" / "monitoring", help="state, configs, logs"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", help="start the stack")
    p_up.add_argument(
        "--gateway", default="127.0.0.1:8080", help="host:port of the running gateway"
    )
    p_up.add_argument("--prometheus-port", type=int, default=9090, help="(a free one if taken)")
    p_up.add_argument("--alertmanager-port", type=int, default=9093, help="(a free one if taken)")
    p_up.add_argument("--receiver-port", type=int, default=9097, help="(a free one if taken)")
    p_up.add_argument(
        "--redis-addr", default="", help="also run the Redis exporter against redis://host:port"
    )
    p_up.add_argument(
        "--postgres-dsn", default="", help="also run the PostgreSQL exporter with this DSN"
    )
    p_up.add_argument(
        "--rabbitmq", default="", help="also scrape RabbitMQ's prometheus plugin at host:port"
    )
    p_up.set_defaults(func=up)
    sub.add_parser("down", help="stop what `up` started").set_defaults(func=down)
    sub.add_parser("status", help="processes, targets, alerts").set_defaults(func=status)
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
