"""Shared helpers of the monitoring tests: the deploy/ files, parsed once, and the binaries.

Tests that need Prometheus, Alertmanager or an exporter call :func:`need`. Locally a missing
binary skips the test with the command that installs it; in CI (``CI=true``) it fails, because a
skipped monitoring test there would hide a missing install step (``make test-setup`` installs
Debian's packages through ``monitoring-tools`` in mk/monitoring.mk).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from tools.monitoring import ALERTMANAGER_DIR, PROMETHEUS_DIR, ROOT, RULE_FILES, RULE_TEST_FILES

from tests.support.requirements import unavailable

RUNBOOKS = ROOT / "docs" / "runbooks"
RUNBOOK_BASE = "https://github.com/collabgate/collabgate/blob/main/docs/runbooks/"
DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"

#: Debian package of each binary the tests run.
PACKAGES = {
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "amtool": "prometheus-alertmanager",
    "prometheus-redis-exporter": "prometheus-redis-exporter",
    "prometheus-postgres-exporter": "prometheus-postgres-exporter",
    "redis-server": "redis-server",
    "rabbitmq-server": "rabbitmq-server",
}


def need(*binaries: str) -> None:
    """Skip (locally) or fail (CI) unless every binary is on PATH (or is an absolute path)."""
    missing = [b for b in binaries if shutil.which(b) is None and not Path(b).is_file()]
    if not missing:
        return
    packages = sorted({PACKAGES.get(Path(b).name, Path(b).name) for b in missing})
    message = f"not installed: {', '.join(missing)} (make monitoring-tools, or apt-get install {' '.join(packages)})"
    unavailable(message)


def run(argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(argv), capture_output=True, text=True, timeout=120, check=False, **kwargs
    )


# ----------------------------------------------------------------------------- rules
@dataclass(frozen=True)
class AlertRule:
    name: str
    expr: str
    for_: str
    labels: dict[str, str]
    annotations: dict[str, str]
    file: Path


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def rule_groups() -> Iterator[dict[str, Any]]:
    for path in RULE_FILES:
        yield from load_yaml(path)["groups"]


def alert_rules() -> list[AlertRule]:
    rules = []
    for path in RULE_FILES:
        for group in load_yaml(path)["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    rules.append(
                        AlertRule(
                            rule["alert"],
                            rule["expr"],
                            str(rule.get("for", "0s")),
                            rule.get("labels", {}),
                            rule.get("annotations", {}),
                            path,
                        )
                    )
    return rules


def alert_names() -> list[str]:
    return sorted({rule.name for rule in alert_rules()})


def recording_rules() -> dict[str, str]:
    return {
        rule["record"]: rule["expr"]
        for group in rule_groups()
        for rule in group["rules"]
        if "record" in rule
    }


def rule_unit_tests() -> list[dict[str, Any]]:
    return [test for path in RULE_TEST_FILES for test in load_yaml(path)["tests"]]


def prometheus_yml() -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(PROMETHEUS_DIR / "prometheus.yml")
    return data


def alertmanager_yml() -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(ALERTMANAGER_DIR / "alertmanager.yml")
    return data


def seconds(duration: str) -> float:
    """Prometheus duration ('1m30s', '15s', '0s') in seconds."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    total = 0.0
    parts = re.findall(r"(\d+)(ms|s|m|h|d)", duration)
    if not parts or "".join(n + u for n, u in parts) != duration:
        raise ValueError(f"not a duration: {duration!r}")
    for number, unit in parts:
        total += int(number) * units[unit]
    return total


def runbook_path(url: str) -> Path:
    assert url.startswith(RUNBOOK_BASE), url
    return RUNBOOKS / url.removeprefix(RUNBOOK_BASE)
