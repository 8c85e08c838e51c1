"""Local Prometheus and Alertmanager configuration derived from the production files in deploy/.

What changes locally: targets (static, on loopback, instead of file discovery), the external
``environment`` label, timings (the fast profile is for tests), the secret files (local files
pointing at the local receiver) and absolute paths. What does not change: job names, every rule
file, the routing tree, grouping, inhibition and the notification templates. That way a live test
exercises the configuration that production runs.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from tools.monitoring import ALERTMANAGER_DIR, PROMETHEUS_DIR, RULE_FILES

Config = dict[str, Any]


@dataclass(frozen=True)
class Timing:
    """Scrape/evaluation intervals of Prometheus and the grouping timers of Alertmanager.

    ``None`` for an Alertmanager timer keeps the production value of every route.
    """

    scrape_interval: str = "15s"
    scrape_timeout: str = "10s"
    evaluation_interval: str = "15s"
    group_wait: str | None = None
    group_interval: str | None = None
    repeat_interval: str | None = None
    #: Prometheus --rules.alert.resend-delay: how often a still-firing alert is re-sent.
    resend_delay: str = "1m"


#: deploy/ as it is: 15 s scrape and evaluation, Alertmanager's own timers.
PRODUCTION = Timing()
#: For live tests: alerts reach the receiver seconds after their rule fires.
FAST = Timing(
    "1s", "1s", "1s", group_wait="1s", group_interval="2s", repeat_interval="1h", resend_delay="2s"
)


def load_yaml(path: Path) -> Config:
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a mapping")
    return data


def write_yaml(path: Path, data: Config) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False, default_flow_style=False))
    return path


# ----------------------------------------------------------------------------- Prometheus
def prometheus_config(
    *,
    targets: Mapping[str, Sequence[str]],
    alertmanager: str,
    timing: Timing = PRODUCTION,
    environment: str = "local",
    rule_files: Sequence[Path] = RULE_FILES,
) -> Config:
    """deploy/prometheus/prometheus.yml with ``targets`` (job name -> host:port list).

    Jobs of the production file that get no target are left out; a job name that production
    does not know is an error, because the rules select on job names.
    """
    base = load_yaml(PROMETHEUS_DIR / "prometheus.yml")
    known = {job["job_name"]: job for job in base["scrape_configs"]}
    unknown = set(targets) - set(known)
    if unknown:
        raise ValueError(f"no such job in deploy/prometheus/prometheus.yml: {sorted(unknown)}")

    scrape_configs = []
    for name, job in known.items():
        addresses = list(targets.get(name, ()))
        if not addresses:
            continue
        local = {
            k: v for k, v in job.items() if not k.endswith("_sd_configs") and k != "static_configs"
        }
        local["static_configs"] = [{"targets": addresses}]
        scrape_configs.append(local)

    config = copy.deepcopy(base)
    config["global"].update(
        scrape_interval=timing.scrape_interval,
        scrape_timeout=timing.scrape_timeout,
        evaluation_interval=timing.evaluation_interval,
        external_labels={"environment": environment},
    )
    config["rule_files"] = [str(path) for path in rule_files]
    config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
    config["scrape_configs"] = scrape_configs
    return config


# ----------------------------------------------------------------------------- Alertmanager
def _routes(route: Config) -> Iterator[Config]:
    yield route
    for child in route.get("routes", []):
        yield from _routes(child)


def alertmanager_config(
    *,
    receiver_url: str,
    secrets_dir: Path,
    timing: Timing = PRODUCTION,
) -> Config:
    """deploy/alertmanager/alertmanager.yml delivering to a local receiver.

    Slack posts go to ``{receiver_url}/slack`` (the channel in the payload tells warning from
    info), PagerDuty events to ``{receiver_url}/pagerduty``, the dead man's switch to
    ``{receiver_url}/watchdog``. The secrets are files under ``secrets_dir``, read the way
    production reads them: ``global.slack_api_url_file`` and each ``routing_key_file``.
    """
    config = copy.deepcopy(load_yaml(ALERTMANAGER_DIR / "alertmanager.yml"))
    secrets_dir.mkdir(parents=True, exist_ok=True)

    config["templates"] = [
        str((ALERTMANAGER_DIR / t).resolve()) for t in config.get("templates", [])
    ]

    slack_url = secrets_dir / "slack-webhook-url"
    slack_url.write_text(f"{receiver_url}/slack\n")
    routing_key = secrets_dir / "pagerduty-routing-key"
    routing_key.write_text("local-routing-key\n")
    config["global"]["slack_api_url_file"] = str(slack_url)
    config["global"]["pagerduty_url"] = f"{receiver_url}/pagerduty"

    for receiver in config["receivers"]:
        for pagerduty in receiver.get("pagerduty_configs", []):
            pagerduty["routing_key_file"] = str(routing_key)
        if receiver["name"] == "deadmans-switch":
            receiver["webhook_configs"] = [
                {"url": f"{receiver_url}/watchdog", "send_resolved": False}
            ]

    for route in _routes(config["route"]):
        is_root = route is config["route"]
        for key in ("group_wait", "group_interval", "repeat_interval"):
            value = getattr(timing, key)
            if value is not None and (is_root or key in route):
                route[key] = value
    return config
