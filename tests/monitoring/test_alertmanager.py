"""Alertmanager: the configuration is valid, routes by severity, groups, inhibits, keeps secrets in
files; and a real Alertmanager delivers accordingly to a local Slack/PagerDuty stand-in."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from tools.monitoring import ALERTMANAGER_DIR, ROOT, api, processes
from tools.monitoring.config import FAST, alertmanager_config, write_yaml
from tools.monitoring.receiver import Notification, NotificationReceiver
from tools.monitoring.wait import poll_until

from tests.monitoring.conftest import alert_rules, alertmanager_yml, need, run
from tests.support.requirements import unavailable

CONFIG = ALERTMANAGER_DIR / "alertmanager.yml"


def test_amtool_check_config_is_clean() -> None:
    need("amtool")
    result = run(["amtool", "check-config", str(CONFIG)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (
            {"alertname": "RedisDown", "severity": "critical", "service": "redis"},
            "pagerduty-critical",
        ),
        ({"alertname": "PostgresDown", "severity": "critical"}, "pagerduty-critical"),
        (
            {"alertname": "CollabgateNoHealthyInstances", "severity": "critical"},
            "pagerduty-critical",
        ),
        ({"alertname": "CollabgateHighErrorRate", "severity": "warning"}, "slack-warning"),
        ({"alertname": "CollabgateHighP99Latency", "severity": "warning"}, "slack-warning"),
        ({"alertname": "CollabgateHighConnectionCount", "severity": "info"}, "slack-info"),
        ({"alertname": "Watchdog", "severity": "none"}, "deadmans-switch"),
        ({"alertname": "SomethingUnlabelled"}, "slack-warning"),
    ],
)
def test_routes_by_severity(labels: dict[str, str], receiver: str) -> None:
    need("amtool")
    result = run(
        [
            "amtool",
            "config",
            "routes",
            "test",
            f"--config.file={CONFIG}",
            "--verify.receivers=" + receiver,
            *(f"{k}={v}" for k, v in labels.items()),
        ]
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receiver


def test_every_alert_of_the_rules_has_a_route_to_a_human_or_the_dead_mans_switch() -> None:
    need("amtool")
    for rule in alert_rules():
        result = run(
            [
                "amtool",
                "config",
                "routes",
                "test",
                f"--config.file={CONFIG}",
                f"alertname={rule.name}",
                f"severity={rule.labels['severity']}",
            ]
        )
        expected = {
            "critical": "pagerduty-critical",
            "warning": "slack-warning",
            "info": "slack-info",
        }
        assert result.stdout.strip() == expected.get(rule.labels["severity"], "deadmans-switch"), (
            rule.name
        )


def test_no_secret_is_committed() -> None:
    text = CONFIG.read_text()
    config = alertmanager_yml()
    assert "slack_api_url" not in config["global"], "use slack_api_url_file"
    assert config["global"]["slack_api_url_file"].startswith("/etc/alertmanager/secrets/")
    for receiver in config["receivers"]:
        for pagerduty in receiver.get("pagerduty_configs", []):
            assert "routing_key" not in pagerduty
            assert "service_key" not in pagerduty
            assert pagerduty["routing_key_file"].startswith("/etc/alertmanager/secrets/")
        for slack in receiver.get("slack_configs", []):
            assert "api_url" not in slack
    assert not re.search(r"hooks\.slack\.com/services/\w", text)
    assert not re.search(r"\b[0-9a-f]{32}\b", text)  # PagerDuty integration keys look like this


def test_grouping_and_timers_fit_the_one_minute_budget() -> None:
    route = alertmanager_yml()["route"]
    assert route["group_by"] == ["alertname", "environment", "job"]
    assert route["group_wait"] == "10s"
    for child in route["routes"]:
        assert child.get("group_wait", route["group_wait"]) in ("0s", "10s")


def test_instance_down_inhibits_its_own_latency_alert() -> None:
    rules = alertmanager_yml()["inhibit_rules"]
    assert {
        "source_matchers": ['alertname="CollabgateInstanceDown"'],
        "target_matchers": ['alertname="CollabgateHighP99Latency"'],
        "equal": ["environment", "job", "instance"],
    } in rules


def test_the_local_configuration_is_valid_too(tmp_path: Path) -> None:
    need("amtool")
    path = write_yaml(
        tmp_path / "alertmanager.yml",
        alertmanager_config(
            receiver_url="http://127.0.0.1:9", secrets_dir=tmp_path / "secrets", timing=FAST
        ),
    )
    result = run(["amtool", "check-config", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr
    local = yaml.safe_load(path.read_text())
    assert local["route"]["group_wait"] == "1s"
    assert local["inhibit_rules"] == alertmanager_yml()["inhibit_rules"]
    assert [r["name"] for r in local["receivers"]] == [
        r["name"] for r in alertmanager_yml()["receivers"]
    ]


# ----------------------------------------------------------------------------- live
@pytest.fixture(scope="module")
def alertmanager(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[api.Alertmanager, NotificationReceiver]]:
    need("prometheus-alertmanager")
    work = tmp_path_factory.mktemp("alertmanager")
    with NotificationReceiver() as receiver:
        config = write_yaml(
            work / "alertmanager.yml",
            alertmanager_config(
                receiver_url=receiver.url, secrets_dir=work / "secrets", timing=FAST
            ),
        )
        port = processes.free_port()
        daemon = processes.alertmanager(
            config, work / "data", port, work / "alertmanager.log"
        ).start()
        client = api.Alertmanager(f"http://127.0.0.1:{port}")
        try:
            yield client, receiver
        finally:
            client.close()
            daemon.stop()


def _alert(alertname: str, severity: str, **labels: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "labels": {
            "alertname": alertname,
            "severity": severity,
            "environment": "test",
            "job": "collabgate-gateway",
            **labels,
        },
        "annotations": {
            "summary": f"{alertname} summary",
            "description": f"{alertname} description",
            "runbook_url": f"https://github.com/collabgate/collabgate/blob/main/docs/runbooks/{alertname}.md",
        },
        "startsAt": now.isoformat(),
        "endsAt": (now + timedelta(minutes=5)).isoformat(),
        "generatorURL": "http://prometheus.test/graph",
    }


def _wait(receiver: NotificationReceiver, kind: str, alertname: str) -> Notification:
    return poll_until(
        lambda: receiver.find(kind, alertname, "firing"),
        timeout=20,
        interval=0.1,
        what=f"{kind} {alertname} (got {[(n.kind, n.alertname) for n in receiver.snapshot()]})",
    )


def test_a_real_alertmanager_routes_groups_and_inhibits(
    alertmanager: tuple[api.Alertmanager, NotificationReceiver],
) -> None:
    client, receiver = alertmanager
    client.post_alerts(
        [
            _alert(
                "RedisDown",
                "critical",
                job="redis",
                instance="redis-exporter:9121",
                service="redis",
            ),
            _alert(
                "RedisConnectionFailures",
                "critical",
                instance="gw-1:8080",
                service="redis",
                dependency="redis",
            ),
            _alert("CollabgateHighErrorRate", "warning"),
            _alert("CollabgateHighConnectionCount", "info"),
            _alert("CollabgateInstanceDown", "warning", instance="gw-1:8080"),
            _alert("CollabgateHighP99Latency", "warning", instance="gw-1:8080"),  # inhibited
            _alert("CollabgateHighP99Latency", "warning", instance="gw-2:8080"),
        ]
    )

    page = _wait(receiver, "pagerduty", "RedisDown")
    assert page.body["payload"]["severity"] == "critical"
    assert page.body["payload"]["summary"] == "RedisDown (test): RedisDown summary"
    assert page.body["routing_key"] == "local-routing-key"
    assert page.body["links"][0]["href"].endswith("/RedisDown.md")
    # The gateways' view of the same Redis outage is inhibited and would share the incident.
    assert [n.body["dedup_key"] for n in receiver.snapshot() if n.kind == "pagerduty"] == [
        page.body["dedup_key"]
    ]
    failures = client.alerts(
        filter='alertname="RedisConnectionFailures"', inhibited="true", active="false"
    )
    assert failures[0]["status"]["inhibitedBy"]

    warning = _wait(receiver, "slack", "CollabgateHighErrorRate")
    assert warning.channel == "#collabgate-alerts"
    assert "CollabgateHighErrorRate summary" in warning.body["attachments"][0]["text"]
    assert warning.body["attachments"][0]["title_link"].endswith("/CollabgateHighErrorRate.md")

    info = _wait(receiver, "slack", "CollabgateHighConnectionCount")
    assert info.channel == "#collabgate-info"

    latency = _wait(receiver, "slack", "CollabgateHighP99Latency")
    text = latency.body["attachments"][0]["text"]
    assert latency.body["attachments"][0]["title"].startswith("[FIRING:1] CollabgateHighP99Latency")
    assert "gw-2:8080" in text
    assert "gw-1:8080" not in text

    inhibited = client.alerts(
        filter='alertname="CollabgateHighP99Latency"', inhibited="true", active="false"
    )
    assert [a["labels"]["instance"] for a in inhibited] == ["gw-1:8080"]
    assert inhibited[0]["status"]["inhibitedBy"]

    kinds = {(n.kind, n.alertname) for n in receiver.snapshot()}
    assert ("slack", "RedisDown") not in kinds  # criticals page, they do not go to Slack
    assert ("pagerduty", "CollabgateHighErrorRate") not in kinds  # warnings do not page


def test_templates_render_without_errors(tmp_path: Path) -> None:
    """amtool renders each template with sample data (catches typos check-config cannot)."""
    need("amtool")
    for name in (
        "collabgate.name",
        "collabgate.title",
        "collabgate.slack.text",
        "collabgate.pagerduty.description",
        "collabgate.runbook_url",
    ):
        result = subprocess.run(
            [
                "amtool",
                "template",
                "render",
                f"--template.glob={ALERTMANAGER_DIR / 'templates' / '*.tmpl'}",
                f'--template.text={{{{ template "{name}" . }}}}',
            ],
            capture_output=True,
            text=True,
            check=False,
            cwd=ROOT,
        )
        if "unknown command" in result.stderr or "expected command" in result.stderr:
            unavailable(
                "this amtool has no `template render` (Debian 12 prometheus-alertmanager has it)"
            )
        assert result.returncode == 0, (name, result.stderr)
