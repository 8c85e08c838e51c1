"""The monitoring stack, live: real gateway, real Prometheus with the project's rules, real
Alertmanager with the project's routes, real exporters, and a local HTTP receiver standing in
for Slack and PagerDuty.

Timing profile: tools.monitoring.config.FAST (1 s scrape and evaluation, group_wait 1 s,
group_interval 2 s); the rules themselves (windows, thresholds, `for`) are production's.
Every wait polls an HTTP API against a deadline.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tools.monitoring import api, processes
from tools.monitoring.config import FAST
from tools.monitoring.receiver import Notification, NotificationReceiver
from tools.monitoring.stack import MonitoringStack
from tools.monitoring.wait import poll_until

from collabgate.settings import Settings
from tests.monitoring.conftest import DASHBOARDS, need
from tests.monitoring.promql import selector_of_variable
from tests.monitoring.services import (
    POSTGRES_DSN,
    RABBITMQ_SERVER,
    RabbitMQNode,
    redis_server,
    tcp_open,
)
from tests.monitoring.traffic import Traffic
from tests.support.gateway_process import GatewayProcess
from tests.support.requirements import unavailable

pytestmark = pytest.mark.e2e

#: Dashboard expressions over metrics the running gateway cannot produce yet, and why. Each is
#: still queried: once it returns data the test fails, asking for the entry to be removed.
PENDING: dict[str, str] = {}
ADAPTER_PENDING: dict[str, str] = {
    "redis_operation_duration_seconds": "redis",
    "rabbitmq_publish": "rabbitmq",
}

TIMINGS: dict[str, float] = {}


@dataclass
class Live:
    gateway: GatewayProcess
    receiver: NotificationReceiver
    stack: MonitoringStack
    prometheus: api.Prometheus
    redis: processes.Daemon
    traffic: Traffic
    adapters: set[str]  # production adapters the gateway was configured with (redis, rabbitmq)


def _adapter_env(redis_port: int, rabbit: RabbitMQNode) -> tuple[dict[str, str], set[str]]:
    """Point the gateway at the test's Redis / RabbitMQ when its settings know them."""
    fields = Settings.model_fields
    env: dict[str, str] = {}
    adapters: set[str] = set()
    if "redis_url" in fields:
        env["COLLABGATE_REDIS_URL"] = f"redis://127.0.0.1:{redis_port}/0"
        adapters.add("redis")
    for name in ("amqp_url", "rabbitmq_url"):
        if name in fields:
            env[f"COLLABGATE_{name.upper()}"] = f"amqp://guest:guest@127.0.0.1:{rabbit.amqp_port}/"
            adapters.add("rabbitmq")
    return env, adapters


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    need(
        "prometheus",
        "prometheus-alertmanager",
        "prometheus-redis-exporter",
        "prometheus-postgres-exporter",
        "redis-server",
        RABBITMQ_SERVER,
    )
    if not tcp_open(5432):
        message = "no PostgreSQL on 127.0.0.1:5432 for the PostgreSQL exporter"
        unavailable(message)
    work = tmp_path_factory.mktemp("monitoring-live")

    with contextlib.ExitStack() as cleanup:
        rabbit = RabbitMQNode(work / "rabbitmq")
        rabbit.daemon.launch()  # the slowest to boot: let it start while the rest does
        cleanup.callback(rabbit.daemon.stop)

        redis_port = processes.free_port()
        redis = redis_server(work / "redis", redis_port).start()
        cleanup.callback(lambda: redis.stop())
        redis_exporter_port = processes.free_port()
        redis_exporter = processes.redis_exporter(
            f"redis://127.0.0.1:{redis_port}", redis_exporter_port, work / "redis-exporter.log"
        ).start()
        cleanup.callback(redis_exporter.stop)
        postgres_exporter_port = processes.free_port()
        postgres_exporter = processes.postgres_exporter(
            POSTGRES_DSN, postgres_exporter_port, work / "postgres-exporter.log"
        ).start()
        cleanup.callback(postgres_exporter.stop)

        env, adapters = _adapter_env(redis_port, rabbit)
        rabbit.daemon.wait_ready(60)
        # Two instances sharing Redis and RabbitMQ, as in production; traffic goes to the first.
        gateway = GatewayProcess(work / "gateway", env={**env, "COLLABGATE_INSTANCE_ID": "gw-1"})
        peer = GatewayProcess(work / "gateway-2", env={**env, "COLLABGATE_INSTANCE_ID": "gw-2"})
        for instance in (gateway, peer):
            instance.start()
            cleanup.callback(instance.kill)
            cleanup.callback(instance.terminate)

        receiver = NotificationReceiver(log=work / "notifications.ndjson").start()
        cleanup.callback(receiver.stop)
        stack = MonitoringStack(
            work / "stack",
            targets={
                "collabgate-gateway": [f"127.0.0.1:{gateway.port}", f"127.0.0.1:{peer.port}"],
                "redis": [f"127.0.0.1:{redis_exporter_port}"],
                "postgres": [f"127.0.0.1:{postgres_exporter_port}"],
                "rabbitmq": [rabbit.metrics_target],
            },
            receiver_url=receiver.url,
            timing=FAST,
            environment="test",
        ).start()
        cleanup.callback(stack.stop)
        prometheus = stack.prometheus()
        cleanup.callback(prometheus.close)

        traffic = Traffic(gateway)
        traffic.start()
        cleanup.callback(traffic.stop)
        traffic.wait_ready()

        yield Live(gateway, receiver, stack, prometheus, redis, traffic, adapters)

        if TIMINGS:
            print("\nmeasured (seconds): " + json.dumps(TIMINGS))


def _wait_for_notification(
    live: Live, kind: str, alertname: str, status: str, after: float, timeout: float
) -> Notification:
    return poll_until(
        lambda: live.receiver.find(kind, alertname, status, after=after),
        timeout=timeout,
        interval=0.2,
        what=f"{kind} notification {alertname} {status} "
        f"(received so far: {[(n.kind, n.alertname, n.status) for n in live.receiver.snapshot()]})",
    )


# ----------------------------------------------------------------------------- the pipeline
def test_every_target_is_scraped(live: Live) -> None:
    def all_up() -> bool:
        targets = live.prometheus.targets()
        return len(targets) == 7 and all(t["health"] == "up" for t in targets)

    poll_until(all_up, timeout=30, what="all seven targets (two gateways) up")
    jobs = {t["labels"]["job"] for t in live.prometheus.targets()}
    assert jobs == {
        "collabgate-gateway",
        "redis",
        "postgres",
        "rabbitmq",
        "prometheus",
        "alertmanager",
    }


def test_rules_load_and_the_watchdog_crosses_the_whole_pipeline(live: Live) -> None:
    groups = {g["name"]: g for g in live.prometheus.rule_groups()}
    assert set(groups) == {"collabgate", "dependencies", "monitoring"}
    for group in groups.values():
        for rule in group["rules"]:
            assert rule["health"] in ("ok", "unknown"), (rule["name"], rule.get("lastError"))
    note = _wait_for_notification(live, "watchdog", "Watchdog", "firing", 0, timeout=30)
    assert note.body["receiver"] == "deadmans-switch"


# ----------------------------------------------------------------------------- dashboards
def _live_expr(expr: str) -> str:
    """A dashboard expression as Grafana would send it with every variable at "All"."""
    expr = expr.replace("$__rate_interval", "1m")
    return re.sub(r"\$\{?\w+\}?", ".*", expr)


def _dashboard_queries() -> list[tuple[str, str]]:
    queries = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        board = json.loads(path.read_text())
        for variable in board["templating"]["list"]:
            if variable["type"] == "query":
                where = f"{path.name} variable ${variable['name']}"
                queries.append((where, _live_expr(selector_of_variable(variable["definition"]))))
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                where = f"{path.name} {panel['title']!r} {target['refId']}"
                queries.append((where, _live_expr(target["expr"])))
    return queries


def _pending_reason(expr: str, adapters: set[str]) -> str | None:
    for metric, reason in PENDING.items():
        if metric in expr:
            return reason
    for metric, adapter in ADAPTER_PENDING.items():
        if metric in expr and adapter not in adapters:
            return f"the gateway runs without a {adapter} adapter, so it exports no {metric}"
    return None


def test_every_dashboard_expression_returns_data(live: Live) -> None:
    queries = _dashboard_queries()
    assert len(queries) > 60
    # Rates need two samples of the traffic's lock/edit cycle inside their window.
    poll_until(
        lambda: live.prometheus.query("sum(rate(collabgate_yjs_update_bytes_count[1m])) > 0"),
        timeout=30,
        what="Y.js updates to show in a rate",
    )

    def empty() -> list[tuple[str, str]]:
        return [
            (w, e)
            for w, e in queries
            if not live.prometheus.query(e) and _pending_reason(e, live.adapters) is None
        ]

    with contextlib.suppress(AssertionError):
        poll_until(
            lambda: not empty(), timeout=30, interval=1.0, what="every expression to return data"
        )
    missing = empty()
    assert missing == [], "dashboard expressions without data:\n" + "\n".join(
        f"  {w}: {e}" for w, e in missing
    )

    pending = [(w, e) for w, e in queries if _pending_reason(e, live.adapters)]
    now_with_data = [(w, e) for w, e in pending if live.prometheus.query(e)]
    assert now_with_data == [], (
        "these now return data; drop them from PENDING/ADAPTER_PENDING: " + repr(now_with_data)
    )
    for where, expr in pending:
        print(f"pending: {where}: {_pending_reason(expr, live.adapters)}")


# ----------------------------------------------------------------------------- alerts
def _alert_active(live: Live, alertname: str) -> bool:
    return bool(live.prometheus.alert_state(alertname))


@pytest.mark.timeout(300)  # typically 80 s; the polling deadlines below bound each step
def test_error_rate_and_redis_outage_reach_slack_and_pagerduty_within_a_minute_and_resolve(
    live: Live,
) -> None:
    """Both scenarios in one test, overlapped to keep the suite short: the Redis outage runs
    while the error-rate alert waits out its 1-minute window on the way to "resolved"."""
    # Below the threshold (the steady traffic so far) the error-rate alert was never even pending.
    assert live.prometheus.query('ALERTS{alertname="CollabgateHighErrorRate"}') == []
    assert live.receiver.find("slack", "CollabgateHighErrorRate", "firing") is None
    poll_until(lambda: live.prometheus.query("redis_up == 1"), timeout=20, what="redis_up == 1")
    assert live.receiver.find("pagerduty", "RedisDown", "firing") is None

    # 1. One message in five answered with ERROR WS_3003 -> Slack #collabgate-alerts.
    errors_start = time.time()
    live.traffic.error_ratio = 0.2
    fired = _wait_for_notification(
        live, "slack", "CollabgateHighErrorRate", "firing", errors_start, timeout=60
    )
    TIMINGS["error_rate_to_slack"] = round(fired.received_at - errors_start, 1)
    assert fired.received_at - errors_start <= 60
    assert fired.channel == "#collabgate-alerts"
    attachment: dict[str, Any] = fired.body["attachments"][0]
    assert attachment["title"].startswith("[FIRING:1] CollabgateHighErrorRate (test)")
    assert "docs/runbooks/collabgate-high-error-rate.md" in attachment["title_link"]
    assert "of WebSocket messages answered with ERROR (threshold 1 %)" in attachment["text"]
    assert live.prometheus.query("job:collabgate_message_error_ratio:rate1m > 0.01")
    errors_stop = time.time()
    live.traffic.error_ratio = 0.0

    # 2. Redis stops -> PagerDuty, at once.
    redis_stop = time.time()
    live.redis.stop()
    paged = _wait_for_notification(live, "pagerduty", "RedisDown", "firing", redis_stop, timeout=60)
    TIMINGS["redis_down_to_pagerduty"] = round(paged.received_at - redis_stop, 1)
    assert paged.received_at - redis_stop <= 60
    body = paged.body
    assert body["routing_key"] == "local-routing-key"  # read from routing_key_file
    assert body["event_action"] == "trigger"
    assert body["payload"]["severity"] == "critical"
    assert body["payload"]["summary"].startswith("RedisDown (test): Redis at ")
    assert any("docs/runbooks/redis-down.md" in link["href"] for link in body["links"])

    # 3. Redis returns -> the incident resolves, once every view of it has.
    redis_back = time.time()
    live.redis.start()
    resolved = _wait_for_notification(
        live, "pagerduty", "RedisDown", "resolved", redis_back, timeout=90
    )
    TIMINGS["redis_down_resolved"] = round(resolved.received_at - redis_back, 1)
    assert resolved.body["dedup_key"] == paged.body["dedup_key"]
    assert not _alert_active(live, "RedisDown")
    outage_pages = [
        n
        for n in live.receiver.snapshot()
        if n.kind == "pagerduty" and redis_stop <= n.received_at <= resolved.received_at
    ]
    # One outage, one incident: the gateways' RedisConnectionFailures (when the gateway runs with
    # its Redis adapter) is inhibited while RedisDown fires and shares its incident afterwards.
    assert {n.body["dedup_key"] for n in outage_pages} == {paged.body["dedup_key"]}
    assert live.receiver.find("slack", "RedisDown", "firing") is None  # criticals page only
    assert live.receiver.find("pagerduty", "CollabgateHighErrorRate", "firing") is None

    # 4. The error rate, back to 0 since step 1, resolves once its 1-minute window is clean.
    resolved = _wait_for_notification(
        live, "slack", "CollabgateHighErrorRate", "resolved", errors_stop, timeout=90
    )
    TIMINGS["error_rate_resolved"] = round(resolved.received_at - errors_stop, 1)
    assert resolved.body["attachments"][0]["color"] == "good"
    assert not _alert_active(live, "CollabgateHighErrorRate")


def test_receiver_log_keeps_every_notification(live: Live) -> None:
    log = Path(live.receiver._log or "")
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(lines) == len(live.receiver.snapshot()) > 0
