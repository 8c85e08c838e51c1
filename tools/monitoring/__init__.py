"""Local monitoring stack for collabgate: Prometheus and Alertmanager from Debian's packages, run
on loopback with the project's own configuration from deploy/.

- :mod:`tools.monitoring.config` derives a local configuration from deploy/prometheus and
  deploy/alertmanager (targets, timings and secret files replaced, rules and routes untouched);
- :mod:`tools.monitoring.processes` starts and stops the daemons;
- :mod:`tools.monitoring.receiver` is the HTTP endpoint standing in for Slack and PagerDuty;
- :mod:`tools.monitoring.api` reads Prometheus' and Alertmanager's HTTP APIs;
- ``python -m tools.monitoring up|down|status`` is what ``make monitoring`` runs.

The same code serves the developer (``make monitoring``) and the live tests in tests/monitoring.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PROMETHEUS_DIR = DEPLOY / "prometheus"
ALERTMANAGER_DIR = DEPLOY / "alertmanager"
RULE_FILES = sorted((PROMETHEUS_DIR / "rules").glob("*.rules.yml"))
RULE_TEST_FILES = sorted((PROMETHEUS_DIR / "tests").glob("*.test.yml"))

#: Debian's binaries, found on PATH.
PROMETHEUS = "prometheus"
PROMTOOL = "promtool"
ALERTMANAGER = "prometheus-alertmanager"
AMTOOL = "amtool"
REDIS_EXPORTER = "prometheus-redis-exporter"
POSTGRES_EXPORTER = "prometheus-postgres-exporter"
