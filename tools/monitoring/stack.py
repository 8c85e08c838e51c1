"""Prometheus + Alertmanager configured from deploy/, started together on loopback."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from tools.monitoring import api, processes
from tools.monitoring.config import (
    PRODUCTION,
    Timing,
    alertmanager_config,
    prometheus_config,
    write_yaml,
)


class MonitoringStack:
    """Alertmanager then Prometheus, with their configuration, data and logs under ``workdir``.

    ``targets`` maps job names of deploy/prometheus/prometheus.yml (collabgate-gateway, redis, postgres,
    rabbitmq) to host:port lists; the stack adds its own prometheus and alertmanager jobs.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        targets: Mapping[str, Sequence[str]],
        receiver_url: str,
        timing: Timing = PRODUCTION,
        environment: str = "local",
        prometheus_port: int = 0,
        alertmanager_port: int = 0,
    ) -> None:
        self.workdir = workdir
        self.targets = dict(targets)
        self.receiver_url = receiver_url
        self.timing = timing
        self.environment = environment
        self.prometheus_port = prometheus_port or processes.free_port()
        self.alertmanager_port = alertmanager_port or processes.free_port()
        self.daemons: list[processes.Daemon] = []

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.prometheus_port}"

    @property
    def alertmanager_url(self) -> str:
        return f"http://127.0.0.1:{self.alertmanager_port}"

    @property
    def prometheus_config_path(self) -> Path:
        return self.workdir / "prometheus.yml"

    @property
    def alertmanager_config_path(self) -> Path:
        return self.workdir / "alertmanager.yml"

    def write_configs(self) -> None:
        targets = {
            **self.targets,
            "prometheus": [f"127.0.0.1:{self.prometheus_port}"],
            "alertmanager": [f"127.0.0.1:{self.alertmanager_port}"],
        }
        write_yaml(
            self.prometheus_config_path,
            prometheus_config(
                targets=targets,
                alertmanager=f"127.0.0.1:{self.alertmanager_port}",
                timing=self.timing,
                environment=self.environment,
            ),
        )
        write_yaml(
            self.alertmanager_config_path,
            alertmanager_config(
                receiver_url=self.receiver_url,
                secrets_dir=self.workdir / "secrets",
                timing=self.timing,
            ),
        )

    def start(self) -> MonitoringStack:
        self.write_configs()
        try:
            self.daemons.append(
                processes.alertmanager(
                    self.alertmanager_config_path,
                    self.workdir / "alertmanager-data",
                    self.alertmanager_port,
                    self.workdir / "alertmanager.log",
                ).start()
            )
            self.daemons.append(
                processes.prometheus(
                    self.prometheus_config_path,
                    self.workdir / "prometheus-data",
                    self.prometheus_port,
                    self.workdir / "prometheus.log",
                    resend_delay=self.timing.resend_delay,
                ).start()
            )
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for daemon in reversed(self.daemons):
            daemon.stop()
        self.daemons.clear()

    def prometheus(self) -> api.Prometheus:
        return api.Prometheus(self.prometheus_url)

    def alertmanager(self) -> api.Alertmanager:
        return api.Alertmanager(self.alertmanager_url)

    def __enter__(self) -> MonitoringStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
