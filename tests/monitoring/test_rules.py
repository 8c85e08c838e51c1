"""Prometheus configuration, recording and alerting rules: promtool-clean, unit-tested, documented."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml
from tools.monitoring import PROMETHEUS_DIR, RULE_FILES, RULE_TEST_FILES

from tests.monitoring.conftest import (
    RUNBOOK_BASE,
    RUNBOOKS,
    alert_names,
    alert_rules,
    alertmanager_yml,
    need,
    prometheus_yml,
    recording_rules,
    rule_unit_tests,
    run,
    runbook_path,
    seconds,
)
from tests.monitoring.promql import is_known, metric_names

SEVERITIES = {"critical", "warning", "info", "none"}

#: The seed's thresholds (EPIC-003, DEVOPS-001.3): alert -> (severity, a fragment of its expr).
SEED_ALERTS = {
    "CollabgateHighErrorRate": ("warning", "job:collabgate_message_error_ratio:rate1m > 0.01"),
    "CollabgateHighP99Latency": (
        "warning",
        "instance:collabgate_message_handling_seconds:p99_1m > 0.5",
    ),
    "CollabgateHighConnectionCount": ("info", "job:websocket_connections:sum > 1000"),
    "RedisConnectionFailures": (
        "critical",
        'increase(collabgate_dependency_failures_total{dependency="redis"}[1m]) > 0',
    ),
    "RedisDown": ("critical", "redis_up == 0"),
}

#: Alerts that must reach a human within a minute of their condition: the seed's, and every
#: outage of the service or of a backing service. (The others wait on purpose: see the README.)
WITHIN_A_MINUTE = set(SEED_ALERTS) | {
    "CollabgateNoHealthyInstances",
    "CollabgateDependencyDown",
    "PostgresDown",
    "RabbitMQDown",
    "RabbitMQResourceAlarm",
}


# ----------------------------------------------------------------------------- promtool
def test_promtool_check_config_accepts_the_production_configuration() -> None:
    need("promtool")
    result = run(["promtool", "check", "config", str(PROMETHEUS_DIR / "prometheus.yml")])
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_rules_is_clean() -> None:
    need("promtool")
    result = run(["promtool", "check", "rules", *map(str, RULE_FILES)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    assert "WARNING" not in result.stdout + result.stderr


def test_promtool_unit_tests_pass() -> None:
    need("promtool")
    result = run(["promtool", "test", "rules", *map(str, RULE_TEST_FILES)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(RULE_TEST_FILES)


def test_every_alert_has_unit_tests_that_fire_and_that_stay_silent() -> None:
    firing: set[str] = set()
    silent: set[str] = set()
    for test in rule_unit_tests():
        for case in test.get("alert_rule_test", []):
            (firing if case.get("exp_alerts") else silent).add(case["alertname"])
    names = set(alert_names())
    assert names - firing == set(), "alerts with no test showing them fire"
    assert names - {"Watchdog"} - silent == set(), "alerts with no test showing them stay silent"


def test_unit_tests_sample_and_evaluate_at_the_production_interval() -> None:
    interval = prometheus_yml()["global"]["scrape_interval"]
    evaluation = prometheus_yml()["global"]["evaluation_interval"]
    for path in RULE_TEST_FILES:
        data = yaml.safe_load(path.read_text())
        assert data["evaluation_interval"] == evaluation, path
        for test in data["tests"]:
            assert test["interval"] == interval, (path, test["name"])


# Each mutation weakens or shifts one alert; the unit tests must notice every one of them.
MUTATIONS = [
    ("CollabgateHighErrorRate", "> 0.01", "> 0.02"),  # threshold raised
    ("CollabgateHighErrorRate", "> 0.01", "> 0.004"),  # threshold lowered: 0.5 % would fire
    ("CollabgateHighErrorRate", " and on (job) job:websocket_messages_received:rate1m > 0.1", ""),
    ("CollabgateHighErrorRate", "for:15s", "for:1m"),
    ("CollabgateHighP99Latency", "> 0.5", "> 0.6"),
    ("CollabgateHighP99Latency", "> 0.5", "> 0.45"),
    ("CollabgateHighP99Latency", "for:15s", "for:30s"),
    ("CollabgateHighConnectionCount", "> 1000", "> 1100"),
    ("CollabgateHighConnectionCount", "> 1000", ">= 1000"),
    ("RedisConnectionFailures", "for:0s", "for:15s"),
    ("RedisDown", "for:0s", "for:15s"),
    ("CollabgateNoHealthyInstances", "for:15s", "for:1m"),
    ("CollabgateInstanceDown", "for:1m", "for:15s"),
    ("PostgresDown", "for:15s", "for:0s"),
    ("CollabgateStorageCommitsSlow", "> 0.1", "> 0.25"),
    ("CollabgateStorageCommitsSlow", "for:5m", "for:4m"),
    ("CollabgateEventLoopSaturated", "> 0.8", "> 0.85"),
    ("CollabgateEventLoopSaturated", "> 0.8", "> 0.75"),  # gw-2, 78 % busy, would fire
    ("CollabgateEventLoopSaturated", "for:10m", "for:5m"),
]


@pytest.mark.parametrize(
    ("alert", "old", "new"), MUTATIONS, ids=[f"{a}:{o}->{n}" for a, o, n in MUTATIONS]
)
def test_unit_tests_catch_a_changed_threshold_or_duration(
    tmp_path: Path, alert: str, old: str, new: str
) -> None:
    need("promtool")
    (tmp_path / "rules").mkdir()
    shutil.copytree(PROMETHEUS_DIR / "tests", tmp_path / "tests")
    hits = 0
    mutated: Path | None = None
    for path in RULE_FILES:
        data = yaml.safe_load(path.read_text())
        for group in data["groups"]:
            for rule in group["rules"]:
                if rule.get("alert") != alert:
                    continue
                mutated = path
                if old.startswith("for:"):
                    if f"for:{rule.get('for', '0s')}" == old:
                        rule["for"] = new.removeprefix("for:")
                        hits += 1
                elif old in rule["expr"]:
                    rule["expr"] = rule["expr"].replace(old, new)
                    hits += 1
        (tmp_path / "rules" / path.name).write_text(yaml.safe_dump(data, sort_keys=False))
    assert hits == 1, f"mutation {old!r} not found in {alert}"
    assert mutated is not None
    # The alert's own test groups, from the unit-test files that load the mutated rule file.
    tests = []
    for test_file in sorted((tmp_path / "tests").glob("*.test.yml")):
        spec = yaml.safe_load(test_file.read_text())
        if not any(Path(f).name == mutated.name for f in spec["rule_files"]):
            continue
        spec["tests"] = [
            group
            for group in spec["tests"]
            if any(case["alertname"] == alert for case in group.get("alert_rule_test", []))
        ]
        if spec["tests"]:
            test_file.write_text(yaml.safe_dump(spec, sort_keys=False))
            tests.append(str(test_file))
    assert tests, f"no unit test for {alert}"
    result = run(["promtool", "test", "rules", *tests])
    assert result.returncode != 0, f"the unit tests did not notice {alert}: {old} -> {new}"


# ----------------------------------------------------------------------------- alert contents
def test_every_alert_has_severity_summary_description_and_runbook() -> None:
    for rule in alert_rules():
        assert rule.labels.get("severity") in SEVERITIES, rule.name
        assert rule.annotations.get("summary"), rule.name
        assert rule.annotations.get("description"), rule.name
        url = rule.annotations.get("runbook_url", "")
        assert url.startswith(RUNBOOK_BASE), f"{rule.name}: {url}"
        assert runbook_path(url).is_file(), f"{rule.name}: {url} has no page in docs/runbooks/"


def test_seed_thresholds_and_severities() -> None:
    rules = {rule.name: rule for rule in alert_rules()}
    for name, (severity, fragment) in SEED_ALERTS.items():
        assert rules[name].labels["severity"] == severity, name
        assert fragment in rules[name].expr, name


def test_alert_and_recording_rules_use_only_metrics_that_exist() -> None:
    recorded = set(recording_rules())
    exprs = [rule.expr for rule in alert_rules()] + list(recording_rules().values())
    unknown = {
        name for expr in exprs for name in metric_names(expr) if not is_known(name, recorded)
    }
    assert unknown == set()


def test_labels_stay_bounded() -> None:
    """No rule groups by or matches on a label that could carry a user or resource id (PHI)."""
    exprs = [rule.expr for rule in alert_rules()] + list(recording_rules().values())
    for expr in exprs:
        assert not re.search(r"\b(user|user_id|resource|resource_id|sub|connection_id)\b", expr), (
            expr
        )


# ----------------------------------------------------------------------------- timing
def _group_wait(severity: str) -> float:
    route = alertmanager_yml()["route"]
    wait = route["group_wait"]
    for child in route.get("routes", []):
        if f'severity="{severity}"' in child.get("matchers", []):
            wait = child.get("group_wait", wait)
            break
    return seconds(wait)


def worst_case_seconds(for_: str, severity: str) -> float:
    """Condition true just after a scrape -> seen at the next scrape -> evaluated up to one
    evaluation interval later -> pending for `for` -> batched for group_wait -> delivered."""
    g = prometheus_yml()["global"]
    return (
        seconds(g["scrape_interval"])
        + seconds(g["evaluation_interval"])
        + seconds(for_)
        + _group_wait(severity)
    )


def test_outage_and_seed_alerts_reach_someone_within_a_minute() -> None:
    rules = {rule.name: rule for rule in alert_rules()}
    for name in sorted(WITHIN_A_MINUTE):
        rule = rules[name]
        worst = worst_case_seconds(rule.for_, rule.labels["severity"])
        assert worst <= 60, f"{name}: up to {worst:g} s from condition to notification"


def test_runbooks_readme_states_each_alerts_timing() -> None:
    """The README's timing table is the arithmetic above, for every alert."""
    readme = (RUNBOOKS / "README.md").read_text()
    for rule in alert_rules():
        if rule.name == "Watchdog":
            continue
        worst = worst_case_seconds(rule.for_, rule.labels["severity"])
        row = re.search(rf"^\| \[{rule.name}\]\([^)]*\) \|([^\n]*)$", readme, re.MULTILINE)
        assert row, f"{rule.name} missing from the table in docs/runbooks/README.md"
        cells = [c.strip() for c in row.group(1).split("|")]
        assert rule.labels["severity"] in cells[0], (rule.name, cells)
        assert cells[2] == rule.for_, (rule.name, cells)
        assert f"{worst:g} s" in cells[3], (rule.name, worst, cells)


# ----------------------------------------------------------------------------- runbooks
SECTIONS = ("## What it means", "## Confirm", "## Mitigate", "## Escalate")
#: Pages of docs/runbooks/ that belong to no alert.
NOT_ALERTS = {"README.md", "disaster-recovery.md"}


def test_one_runbook_page_per_alert_with_the_four_sections_and_the_exact_expression() -> None:
    pages: dict[Path, list[str]] = {}
    for rule in alert_rules():
        pages.setdefault(runbook_path(rule.annotations["runbook_url"]), []).append(rule.expr)
        page = runbook_path(rule.annotations["runbook_url"]).read_text()
        assert f"# {rule.name}" in page, rule.name
        assert rule.expr in page, (
            f"{rule.name}: the runbook must quote the alert's expression verbatim"
        )
    for path in pages:
        text = path.read_text()
        for section in SECTIONS:
            assert section in text, f"{path.name}: missing '{section}'"
    extra = {p.name for p in RUNBOOKS.glob("*.md")} - {p.name for p in pages} - NOT_ALERTS
    assert extra == set(), "runbook pages for alerts that do not exist"


def test_runbooks_readme_links_every_page() -> None:
    readme = (RUNBOOKS / "README.md").read_text()
    for page in RUNBOOKS.glob("*.md"):
        if page.name != "README.md":
            assert f"({page.name})" in readme, page.name
